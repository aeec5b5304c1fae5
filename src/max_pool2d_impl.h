/* Template body of max_pool2d.c: T is the element type, SUF the name suffix. */

#include "pool_vec_impl.h"

/* Fold one padded input row into the running maxima of output columns [0, owr):
 * taps b in order, strict ">" so the first maximum wins, NaN always taken
 * (PyTorch's rule). owr is a multiple of DLK_POOL_BLOCK and buf is padded with
 * -inf, so every block is a full, branch-free vector loop; a -inf pad never wins.
 * Inlined at call sites with constant kw/sw/dw so each common geometry gets its
 * own loop (shuffles instead of gathers). */
static DLK_INLINE void DLK_CAT(max_taps, SUF)(const T *restrict buf, int64_t rowbase,
                                              dlk_idx owr, dlk_idx kw, dlk_idx sw,
                                              dlk_idx dw, T *restrict o,
                                              int64_t *restrict ind)
{
    /* one flat loop over j: GCC vectorizes it with the widest vectors and, owr being a
     * multiple of the vector length, never runs its scalar remainder */
    if (ind) {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            int64_t mi = ind[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const dlk_idx q = j * sw + b * dw;
                const T v = buf[q];
                const int take = (v > m) | (v != v);
                m = take ? v : m;
                mi = take ? rowbase + q : mi;
            }
            o[j] = m;
            ind[j] = mi;
        }
    } else {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = buf[j * sw + b * dw];
                m = ((v > m) | (v != v)) ? v : m;
            }
            o[j] = m;
        }
    }
}

/* Stride 2: the padded row split into even and odd columns, so tap b of window
 * j reads ev/od[j + b/2] with unit stride. Used for kw = 3, whose strided read
 * past each pair makes GCC peel a scalar, branchy (mispredicted) iteration. */
static DLK_INLINE void DLK_CAT(max_taps_s2, SUF)(const T *restrict ev, const T *restrict od,
                                                 int64_t rowbase, dlk_idx owr, dlk_idx kw,
                                                 T *restrict o, int64_t *restrict ind)
{
    if (ind) {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            int64_t mi = ind[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = (b & 1) ? od[j + b / 2] : ev[j + b / 2];
                const int take = (v > m) | (v != v);
                m = take ? v : m;
                mi = take ? rowbase + 2 * j + b : mi;
            }
            o[j] = m;
            ind[j] = mi;
        }
    } else {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = (b & 1) ? od[j + b / 2] : ev[j + b / 2];
                m = ((v > m) | (v != v)) ? v : m;
            }
            o[j] = m;
        }
    }
}

/* One output row from a prepared plane (padded on all sides, so every tap of
 * every window is inside it: no clipping), r0 being the window's first row;
 * split: rows are even/odd halves of length half (stride 2). All kh x kw taps of
 * column j are folded in one pass, row-major, strict ">" so the first maximum
 * wins, NaN always taken; a -inf pad never wins and leaves PyTorch's default
 * argmax def + iw0[j]. Inlined with constant geometry at each call site. */
static DLK_INLINE void DLK_CAT(max_fused, SUF)(const T *restrict r0, dlk_idx rstride,
                                               dlk_idx owr, dlk_idx kh, dlk_idx kw,
                                               dlk_idx sw, int split, dlk_idx half,
                                               int64_t rowbase0, dlk_idx W, int64_t def,
                                               const int64_t *restrict iw0,
                                               T *restrict o, int64_t *restrict ind)
{
    for (dlk_idx j = 0; j < owr; j++) {
        T m = -INFINITY;
        int64_t mi = def + iw0[j];
        for (dlk_idx a = 0; a < kh; a++) {
            const T *restrict r = r0 + a * rstride;
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = split ? ((b & 1) ? r[half + j + b / 2] : r[j + b / 2])
                                  : r[j * sw + b];
                const int take = (v > m) | (v != v);
                m = take ? v : m;
                mi = take ? rowbase0 + a * W + j * sw + b : mi;
            }
        }
        o[j] = m;
        ind[j] = mi;
    }
}

/* later tap v over running m: v where v > m or v is NaN */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(maxp_fold, SUF)(DLK_CAT(pool_vec, SUF) m,
                                                                 DLK_CAT(pool_vec, SUF) v)
{
#if POOL_BYTES == 16 && defined(__SSE2__) && !defined(__SSE4_1__)
    /* SSE2 has no blend: maxps/maxpd give "v > m ? v : m" (their NaN and tie
     * rules are exactly that), then a NaN v is taken: five operations a fold
     * instead of six. (GCC turns the same select written per lane into scalar
     * code here.) */
    typedef float v4sf __attribute__((vector_size(16)));
    typedef double v2df __attribute__((vector_size(16)));
    if (sizeof(T) == 4) {
        v4sf a, b;
        memcpy(&a, &v, sizeof a);
        memcpy(&b, &m, sizeof b);
        a = __builtin_ia32_maxps(a, b);
        memcpy(&m, &a, sizeof m);
    } else {
        v2df a, b;
        memcpy(&a, &v, sizeof a);
        memcpy(&b, &m, sizeof b);
        a = __builtin_ia32_maxpd(a, b);
        memcpy(&m, &a, sizeof m);
    }
    const DLK_CAT(pool_ivec, SUF) take = v != v;
#else
    const DLK_CAT(pool_ivec, SUF) take = (v > m) | (v != v);
#endif
    DLK_CAT(pool_ivec, SUF) vi, mi;
    memcpy(&vi, &v, sizeof vi);
    memcpy(&mi, &m, sizeof mi);
    const DLK_CAT(pool_ivec, SUF) r = (take & vi) | (~take & mi);
    memcpy(&m, &r, sizeof m);
    return m;
}

