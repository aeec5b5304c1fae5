/* Template body (included by avg_pool2d_impl.h): avg_pool2d 3x3 windows, stride 2,
 * padding 1 on planes of even H and W whose width is a whole number of double
 * vectors, without ceil_mode's extra window (the geometry of pool_k3s2_ok; tap
 * columns, interleaving store and plane driver shared with max_pool2d in
 * pool_vec_impl.h).
 *
 * Why a path of its own: the general stride-2 kernels copy each plane into a
 * zero-padded scratch plane split into even/odd columns, and the backward adds
 * every window's share into a second padded plane that is then merged back into
 * grad_x: passes over each plane that cost more than the arithmetic. Here the
 * forward reads its window rows straight from x, and the backward computes each
 * cell of grad_x in registers from the (at most four) shares it receives and
 * writes it once. Cost per plane O(H*W); scratch: two rows of shares.
 *
 * Bits: PyTorch's CPU kernel (contiguous NCHW) sums each window row-major from
 * zero over its in-range cells and divides once by the divisor (converted to T);
 * the forward keeps that order (the zero of column -1 added in place of a skipped
 * cell changes no sum: a sum started at +0 is never -0). Reusing a row's sum for
 * the next output row, as max_pool2d reuses a row's maximum, would reorder the
 * additions and change the last bits, so each window is summed whole. In the
 * backward a cell receives share(i, j) = grad_out / divisor in the order of output
 * row, then column, starting from +0:
 *   row 2i,     column 2j:      0 + d(i, j)
 *   row 2i,     column 2j + 1: (0 + d(i, j)) + d(i, j + 1)
 *   row 2i + 1, column 2j:     (0 + d(i, j)) + d(i + 1, j)
 *   row 2i + 1, column 2j + 1: ((0 + d(i, j)) + d(i, j + 1)) + d(i + 1, j)) + d(i + 1, j + 1)
 * with d(i, OW) = d(OH, j) = 0 absent (adding +0 to a sum that is never -0 is
 * exact, so the edges need no branch). */

/* Divisors of output row i's windows j0 .. j0 + VL - 1. With count_include_pad
 * every window covers 3 x 3 cells of the padded extent (H and W are even, so no
 * window reaches past row H or column W); without it, row 0 and column 0 lose the
 * padding row or column. */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(k3s2_avg_divisor, SUF)(
    const DLK_CAT(pool_k3s2_job, SUF) *job, dlk_idx i, dlk_idx j0)
{
    DLK_CAT(pool_vec, SUF) d = {0};
    if (job->ovr > 0)
        return d + (T)job->ovr;
    const dlk_idx rows = job->cip || i > 0 ? 3 : 2;
    d += (T)(rows * 3);
    if (!job->cip && j0 == 0)
        d[0] = (T)(rows * 2);
    return d;
}

/* Sum of the running sums s and the three taps of each window in row xr. */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(k3s2_avg_row, SUF)(DLK_CAT(pool_vec, SUF) s,
                                                                    const T *restrict xr,
                                                                    dlk_idx j0)
{
    DLK_CAT(pool_vec, SUF) t0, t1, t2;
    DLK_CAT(pool_k3s2_taps, SUF)(xr, j0, (T)0, &t0, &t1, &t2);
    return ((s + t0) + t1) + t2;
}

static void DLK_CAT(k3s2_avg_plane_fwd, SUF)(const DLK_CAT(pool_k3s2_job, SUF) *job,
                                             const T *restrict xp, T *restrict out)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    const dlk_idx W = job->s->w, OW = job->s->ow;
    for (dlk_idx i = 0; i < job->s->oh; i++) {
        const T *r1 = xp + 2 * i * W;
        for (dlk_idx j0 = 0; j0 < OW; j0 += POOL_VL) {
            vec sum = {0};
            if (i > 0)  /* row -1 is padding */
                sum = DLK_CAT(k3s2_avg_row, SUF)(sum, r1 - W, j0);
            sum = DLK_CAT(k3s2_avg_row, SUF)(sum, r1, j0);
            sum = DLK_CAT(k3s2_avg_row, SUF)(sum, r1 + W, j0);
            sum /= DLK_CAT(k3s2_avg_divisor, SUF)(job, i, j0);
            memcpy(out + i * OW + j0, &sum, sizeof sum);
        }
    }
}

