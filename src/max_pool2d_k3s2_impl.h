/* Template body (included by max_pool2d_impl.h): max_pool2d 3x3 windows, stride 2,
 * padding 1, dilation 1, on planes of even H and W whose width is a whole number of
 * double vectors (W % (2 * POOL_VL) == 0) and without ceil_mode's extra window
 * (OH = H / 2, OW = W / 2): ResNet's stem pooling. The geometry test, the tap
 * columns, the interleaving store and the plane driver are shared with avg_pool2d
 * (pool_vec_impl.h).
 *
 * Why a path of its own: the general stride-2 kernels first copy each plane into a
 * -inf padded scratch plane split into even/odd columns and the backward then
 * accumulates into a second padded plane that is merged back into grad_x: three
 * extra passes over each plane that cost more than the window arithmetic. Here the
 * only padding is row -1 and column -1, so each block of VL windows reads its
 * three input rows straight from x (two vector loads and two shuffles a row give
 * the even and odd columns; column 2j - 1 is the odd vector shifted by one lane,
 * the lane shifted in being x[2 j0 - 1], or -inf at the left edge), and the
 * backward adds each window's gradient into registers, writing every cell of
 * grad_x once. Cost per plane O(H*W), no scratch besides one row of pending
 * gradient (row 2i + 1 waits for output row i + 1) and one of row 2i + 1's maxima
 * and winning taps (also row 2(i + 1) - 1 of the next output row).
 *
 * Same fold and ties as max_fused_vals / max_fused_code (PyTorch's: row-major
 * window order, strict ">" so the first maximum wins, NaN always taken so the last
 * NaN wins; each window row folded on its own, then the rows in order, which the
 * rule's associativity allows), and each grad_x cell receives its contributions in
 * PyTorch's order (output row, then output column), starting from +0. */

/* Maximum of the three taps of each window in row xr. */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(k3s2_row, SUF)(const T *restrict xr,
                                                                dlk_idx j0)
{
    DLK_CAT(pool_vec, SUF) t0, t1, t2;
    DLK_CAT(pool_k3s2_taps, SUF)(xr, j0, (T)-INFINITY, &t0, &t1, &t2);
    return DLK_CAT(maxp_fold, SUF)(DLK_CAT(maxp_fold, SUF)(t0, t1), t2);
}

/* The same with the winning tap 0..2 in *code. */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(k3s2_row_code, SUF)(
    const T *restrict xr, dlk_idx j0, DLK_CAT(pool_ivec, SUF) *code)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    vec t0, t1, t2;
    DLK_CAT(pool_k3s2_taps, SUF)(xr, j0, (T)-INFINITY, &t0, &t1, &t2);
    const ivec zero = {0};
    ivec take = (t1 > t0) | (t1 != t1);
    vec m = DLK_CAT(maxp_fold, SUF)(t0, t1);
    ivec c = take & (zero + 1);
    take = (t2 > m) | (t2 != t2);
    *code = DLK_CAT(maxp_isel, SUF)(take, zero + 2, c);
    return DLK_CAT(maxp_fold, SUF)(m, t2);
}

/* Winning tap 3a + b of the windows j0 .. j0 + VL - 1 of output row i, whose rows
 * are 2i - 1 (padding for i = 0), r1 = 2i and r2 = 2i + 1; *mx gets the maxima. Row
 * 2i + 1 is also row 2(i + 1) - 1 of the next output row: its maxima and taps are
 * kept in save (OW values, then OW codes) instead of being folded again. A window
 * of only -inf keeps PyTorch's default, its first in-range cell. */