/* Values only, explicit vectors (pool_vec_impl.h). The rule "a later tap wins if greater
 * or NaN" is associative (it yields the last NaN, else the first maximum in
 * window order), so each window row is folded on its own and the row results are
 * folded in order: kh independent chains instead of one kh*kw-deep chain of
 * compare + blend, which bounds a row that is one vector. */
static DLK_INLINE void DLK_CAT(max_fused_vals, SUF)(const T *restrict r0, dlk_idx rstride,
                                                    dlk_idx owr, dlk_idx kh, dlk_idx kw,
                                                    int mode, dlk_idx half, T *restrict o)
{
    for (dlk_idx j = 0; j < owr; j += POOL_VL) {
        DLK_CAT(pool_vec, SUF) m = DLK_CAT(pool_tap, SUF)(r0, j, 0, mode, half);
        for (dlk_idx b = 1; b < kw; b++)
            m = DLK_CAT(maxp_fold, SUF)(m, DLK_CAT(pool_tap, SUF)(r0, j, b, mode, half));
        for (dlk_idx a = 1; a < kh; a++) {
            const T *restrict r = r0 + a * rstride;
            DLK_CAT(pool_vec, SUF) rm = DLK_CAT(pool_tap, SUF)(r, j, 0, mode, half);
            for (dlk_idx b = 1; b < kw; b++)
                rm = DLK_CAT(maxp_fold, SUF)(rm, DLK_CAT(pool_tap, SUF)(r, j, b, mode, half));
            m = DLK_CAT(maxp_fold, SUF)(m, rm);
        }
        memcpy(o + j, &m, sizeof m);
    }
}
/* Argmax of each window of one output row as a flat index into the H*W plane
 * (the backward's scatter target), same fold and ties as max_fused_vals: the
 * candidate index rides along each compare. rowbase0 = hs*W - pw (flat index of
 * padded column 0 of the window's first row), def = ih0*W (PyTorch's default row
 * for a window of only -inf, whose default column is the first in range). */
static DLK_INLINE DLK_CAT(pool_ivec, SUF) DLK_CAT(maxp_isel, SUF)(DLK_CAT(pool_ivec, SUF) take,
                                                                  DLK_CAT(pool_ivec, SUF) a,
                                                                  DLK_CAT(pool_ivec, SUF) b)
{
    return (take & a) | (~take & b);
}

static DLK_INLINE void DLK_CAT(max_fused_arg, SUF)(const T *restrict r0, dlk_idx rstride,
                                                   dlk_idx owr, dlk_idx kh, dlk_idx kw,
                                                   int mode, dlk_idx half, dlk_idx sw,
                                                   TI rowbase0, TI W, TI def, TI pw,
                                                   TI *restrict ib)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    ivec lane;
    for (dlk_idx k = 0; k < POOL_VL; k++)
        lane[k] = (TI)(k * sw);
    for (dlk_idx j = 0; j < owr; j += POOL_VL) {
        const ivec col0 = (TI)(j * sw) + lane;  /* padded column of tap 0 */
        vec m = DLK_CAT(pool_tap, SUF)(r0, j, 0, mode, half);
        ivec mi = rowbase0 + col0;
        for (dlk_idx b = 1; b < kw; b++) {
            const vec v = DLK_CAT(pool_tap, SUF)(r0, j, b, mode, half);
            const ivec take = (v > m) | (v != v);
            m = DLK_CAT(maxp_fold, SUF)(m, v);
            mi = DLK_CAT(maxp_isel, SUF)(take, rowbase0 + col0 + (TI)b, mi);
        }
        for (dlk_idx a = 1; a < kh; a++) {
            const T *restrict r = r0 + a * rstride;
            const TI rb = rowbase0 + (TI)a * W;
            vec rm = DLK_CAT(pool_tap, SUF)(r, j, 0, mode, half);
            ivec ri = rb + col0;
            for (dlk_idx b = 1; b < kw; b++) {
                const vec v = DLK_CAT(pool_tap, SUF)(r, j, b, mode, half);
                const ivec take = (v > rm) | (v != v);
                rm = DLK_CAT(maxp_fold, SUF)(rm, v);
                ri = DLK_CAT(maxp_isel, SUF)(take, rb + col0 + (TI)b, ri);
            }
            const ivec take = (rm > m) | (rm != rm);
            m = DLK_CAT(maxp_fold, SUF)(m, rm);
            mi = DLK_CAT(maxp_isel, SUF)(take, ri, mi);
        }
        /* only -inf (input or padding): PyTorch's default, the first in-range cell */
        ivec dcol = col0 - pw;
        dcol = DLK_CAT(maxp_isel, SUF)(dcol < 0, dcol - dcol, dcol);
        mi = DLK_CAT(maxp_isel, SUF)(m == -INFINITY, def + dcol, mi);
        memcpy(ib + j, &mi, sizeof mi);
    }
}

/* One output row oh into o[0, owr) and (if not NULL) ind, from the prepared rows
 * (row ih at rows + ih * rstride, for ih in [-ph, g->rows - ph)). iw0[j] is the first
 * in-range column of window j: the argmax PyTorch reports for a window that holds only
 * -inf. */