/* d[j] = share(i, j) for the OW windows of output row i. */
static DLK_INLINE void DLK_CAT(k3s2_avg_shares, SUF)(const DLK_CAT(pool_k3s2_job, SUF) *job,
                                                     const T *restrict gr, dlk_idx i,
                                                     T *restrict d)
{
    for (dlk_idx j0 = 0; j0 < job->s->ow; j0 += POOL_VL) {
        const DLK_CAT(pool_vec, SUF) v = DLK_CAT(pool_load, SUF)(gr + j0) /
                                         DLK_CAT(k3s2_avg_divisor, SUF)(job, i, j0);
        memcpy(d + j0, &v, sizeof v);
    }
}

/* Backward of one plane: grad_x rows 2i and 2i + 1 from the shares of output rows
 * i (cur) and i + 1 (next), each held in a row of OW + VL values whose tail stays
 * zero (the d(i, OW) = 0 of the last block). */
static void DLK_CAT(k3s2_avg_plane_bwd, SUF)(const DLK_CAT(pool_k3s2_job, SUF) *job,
                                             const T *restrict gp, T *restrict gx,
                                             T *restrict rows)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    DLK_CAT(pool_ivec, SUF) down;  /* (v, w) -> v[1 .. VL-1], w[0]: share of window j + 1 */
    for (dlk_idx k = 0; k < POOL_VL; k++)
        down[k] = (TI)(k + 1);
    const dlk_idx W = job->s->w, OW = job->s->ow, OH = job->s->oh;
    const vec zero = {0};
    T *cur = rows, *next = rows + OW + POOL_VL;
    DLK_CAT(k3s2_avg_shares, SUF)(job, gp, 0, cur);
    for (dlk_idx i = 0; i < OH; i++) {
        const int more = i + 1 < OH;
        if (more)
            DLK_CAT(k3s2_avg_shares, SUF)(job, gp + (i + 1) * OW, i + 1, next);
        T *restrict x0 = gx + 2 * i * W, *restrict x1 = x0 + W;
        vec c0 = DLK_CAT(pool_load, SUF)(cur), c1 = zero;
        if (more)
            c1 = DLK_CAT(pool_load, SUF)(next);
        for (dlk_idx j0 = 0; j0 < OW; j0 += POOL_VL) {
            const vec n0 = DLK_CAT(pool_load, SUF)(cur + j0 + POOL_VL);
            const vec e0 = zero + c0;
            const vec o0 = e0 + __builtin_shuffle(c0, n0, down);
            DLK_CAT(pool_store2, SUF)(x0 + 2 * j0, e0, o0);
            if (more) {
                const vec n1 = DLK_CAT(pool_load, SUF)(next + j0 + POOL_VL);
                DLK_CAT(pool_store2, SUF)(x1 + 2 * j0, e0 + c1,
                                          (o0 + c1) + __builtin_shuffle(c1, n1, down));
                c1 = n1;
            } else {
                DLK_CAT(pool_store2, SUF)(x1 + 2 * j0, e0, o0);  /* row H - 1 */
            }
            c0 = n0;
        }
        T *t = cur;
        cur = next;
        next = t;
    }
}

/* Plane p of a job: forward when grad_out is NULL, else backward. rows: 2 (OW + VL)
 * zeroed values (backward only). */
static void DLK_CAT(k3s2_avg_plane, SUF)(const DLK_CAT(pool_k3s2_job, SUF) *job, dlk_idx p,
                                         T *rows)
{
    const dlk_idx hw = job->s->h * job->s->w, ohw = job->s->oh * job->s->ow;
    if (job->grad_out)
        DLK_CAT(k3s2_avg_plane_bwd, SUF)(job, job->grad_out + p * ohw, job->grad_x + p * hw,
                                         rows);
    else
        DLK_CAT(k3s2_avg_plane_fwd, SUF)(job, job->x + p * hw, job->out + p * ohw);
}