static DLK_INLINE DLK_CAT(pool_ivec, SUF) DLK_CAT(k3s2_code, SUF)(
    const T *restrict r1, const T *restrict r2, dlk_idx i, dlk_idx j0, dlk_idx OW,
    T *restrict save, DLK_CAT(pool_vec, SUF) *mx)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    const ivec zero = {0};
    ivec c = zero, rc;
    vec m = (vec){0} - (T)INFINITY;
    if (i > 0) {
        memcpy(&m, save + j0, sizeof m);
        memcpy(&c, save + OW + j0, sizeof c);
    }
    vec rm = DLK_CAT(k3s2_row_code, SUF)(r1, j0, &rc);
    c = DLK_CAT(maxp_isel, SUF)((rm > m) | (rm != rm), rc + 3, c);
    m = DLK_CAT(maxp_fold, SUF)(m, rm);
    rm = DLK_CAT(k3s2_row_code, SUF)(r2, j0, &rc);
    memcpy(save + j0, &rm, sizeof rm);
    memcpy(save + OW + j0, &rc, sizeof rc);
    c = DLK_CAT(maxp_isel, SUF)((rm > m) | (rm != rm), rc + 6, c);
    m = DLK_CAT(maxp_fold, SUF)(m, rm);
    ivec dflt = zero + (TI)(i == 0 ? 3 : 0);  /* row -1 is padding */
    if (j0 == 0)
        dflt[0] += 1;                          /* so is column -1 */
    *mx = m;
    return DLK_CAT(maxp_isel, SUF)(m == -INFINITY, dflt, c);
}

/* Forward of one plane: values, and (ind not NULL) the flat argmax index. save:
 * W values (see k3s2_code; values only: the maxima of row 2i + 1). */
static void DLK_CAT(k3s2_plane_fwd, SUF)(const dlk_pool2d_shape *s, const T *restrict xp,
                                         T *restrict save, T *restrict out,
                                         int64_t *restrict ind)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    const dlk_idx W = s->w, OW = s->ow;
    for (dlk_idx i = 0; i < s->oh; i++) {
        const T *r1 = xp + 2 * i * W, *r2 = r1 + W;
        T *o = out + i * OW;
        for (dlk_idx j0 = 0; j0 < OW; j0 += POOL_VL) {
            vec m;
            if (!ind) {
                const vec m1 = DLK_CAT(k3s2_row, SUF)(r1, j0);
                const vec m2 = DLK_CAT(k3s2_row, SUF)(r2, j0);
                if (i > 0) {
                    memcpy(&m, save + j0, sizeof m);
                    m = DLK_CAT(maxp_fold, SUF)(m, m1);
                } else {
                    m = m1;  /* row -1 is -inf: never taken over row 0 */
                }
                memcpy(save + j0, &m2, sizeof m2);
                m = DLK_CAT(maxp_fold, SUF)(m, m2);
                memcpy(o + j0, &m, sizeof m);
                continue;
            }
            const ivec c = DLK_CAT(k3s2_code, SUF)(r1, r2, i, j0, OW, save, &m);
            memcpy(o + j0, &m, sizeof m);
            DLK_CAT(max_store_ind, SUF)(ind + i * OW + j0, c, 3, (2 * i - 1) * W + 2 * j0 - 1,
                                        (TI)W, 2);
        }
    }
}

/* Backward of one plane, the winning taps recomputed from x (ind NULL; save as in
 * the forward) or decoded from the forward's indices (ind; xp and save unused);
 * returns nonzero if an index is no tap of its window (grad_x then unfinished,
 * for the caller to scatter instead). Output row i adds into rows
 * 2i - 1 (a = 0, which already holds row i - 1's share, kept in pend), 2i and
 * 2i + 1 (kept in pend for row i + 1). Column-wise, tap 1 of window j goes to
 * even column 2j, tap 2 to odd column 2j + 1 and then tap 0 of window j + 1 to
 * the same cell: within a block that is the tap-0 share shifted down one lane,
 * across blocks the first lane of the next block's share, so a block's vectors
 * are kept (pe, po) until the next block has added to them. pend: W values (even
 * columns, then odd). */