static void DLK_CAT(max_row, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                  int mode, const T *restrict rows, dlk_idx rstride,
                                  dlk_idx oh, T *restrict o, int64_t *restrict ind)
{
    const dlk_idx W = s->w, sw = s->sw, dw = s->dw, pw = s->pw, kw = s->kw;
    const dlk_idx hs = oh * s->sh - s->ph;
    dlk_idx alo, ahi;
    dlk_pool_taps(hs, s->kh, s->dh, s->h, &alo, &ahi);
    const dlk_idx ih0 = hs + alo * s->dh;  /* PyTorch's default argmax row */
    const T ninf = -INFINITY;

    const int kind = dlk_pool_fused_kind(s);
    if (kind) {
        /* window rows hs .. hs + kh - 1 all lie in the prepared plane */
        const T *r0 = rows + hs * rstride;
        const int64_t rb = hs * W - pw, def = ih0 * W;
        const dlk_idx owr = g->owr, half = g->half;
        if (!ind) {
            if (kind == 1)
                DLK_CAT(max_fused_vals, SUF)(r0, rstride, owr, 3, 3, 1, half, o);
            else if (kind == 2)
                DLK_CAT(max_fused_vals, SUF)(r0, rstride, owr, 2, 2, 2, half, o);
            else if (kind == 3)
                DLK_CAT(max_fused_vals, SUF)(r0, rstride, owr, 3, 3, 0, half, o);
            else
                DLK_CAT(max_fused_vals, SUF)(r0, rstride, owr, 2, 2, 0, half, o);
        } else if (kind == 1)
            DLK_CAT(max_fused, SUF)(r0, rstride, owr, 3, 3, 2, 1, half, rb, W, def, g->iw0, o, ind);
        else if (kind == 2)
            DLK_CAT(max_fused, SUF)(r0, rstride, owr, 2, 2, 2, 0, half, rb, W, def, g->iw0, o, ind);
        else if (kind == 3)
            DLK_CAT(max_fused, SUF)(r0, rstride, owr, 3, 3, 1, 0, half, rb, W, def, g->iw0, o, ind);
        else
            DLK_CAT(max_fused, SUF)(r0, rstride, owr, 2, 2, 1, 0, half, rb, W, def, g->iw0, o, ind);
        return;
    }
    for (dlk_idx j = 0; j < g->owr; j++)
        o[j] = ninf;
    if (ind)
        for (dlk_idx j = 0; j < g->owr; j++)
            ind[j] = ih0 * W + g->iw0[j];
    for (dlk_idx a = alo; a < ahi; a++) {
        const dlk_idx ih = hs + a * s->dh;
        const int64_t rowbase = ih * W - pw;
        const T *restrict buf = rows + ih * rstride;
        if (mode == DLK_POOL_SPLIT)
            DLK_CAT(max_taps_s2, SUF)(buf, buf + g->half, rowbase, g->owr, 3, o, ind);
        else if (dw == 1 && sw == 2 && kw == 2)
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, 2, 2, 1, o, ind);
        else if (dw == 1 && sw == 1 && kw == 3)
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, 3, 1, 1, o, ind);
        else if (dw == 1 && sw == 1 && kw == 2)
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, 2, 1, 1, o, ind);
        else
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, kw, sw, dw, o, ind);
    }
}

/* Every output row of one plane, values only, for a fused geometry: the row
 * loop sits outside the call so a one-vector row pays no per-call setup. buf
 * takes a row of owr when ow is not a whole number of blocks. */
static DLK_INLINE void DLK_CAT(max_plane_vals_k, SUF)(const dlk_pool2d_shape *s,
                                                      const dlk_pool_scratch *g,
                                                      const T *rows, dlk_idx rstride,
                                                      dlk_idx kh, dlk_idx kw, int mode,
                                                      T *restrict outp, T *restrict buf)
{
    const dlk_idx ow = s->ow, owr = g->owr;
    for (dlk_idx i = 0; i < s->oh; i++) {
        const T *r0 = rows + (i * s->sh - s->ph) * rstride;
        if (owr == ow) {
            DLK_CAT(max_fused_vals, SUF)(r0, rstride, owr, kh, kw, mode, g->half, outp + i * ow);
        } else {
            DLK_CAT(max_fused_vals, SUF)(r0, rstride, owr, kh, kw, mode, g->half, buf);
            memcpy(outp + i * ow, buf, (size_t)ow * sizeof(T));
        }
    }
}

static void DLK_CAT(max_plane_vals, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                         int kind, const T *rows, dlk_idx rstride,
                                         T *restrict outp, T *restrict buf)
{
    if (kind == 1)
        DLK_CAT(max_plane_vals_k, SUF)(s, g, rows, rstride, 3, 3, 1, outp, buf);
    else if (kind == 2)
        DLK_CAT(max_plane_vals_k, SUF)(s, g, rows, rstride, 2, 2, 2, outp, buf);
    else if (kind == 3)
        DLK_CAT(max_plane_vals_k, SUF)(s, g, rows, rstride, 3, 3, 0, outp, buf);
    else
        DLK_CAT(max_plane_vals_k, SUF)(s, g, rows, rstride, 2, 2, 0, outp, buf);
}

/* Winning tap a*kw + b of each window of the vector of output columns from j
 * (same fold and ties as max_fused_vals); a window of only -inf gets the tap of
 * its first in-range cell (PyTorch's default): row a0, column max(pw - col, 0). */
static DLK_INLINE DLK_CAT(pool_ivec, SUF) DLK_CAT(max_fused_code, SUF)(
    const T *restrict r0, dlk_idx rstride, dlk_idx j, dlk_idx kh, dlk_idx kw, int mode,
    dlk_idx half, dlk_idx sw, TI a0, TI pw, DLK_CAT(pool_vec, SUF) *mx)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    vec m = DLK_CAT(pool_tap, SUF)(r0, j, 0, mode, half);
    ivec zero = {0};
    ivec mc = zero;
    for (dlk_idx b = 1; b < kw; b++) {
        const vec v = DLK_CAT(pool_tap, SUF)(r0, j, b, mode, half);
        mc = DLK_CAT(maxp_isel, SUF)((v > m) | (v != v), zero + (TI)b, mc);
        m = DLK_CAT(maxp_fold, SUF)(m, v);
    }
    for (dlk_idx a = 1; a < kh; a++) {
        const T *restrict r = r0 + a * rstride;
        vec rm = DLK_CAT(pool_tap, SUF)(r, j, 0, mode, half);
        ivec rc = zero + (TI)(a * kw);
        for (dlk_idx b = 1; b < kw; b++) {
            const vec v = DLK_CAT(pool_tap, SUF)(r, j, b, mode, half);
            rc = DLK_CAT(maxp_isel, SUF)((v > rm) | (v != v), zero + (TI)(a * kw + b), rc);
            rm = DLK_CAT(maxp_fold, SUF)(rm, v);
        }
        mc = DLK_CAT(maxp_isel, SUF)((rm > m) | (rm != rm), rc, mc);
        m = DLK_CAT(maxp_fold, SUF)(m, rm);
    }
    ivec b0;  /* pw - (j + k) * sw, from a constant lane ramp (no per-lane inserts) */
    for (dlk_idx k = 0; k < POOL_VL; k++)
        b0[k] = (TI)k;
    b0 = pw - ((TI)j + b0) * (TI)sw;
    b0 = DLK_CAT(maxp_isel, SUF)(b0 < 0, zero, b0);
    *mx = m;
    return DLK_CAT(maxp_isel, SUF)(m == -INFINITY, a0 * (TI)kw + b0, mc);
}

/* The flat indices of taps code = a*kw + b (a < 3) of the windows of a vector of
 * output columns, as int64: dst[k] = base + a*W + b + k*sw, base being the flat
 * index of tap (0, 0) of lane 0. The in-window offset is formed in TI lanes
 * (callers keep W below 1e9) and widened eight lanes at a time. */
static DLK_INLINE void DLK_CAT(max_store_ind, SUF)(int64_t *restrict dst,
                                                   DLK_CAT(pool_ivec, SUF) code, TI kw,
                                                   int64_t base, TI W, TI sw)
{
    const DLK_CAT(pool_ivec, SUF) a = -((code >= kw) + (code >= 2 * kw));  /* masks are -1 */
    DLK_CAT(pool_ivec, SUF) ramp;
    for (dlk_idx k = 0; k < POOL_VL; k++)
        ramp[k] = (TI)k;
    const DLK_CAT(pool_ivec, SUF) off = a * W + (code - a * kw) + ramp * sw;
    const DLK_CAT(pool_wide, SUF) v = __builtin_convertvector(off, DLK_CAT(pool_wide, SUF)) + base;
    memcpy(dst, &v, sizeof v);
}

/* Inverse of max_store_ind for saved indices: the tap codes a*kw + b of the VL
 * windows whose tap (0, 0) of lane 0 has flat index base. An index that is no tap
 * of its window, or that names a padding cell (a row above the plane: a < a0; a
 * column left of it: lane 0 with b < b0), clears its lane of *ok (the caller then
 * scatters the plane instead, as PyTorch does with any index). */
static DLK_INLINE DLK_CAT(pool_dvec, SUF) DLK_CAT(max_ind_code_dl, SUF)(
    const int64_t *restrict ind, int64_t base, int64_t W, int64_t kw, int64_t sw,
    int64_t a0, int64_t b0, DLK_CAT(pool_dvec, SUF) *ok)
{
    typedef DLK_CAT(pool_dvec, SUF) wide;
    typedef uint64_t uwide __attribute__((vector_size(sizeof(wide))));
    wide off, lane;
    for (dlk_idx k = 0; k < POOL_DL; k++)
        lane[k] = k;
    memcpy(&off, ind, sizeof off);
    off -= base + lane * sw;
    const wide zero = {0};
    const wide m1 = off >= W, m2 = kw == 3 ? off >= 2 * W : zero;  /* row a = -(m1 + m2) */
    const wide b = off - (m1 & W) - (m2 & W);
    /* b in [0, kw) also rejects off < 0; off >= kw * W leaves b >= W >= kw */
    wide v = (uwide)b < (uint64_t)kw;
    if (a0)
        v &= m1;
    if (b0) {
        wide bmin = zero;
        bmin[0] = b0;
        v &= b >= bmin;
    }
    *ok &= v;
    return b + (m1 & kw) + (m2 & kw);
}

#if POOL_BYTES == 16 && !defined(__SSE4_2__)
/* max_ind_code for float on SSE2, which has no 64-bit compare (pcmpgtq is
 * SSE4.2): GCC decodes int64 lanes one at a time in general registers. The four
 * offsets are narrowed first: a tap's offset is below 2W + kw < 2^31 (callers
 * keep W below 1e9), so an offset with a nonzero high word or a negative low word
 * is no tap (as in the int64 decode, where it leaves b >= kw or b < 0), and the
 * low words are decoded like max_ind_code_dl in int32 lanes. Each int64 lane of
 * *ok takes the validity of both windows it covers. */
static DLK_INLINE DLK_CAT(pool_ivec, SUF) DLK_CAT(max_ind_code_sse2, SUF)(
    const int64_t *restrict ind, int64_t base, int64_t W, int64_t kw, int64_t sw,
    int64_t a0, int64_t b0, DLK_CAT(pool_dvec, SUF) *ok)
{
    typedef int64_t v2di __attribute__((vector_size(16)));
    typedef int32_t v4si __attribute__((vector_size(16)));
    const v2di first = {base, base + sw};  /* flat index of tap (0, 0) of lanes 0, 1 */
    v2di o0, o1;
    memcpy(&o0, ind, sizeof o0);
    memcpy(&o1, ind + 2, sizeof o1);
    o0 -= first;
    o1 -= first + 2 * sw;
    v4si w0, w1;
    memcpy(&w0, &o0, sizeof w0);
    memcpy(&w1, &o1, sizeof w1);
    const v4si lo = __builtin_shuffle(w0, w1, (v4si){0, 2, 4, 6});
    const v4si hi = __builtin_shuffle(w0, w1, (v4si){1, 3, 5, 7});
    const int32_t w = (int32_t)W, k = (int32_t)kw;
    const v4si zero = {0};
    const v4si m1 = lo >= w, m2 = kw == 3 ? lo >= 2 * w : zero;  /* row a = -(m1 + m2) */
    const v4si b = lo - (m1 & w) - (m2 & w);
    v4si v = (hi == 0) & (lo >= 0) & (b < k);
    if (a0)
        v &= m1;
    if (b0) {
        v4si bmin = zero;
        bmin[0] = (int32_t)b0;
        v &= b >= bmin;
    }
    v &= __builtin_shuffle(v, (v4si){1, 0, 3, 2});
    v2di v64;
    memcpy(&v64, &v, sizeof v64);
    *ok &= v64;
    const v4si code = b + (m1 & k) + (m2 & k);
    DLK_CAT(pool_ivec, SUF) r;
    memcpy(&r, &code, sizeof r);
    return r;
}
#endif