static DLK_INLINE int DLK_CAT(k3s2_plane_bwd, SUF)(const dlk_pool2d_shape *s,
                                                   const T *restrict xp,
                                                   const int64_t *restrict ind,
                                                   const T *restrict gp, T *restrict save,
                                                   T *restrict gx, T *restrict pend)
{
    DLK_CAT(pool_dvec, SUF) ok = {0};
    ok -= 1;
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    const dlk_idx W = s->w, OW = s->ow, OH = s->oh;
    ivec down;  /* (v, 0) -> v[1 .. VL-1], 0 */
    for (dlk_idx k = 0; k < POOL_VL; k++)
        down[k] = (TI)(k + 1);
    const vec zero = {0};
    for (dlk_idx i = 0; i < OH; i++) {
        const T *r1 = ind ? xp : xp + 2 * i * W, *r2 = ind ? xp : r1 + W;  /* (xp NULL) */
        vec pe[3], po[3];
        for (dlk_idx j0 = 0; j0 <= OW; j0 += POOL_VL) {
            vec e[3], o[3];
            if (j0 < OW) {
                vec m;
                const ivec code =
                    ind ? DLK_CAT(max_ind_code, SUF)(ind + i * OW + j0,
                                                     (2 * i - 1) * W + 2 * j0 - 1, W, 3, 2,
                                                     i == 0, j0 == 0, &ok)
                        : DLK_CAT(k3s2_code, SUF)(r1, r2, i, j0, OW, save, &m);
                ivec gi;
                memcpy(&gi, gp + i * OW + j0, sizeof gi);
                for (int a = 0; a < 3; a++) {
                    const vec s0 = DLK_CAT(maxp_gsel, SUF)(code, (TI)(3 * a), gi);
                    const vec s1 = DLK_CAT(maxp_gsel, SUF)(code, (TI)(3 * a + 1), gi);
                    const vec s2 = DLK_CAT(maxp_gsel, SUF)(code, (TI)(3 * a + 2), gi);
                    vec e0 = zero, o0 = zero;
                    if (a == 0 && i > 0) {
                        memcpy(&e0, pend + j0, sizeof e0);
                        memcpy(&o0, pend + OW + j0, sizeof o0);
                    }
                    e[a] = e0 + s1;
                    o[a] = (o0 + s2) + __builtin_shuffle(s0, zero, down);
                    if (j0 > 0)  /* column 2 j0 - 1: the previous block's last odd cell */
                        po[a][POOL_VL - 1] += s0[0];
                    /* (for j0 = 0, s0[0] is column -1: padding) */
                }
            }
            if (j0 > 0) {  /* the previous block is complete for this output row */
                const dlk_idx p = j0 - POOL_VL;
                if (i > 0)
                    DLK_CAT(pool_store2, SUF)(gx + (2 * i - 1) * W + 2 * p, pe[0], po[0]);
                DLK_CAT(pool_store2, SUF)(gx + 2 * i * W + 2 * p, pe[1], po[1]);
                memcpy(pend + p, &pe[2], sizeof pe[2]);
                memcpy(pend + OW + p, &po[2], sizeof po[2]);
            }
            if (j0 < OW)
                for (int a = 0; a < 3; a++) {
                    pe[a] = e[a];
                    po[a] = o[a];
                }
        }
    }
    for (dlk_idx p = 0; p < OW; p += POOL_VL) {  /* row H - 1: no later output row */
        vec e, o;
        memcpy(&e, pend + p, sizeof e);
        memcpy(&o, pend + OW + p, sizeof o);
        DLK_CAT(pool_store2, SUF)(gx + (s->h - 1) * W + 2 * p, e, o);
    }
    return !DLK_CAT(pool_all, SUF)(&ok);
}

/* Plane p of a job (pool_k3s2_planes): forward when grad_out is NULL, else
 * backward. rows: 2 W values (save, then pend). */
static void DLK_CAT(k3s2_max_plane, SUF)(const DLK_CAT(pool_k3s2_job, SUF) *job, dlk_idx p,
                                         T *rows)
{
    const dlk_pool2d_shape *s = job->s;
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    if (job->grad_out)
        DLK_CAT(k3s2_plane_bwd, SUF)(s, job->x + p * hw, NULL, job->grad_out + p * ohw, rows,
                                     job->grad_x + p * hw, rows + s->w);
    else
        DLK_CAT(k3s2_plane_fwd, SUF)(s, job->x + p * hw, rows, job->out + p * ohw,
                                     job->ind ? job->ind + p * ohw : NULL);
}

/* Backward of plane p from the forward's indices (job->saved) instead of x; a
 * plane whose indices are not all taps of their windows is scattered instead.
 * rows: W values (pend). */
static void DLK_CAT(k3s2_max_plane_ind, SUF)(const DLK_CAT(pool_k3s2_job, SUF) *job,
                                             dlk_idx p, T *rows)
{
    const dlk_pool2d_shape *s = job->s;
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    const T *gp = job->grad_out + p * ohw;
    const int64_t *ind = job->saved + p * ohw;
    T *gx = job->grad_x + p * hw;
    if (DLK_CAT(k3s2_plane_bwd, SUF)(s, NULL, ind, gp, NULL, gx, rows))
        DLK_CAT(max_plane_scatter, SUF)(gp, ind, hw, ohw, gx);
}