static DLK_INLINE DLK_CAT(pool_ivec, SUF) DLK_CAT(max_ind_code, SUF)(
    const int64_t *restrict ind, int64_t base, int64_t W, int64_t kw, int64_t sw,
    int64_t a0, int64_t b0, DLK_CAT(pool_dvec, SUF) *ok)
{
#if POOL_BYTES == 16 && !defined(__SSE4_2__)
    if (POOL_VL == 4)  /* float */
        return DLK_CAT(max_ind_code_sse2, SUF)(ind, base, W, kw, sw, a0, b0, ok);
#endif
    const DLK_CAT(pool_dvec, SUF) c0 =
        DLK_CAT(max_ind_code_dl, SUF)(ind, base, W, kw, sw, a0, b0, ok);
    /* in halves of one register of int64 (wider generic vectors are scalarized) */
    DLK_CAT(pool_ivec, SUF) lo, hi, low;
    memcpy(&lo, &c0, sizeof lo);  /* same size: a register reinterpretation */
    if (POOL_VL == POOL_DL)       /* TI is int64 */
        return lo;
    const DLK_CAT(pool_dvec, SUF) c1 =
        DLK_CAT(max_ind_code_dl, SUF)(ind + POOL_DL, base + POOL_DL * sw, W, kw, sw, 0, 0, ok);
    memcpy(&hi, &c1, sizeof hi);
    for (dlk_idx k = 0; k < POOL_VL; k++)
        low[k] = (TI)(2 * k);  /* the low 32-bit word of each int64 (codes < 9) */
    return __builtin_shuffle(lo, hi, low);
}

/* Values and argmax indices of every output row of one plane, for a fused
 * geometry whose rows are whole vectors (owr == ow): the winning taps in vectors
 * (max_fused_code), then their flat indices. */
static DLK_INLINE void DLK_CAT(max_plane_ind_k, SUF)(const dlk_pool2d_shape *s,
                                                     const dlk_pool_scratch *g,
                                                     const T *rows, dlk_idx rstride,
                                                     dlk_idx kh, dlk_idx kw, dlk_idx sw,
                                                     int mode, T *restrict outp,
                                                     int64_t *restrict indp)
{
    const dlk_idx ow = s->ow;
    for (dlk_idx i = 0; i < s->oh; i++) {
        const dlk_idx hs = i * s->sh - s->ph;
        for (dlk_idx j = 0; j < ow; j += POOL_VL) {
            DLK_CAT(pool_vec, SUF) m;
            const DLK_CAT(pool_ivec, SUF) code = DLK_CAT(max_fused_code, SUF)(
                rows + hs * rstride, rstride, j, kh, kw, mode, g->half, sw,
                (TI)(DLK_MAX(hs, 0) - hs), (TI)s->pw, &m);
            memcpy(outp + i * ow + j, &m, sizeof m);
            DLK_CAT(max_store_ind, SUF)(indp + i * ow + j, code, (TI)kw,
                                        hs * s->w - s->pw + j * sw, (TI)s->w, (TI)sw);
        }
    }
}

static void DLK_CAT(max_plane_ind, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                        int kind, const T *rows, dlk_idx rstride,
                                        T *restrict outp, int64_t *restrict indp)
{
    if (kind == 1)
        DLK_CAT(max_plane_ind_k, SUF)(s, g, rows, rstride, 3, 3, 2, 1, outp, indp);
    else if (kind == 2)
        DLK_CAT(max_plane_ind_k, SUF)(s, g, rows, rstride, 2, 2, 2, 2, outp, indp);
    else if (kind == 3)
        DLK_CAT(max_plane_ind_k, SUF)(s, g, rows, rstride, 3, 3, 1, 0, outp, indp);
    else
        DLK_CAT(max_plane_ind_k, SUF)(s, g, rows, rstride, 2, 2, 1, 0, outp, indp);
}

/* g where code == c, else +0.0 (adding it is exact: acc is never -0.0) */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(maxp_gsel, SUF)(DLK_CAT(pool_ivec, SUF) code,
                                                                 TI c,
                                                                 DLK_CAT(pool_ivec, SUF) gi)
{
    DLK_CAT(pool_vec, SUF) v;
    const DLK_CAT(pool_ivec, SUF) sel = gi & (code == c);
    memcpy(&v, &sel, sizeof v);
    return v;
}

/* Backward of one plane for a fused stride-2 geometry (kw = 2 or 3), in
 * vectors: each output row's winning taps, then grad_out added into a zeroed
 * padded plane acc split into even/odd halves like the prepared rows, then its
 * interior merged into gx. Every cell receives its contributions in PyTorch's
 * order (output row, then column): an even cell k gets tap 2 of window k - 1
 * before tap 0 of window k, the former shifted in from the previous vector in
 * registers (one load and store per vector: a store at j + 1 followed by a load
 * at j would stall on store forwarding). gb holds a row of grad_out padded with
 * zeros to owr. */
static DLK_INLINE void DLK_CAT(max_plane_bwd_k, SUF)(const dlk_pool2d_shape *s,
                                                     const dlk_pool_scratch *g,
                                                     const T *rows, dlk_idx rstride,
                                                     dlk_idx kh, dlk_idx kw, int mode,
                                                     const T *restrict gp, T *restrict gx,
                                                     T *restrict acc, T *restrict gb)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    const dlk_idx W = s->w, ow = s->ow, owr = g->owr, len = g->len, half = g->half;
    const dlk_idx pw = s->pw;
    ivec shift;  /* (prev, cur) -> prev[VL - 1], cur[0], ..., cur[VL - 2] */
    for (dlk_idx k = 0; k < POOL_VL; k++)
        shift[k] = (TI)(POOL_VL - 1 + k);
    memset(acc, 0, (size_t)(g->rows * len) * sizeof(T));
    for (dlk_idx i = 0; i < s->oh; i++) {
        const dlk_idx hs = i * s->sh - s->ph;
        const T *gr = gp + i * ow;
        if (owr != ow) {
            memcpy(gb, gr, (size_t)ow * sizeof(T));  /* gb[ow, owr) stays zero */
            gr = gb;
        }
        vec prev[3] = {{0}, {0}, {0}};
        for (dlk_idx j = 0; j < owr; j += POOL_VL) {
            vec m;
            const ivec code = DLK_CAT(max_fused_code, SUF)(
                rows + hs * rstride, rstride, j, kh, kw, mode, g->half, 2,
                (TI)(DLK_MAX(hs, 0) - hs), (TI)pw, &m);
            ivec gi;
            memcpy(&gi, gr + j, sizeof gi);
            for (dlk_idx a = 0; a < kh; a++) {
                T *restrict ev = acc + (i * s->sh + a) * len + j, *restrict od = ev + half;
                vec e, o;
                memcpy(&e, ev, sizeof e);
                memcpy(&o, od, sizeof o);
                if (kw == 3) {
                    const vec c2 = DLK_CAT(maxp_gsel, SUF)(code, (TI)(a * kw + 2), gi);
                    e += __builtin_shuffle(prev[a], c2, shift);
                    prev[a] = c2;
                }
                e += DLK_CAT(maxp_gsel, SUF)(code, (TI)(a * kw), gi);
                o += DLK_CAT(maxp_gsel, SUF)(code, (TI)(a * kw + 1), gi);
                memcpy(ev, &e, sizeof e);
                memcpy(od, &o, sizeof o);
            }
        }
        if (kw == 3)  /* tap 2 of the last vector's last window */
            for (dlk_idx a = 0; a < kh; a++)
                acc[(i * s->sh + a) * len + owr] += prev[a][POOL_VL - 1];
    }
    for (dlk_idx ih = 0; ih < s->h; ih++) {
        const T *ar = acc + (ih + s->ph) * len;
        DLK_POOL_MERGE_ROW(SUF, ar, ar + half, W, pw, gx + ih * W);
    }
}

/* 2x2 stride 2 without padding and without ceil_mode's partial windows: the
 * windows tile the plane, so each cell of grad_x is written exactly once, in
 * place (no zeroing, no accumulation plane): the winning tap takes grad_out
 * (+ 0.0), the other three 0, the two taps of each row interleaved back in
 * registers. Cells no window covers (odd H or W) are zeroed. The winning taps
 * come from x (indp NULL) or from the forward's indices (indp; rows, g and gb
 * unused, whole vectors only); returns nonzero if an index is no tap of its
 * window (grad_x then unfinished, for the caller to scatter instead). */
static DLK_INLINE int DLK_CAT(max_plane_bwd_tiled, SUF)(const dlk_pool2d_shape *s,
                                                        const dlk_pool_scratch *g,
                                                        const T *rows, dlk_idx rstride,
                                                        const int64_t *restrict indp,
                                                        const T *restrict gp,
                                                        T *restrict gx, T *restrict gb)
{
    DLK_CAT(pool_dvec, SUF) ok = {0};
    ok -= 1;
    typedef DLK_CAT(pool_vec, SUF) vec;
    typedef DLK_CAT(pool_ivec, SUF) ivec;
    const dlk_idx W = s->w, ow = s->ow;
    ivec lo, hi;  /* interleave (a, b) -> a0 b0 a1 b1 ... */
    for (dlk_idx k = 0; k < POOL_VL; k++) {
        lo[k] = (TI)(k / 2 + (k & 1) * POOL_VL);
        hi[k] = (TI)(POOL_VL / 2 + k / 2 + (k & 1) * POOL_VL);
    }
    for (dlk_idx i = 0; i < s->oh; i++) {
        T *restrict x0 = gx + 2 * i * W, *restrict x1 = x0 + W;
        for (dlk_idx j = 0; j < ow; j += POOL_VL) {
            vec m;
            const ivec code =
                indp ? DLK_CAT(max_ind_code, SUF)(indp + i * ow + j, 2 * i * W + 2 * j, W, 2, 2,
                                                  0, 0, &ok)
                     : DLK_CAT(max_fused_code, SUF)(rows + 2 * i * rstride, rstride, j, 2, 2, 2,
                                                    g->half, 2, 0, 0, &m);
            ivec gi;
            if (j + POOL_VL <= ow) {
                memcpy(&gi, gp + i * ow + j, sizeof gi);
            } else {
                memcpy(gb, gp + i * ow + j, (size_t)(ow - j) * sizeof(T));
                memcpy(&gi, gb, sizeof gi);  /* gb[ow - j, VL) stays zero */
            }
            vec out[4];
            const vec zero = {0};  /* + 0: PyTorch's zeroed cell turns a -0.0 share into +0.0 */
            for (int a = 0; a < 2; a++) {
                const vec c0 = zero + DLK_CAT(maxp_gsel, SUF)(code, (TI)(2 * a), gi);
                const vec c1 = zero + DLK_CAT(maxp_gsel, SUF)(code, (TI)(2 * a + 1), gi);
                out[2 * a] = __builtin_shuffle(c0, c1, lo);
                out[2 * a + 1] = __builtin_shuffle(c0, c1, hi);
            }
            const dlk_idx n = 2 * DLK_MIN(POOL_VL, ow - j);  /* cells of this block */
            if (n == 2 * POOL_VL) {
                memcpy(x0 + 2 * j, &out[0], 2 * sizeof(vec));
                memcpy(x1 + 2 * j, &out[2], 2 * sizeof(vec));
            } else {
                memcpy(x0 + 2 * j, &out[0], (size_t)n * sizeof(T));
                memcpy(x1 + 2 * j, &out[2], (size_t)n * sizeof(T));
            }
        }
        for (dlk_idx c = 2 * ow; c < W; c++)
            x0[c] = x1[c] = 0;
    }
    memset(gx + 2 * s->oh * W, 0, (size_t)((s->h - 2 * s->oh) * W) * sizeof(T));
    return !DLK_CAT(pool_all, SUF)(&ok);
}

/* The fused geometries the vector backward covers (stride 2): 0 if none. */
static int DLK_CAT(max_bwd_kind, SUF)(const dlk_pool2d_shape *s)
{
    const int kind = dlk_pool_fused_kind(s);
    return kind == 1 || kind == 2 ? kind : 0;
}

static void DLK_CAT(max_plane_bwd, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                        int kind, const T *rows, dlk_idx rstride,
                                        const T *restrict gp, T *restrict gx,
                                        T *restrict acc, T *restrict gb)
{
    if (kind == 1)
        DLK_CAT(max_plane_bwd_k, SUF)(s, g, rows, rstride, 3, 3, 1, gp, gx, acc, gb);
    else
        DLK_CAT(max_plane_bwd_k, SUF)(s, g, rows, rstride, 2, 2, 2, gp, gx, acc, gb);
}

/* grad_x of one plane by scattering grad_out through any indices. */
static void DLK_CAT(max_plane_scatter, SUF)(const T *restrict gp, const int64_t *restrict ind,
                                            dlk_idx hw, dlk_idx ohw, T *restrict gx)
{
    memset(gx, 0, (size_t)hw * sizeof(T));
    for (dlk_idx k = 0; k < ohw; k++) {
        const int64_t i = ind[k];
        if ((uint64_t)i < (uint64_t)hw)  /* one unsigned compare also rejects < 0 */
            gx[i] += gp[k];
    }
}

#include "max_pool2d_k3s2_impl.h"

/* Per-thread scratch: a prepared plane (H rows of g->len) and one output row of
 * values and indices. */
typedef struct {
    T *plane, *o;
    int64_t *ind;
} DLK_CAT(max_work, SUF);

static int DLK_CAT(max_work_alloc, SUF)(DLK_CAT(max_work, SUF) *w, const dlk_pool2d_shape *s,
                                        const dlk_pool_scratch *g, int mode)
{
    const size_t nplane = mode == DLK_POOL_DIRECT ? 0 : (size_t)(g->rows * g->len);
    const size_t n = nplane + (size_t)g->owr;
    w->plane = malloc(n * sizeof(T));
    w->ind = malloc((size_t)g->owr * sizeof(int64_t));
    if (!w->plane || !w->ind) {
        free(w->plane);
        free(w->ind);
        w->plane = NULL;
        w->ind = NULL;
        return DLK_ENOMEM;
    }
    for (size_t k = 0; k < n; k++)
        w->plane[k] = -INFINITY;  /* padding columns, never overwritten */
    w->o = w->plane + nplane;
    return DLK_OK;
}

static void DLK_CAT(max_work_free, SUF)(DLK_CAT(max_work, SUF) *w)
{
    free(w->plane);
    free(w->ind);
}

/* Prepared rows of plane p: x itself or the scratch plane. */
static const T *DLK_CAT(max_rows, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                       int mode, const T *xp, DLK_CAT(max_work, SUF) *w,
                                       dlk_idx *rstride)
{
    if (mode == DLK_POOL_DIRECT) {
        *rstride = s->w;
        return xp;
    }
    DLK_CAT(dlk_pool_prep, SUF)(s, g, mode, xp, w->plane);
    *rstride = g->len;
    return w->plane + s->ph * g->len;  /* input row 0; the top padding rows precede it */
}

/* The plane loop is the only parallel loop, so each output is computed by one
 * thread in one fixed order. */
int DLK_CAT(dlk_max_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                 int64_t *indices, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (DLK_CAT(pool_k3s2_ok, SUF)(s)) {
        const DLK_CAT(pool_k3s2_job, SUF) job = {.s = s, .x = x, .out = out, .ind = indices};
        return DLK_CAT(pool_k3s2_planes, SUF)(&job, 2 * (size_t)s->w,
                                              DLK_CAT(k3s2_max_plane, SUF), nthreads);
    }
    if (dlk_pool_scratch_init(&g, s, s->dw) != DLK_OK)
        return DLK_ENOMEM;
    const int mode = dlk_pool_mode(s, &g);
    const int in_place = g.owr == s->ow;  /* whole blocks: write straight to out */
    const int kind = dlk_pool_fused_kind(s);
    /* indices in vectors: whole blocks, in-window offsets in TI (int32 for float) */
    const int vec_ind = kind && indices && in_place && (double)s->w < 1e9;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        DLK_CAT(max_work, SUF) w;
        const int ok = DLK_CAT(max_work_alloc, SUF)(&w, s, &g, mode) == DLK_OK;
        failed = !ok;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!ok)
                continue;
            dlk_idx rstride;
            const T *rows = DLK_CAT(max_rows, SUF)(s, &g, mode, x + p * hw, &w, &rstride);
            if (kind && !indices) {
                DLK_CAT(max_plane_vals, SUF)(s, &g, kind, rows, rstride, out + p * ohw, w.o);
                continue;
            }
            if (vec_ind) {
                DLK_CAT(max_plane_ind, SUF)(s, &g, kind, rows, rstride, out + p * ohw,
                                            indices + p * ohw);
                continue;
            }
            for (dlk_idx i = 0; i < s->oh; i++) {
                T *orow = out + p * ohw + i * s->ow;
                int64_t *irow = indices ? indices + p * ohw + i * s->ow : NULL;
                if (in_place) {
                    DLK_CAT(max_row, SUF)(s, &g, mode, rows, rstride, i, orow, irow);
                    continue;
                }
                DLK_CAT(max_row, SUF)(s, &g, mode, rows, rstride, i, w.o,
                                      indices ? w.ind : NULL);
                memcpy(orow, w.o, (size_t)s->ow * sizeof(T));
                if (indices)
                    memcpy(irow, w.ind, (size_t)s->ow * sizeof(int64_t));
            }
        }
        if (ok)
            DLK_CAT(max_work_free, SUF)(&w);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}

/* Indices that name a tap of their own window (always so for the forward's) take
 * the write-once vector paths of the recomputing backward on 3x3/2 p1 even planes
 * and on tiling 2x2/2 rows of whole vectors; a plane holding any other index is
 * scattered. */
int DLK_CAT(dlk_max_pool2d_backward_indices, SUF)(const dlk_pool2d_shape *s,
                                                  const T *grad_out, const int64_t *indices,
                                                  T *grad_x, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    if (DLK_CAT(pool_k3s2_ok, SUF)(s)) {
        const DLK_CAT(pool_k3s2_job, SUF) job = {.s = s, .grad_out = grad_out,
                                                 .grad_x = grad_x, .saved = indices};
        return DLK_CAT(pool_k3s2_planes, SUF)(&job, (size_t)s->w,
                                              DLK_CAT(k3s2_max_plane_ind, SUF), nthreads);
    }
    const int tiled = s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 &&
                      s->pw == 0 && s->dh == 1 && s->dw == 1 && 2 * s->oh <= s->h &&
                      2 * s->ow <= s->w && s->ow % POOL_VL == 0 && (double)s->w < 1e9;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
    for (dlk_idx p = 0; p < s->planes; p++) {
        T *restrict gx = grad_x + p * hw;
        const T *restrict gp = grad_out + p * ohw;
        const int64_t *restrict ind = indices + p * ohw;
        if (!tiled || DLK_CAT(max_plane_bwd_tiled, SUF)(s, NULL, NULL, 0, ind, gp, gx, NULL))
            DLK_CAT(max_plane_scatter, SUF)(gp, ind, hw, ohw, gx);
    }
    return DLK_OK;
}

int DLK_CAT(dlk_max_pool2d_backward, SUF)(const dlk_pool2d_shape *s, const T *grad_out,
                                          const T *x, T *grad_x, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (DLK_CAT(pool_k3s2_ok, SUF)(s)) {
        const DLK_CAT(pool_k3s2_job, SUF) job = {.s = s, .x = x, .grad_out = grad_out,
                                                 .grad_x = grad_x};
        return DLK_CAT(pool_k3s2_planes, SUF)(&job, 2 * (size_t)s->w,
                                              DLK_CAT(k3s2_max_plane, SUF), nthreads);
    }
    if (dlk_pool_scratch_init(&g, s, s->dw) != DLK_OK)
        return DLK_ENOMEM;
    const int mode = dlk_pool_mode(s, &g);
    /* column arithmetic of the vector path is in TI (int32 for float) */
    const int kind = (double)s->w < 1e9 ? DLK_CAT(max_bwd_kind, SUF)(s) : 0;
    const int tiled = kind == 2 && s->sh == 2 && s->ph == 0 && s->pw == 0 &&
                      2 * s->oh <= s->h && 2 * s->ow <= s->w;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        DLK_CAT(max_work, SUF) w;
        /* fused geometries: a padded gradient plane and a zero-padded grad_out row */
        T *acc = kind ? calloc((size_t)(g.rows * g.len + g.owr), sizeof(T)) : NULL;
        const int ok_w = DLK_CAT(max_work_alloc, SUF)(&w, s, &g, mode) == DLK_OK;
        const int ok = ok_w && (!kind || acc);
        failed = !ok;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!ok)
                continue;
            T *restrict gx = grad_x + p * hw;
            dlk_idx rstride;
            const T *rows = DLK_CAT(max_rows, SUF)(s, &g, mode, x + p * hw, &w, &rstride);
            if (tiled) {
                DLK_CAT(max_plane_bwd_tiled, SUF)(s, &g, rows, rstride, NULL, grad_out + p * ohw,
                                                  gx, acc + g.rows * g.len);
                continue;
            }
            if (kind) {
                DLK_CAT(max_plane_bwd, SUF)(s, &g, kind, rows, rstride, grad_out + p * ohw,
                                            gx, acc, acc + g.rows * g.len);
                continue;
            }
            memset(gx, 0, (size_t)hw * sizeof(T));
            for (dlk_idx i = 0; i < s->oh; i++) {
                const T *restrict gp = grad_out + p * ohw + i * s->ow;
                DLK_CAT(max_row, SUF)(s, &g, mode, rows, rstride, i, w.o, w.ind);
                for (dlk_idx j = 0; j < s->ow; j++) {
                    const int64_t k = w.ind[j];
                    if ((uint64_t)k < (uint64_t)hw)
                        gx[k] += gp[j];
                }
            }
        }
        if (ok_w)
            DLK_CAT(max_work_free, SUF)(&w);
        free(acc);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}
