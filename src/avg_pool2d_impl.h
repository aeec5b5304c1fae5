/* Template body of avg_pool2d.c: T is the element type, SUF the name suffix. */

#include "pool_vec_impl.h"

/* Add one zero-padded input row to the window sums of output columns [0, owr),
 * taps in order (so each window is summed row-major as in PyTorch; the zeros of
 * the padding do not change a sum). Inlined with constant kw/sw per geometry. */
static DLK_INLINE void DLK_CAT(avg_taps, SUF)(const T *restrict buf, dlk_idx owr,
                                              dlk_idx kw, dlk_idx sw, T *restrict o)
{
    for (dlk_idx j = 0; j < owr; j++) {
        T acc = o[j];
        for (dlk_idx b = 0; b < kw; b++)
            acc += buf[j * sw + b];
        o[j] = acc;
    }
}

/* Stride 2, kw = 3: the row split into even/odd columns (see max_taps_s2). */
static DLK_INLINE void DLK_CAT(avg_taps_s2k3, SUF)(const T *restrict ev, const T *restrict od,
                                                   dlk_idx owr, T *restrict o)
{
    for (dlk_idx j = 0; j < owr; j++)
        o[j] = ((o[j] + ev[j]) + od[j]) + ev[j + 1];
}

/* Spread each column's share over its window's columns in the padded row e:
 * tap-outer, so for a fixed tap the columns hit distinct cells even when windows
 * overlap (stride < kernel). */
static DLK_INLINE void DLK_CAT(avg_spread, SUF)(const T *restrict delta, dlk_idx owr,
                                                dlk_idx kw, dlk_idx sw, T *restrict e)
{
    for (dlk_idx b = 0; b < kw; b++)
        for (dlk_idx j = 0; j < owr; j++)
            e[j * sw + b] += delta[j];
}

/* o[j] = v[j] / divisor for j < ow, with PyTorch's divisor for a row of clipped
 * height hv and padded height hp: override, else (hp * padded width) with
 * count_include_pad, else (hv * clipped width). Branch-free per column. Valid
 * geometry never has an empty window; PyTorch's 0 for one is kept anyway. v may
 * be o (no restrict: in place is elementwise). */
static void DLK_CAT(avg_divide, SUF)(const dlk_pool_scratch *g, dlk_idx ow, dlk_idx hv,
                                     dlk_idx hp, int cip, dlk_idx override,
                                     const T *v, T *o)
{
    if (hv <= 0) {
        for (dlk_idx j = 0; j < ow; j++)
            o[j] = 0;
    } else if (override > 0) {
        const T d = (T)override;
        for (dlk_idx j = 0; j < ow; j++)
            o[j] = v[j] / d;
    } else {
        const dlk_idx *restrict wf = cip ? g->wp : g->wv;
        const dlk_idx hf = cip ? hp : hv;
        for (dlk_idx j = 0; j < ow; j++)
            o[j] = v[j] / (T)(hf * wf[j]);
    }
}

static void DLK_CAT(avg_row, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                  int mode, const T *restrict rows, dlk_idx rstride,
                                  dlk_idx oh, int cip, dlk_idx override, T *restrict o)
{
    const dlk_idx sw = s->sw, kw = s->kw;
    dlk_idx h0, h1, hp;
    avg_extent(oh * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
    for (dlk_idx j = 0; j < g->owr; j++)
        o[j] = 0;
    for (dlk_idx ih = h0; ih < h1; ih++) {
        const T *restrict buf = rows + ih * rstride;
        if (mode == DLK_POOL_SPLIT)
            DLK_CAT(avg_taps_s2k3, SUF)(buf, buf + g->half, g->owr, o);
        else if (sw == 2 && kw == 2)
            DLK_CAT(avg_taps, SUF)(buf, g->owr, 2, 2, o);
        else if (sw == 1 && kw == 3)
            DLK_CAT(avg_taps, SUF)(buf, g->owr, 3, 1, o);
        else if (sw == 1 && kw == 2)
            DLK_CAT(avg_taps, SUF)(buf, g->owr, 2, 1, o);
        else
            DLK_CAT(avg_taps, SUF)(buf, g->owr, kw, sw, o);
    }
    DLK_CAT(avg_divide, SUF)(g, s->ow, h1 - h0, hp, cip, override, o, o);
}

/* Window sums of output rows i and i + 1 (two independent dependency chains:
 * each window is summed row-major from zero, PyTorch's order, so a one-vector
 * row would otherwise wait on kh*kw dependent adds), then divided. Rows come
 * from the plane prepared with zero padding on all sides. */
static DLK_INLINE void DLK_CAT(avg_plane_k, SUF)(const dlk_pool2d_shape *s,
                                                 const dlk_pool_scratch *g, const T *rows,
                                                 dlk_idx rstride, dlk_idx kh, dlk_idx kw,
                                                 int mode, int cip, dlk_idx override,
                                                 T *restrict outp, T *restrict buf)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    const dlk_idx ow = s->ow, owr = g->owr, half = g->half, oh = s->oh;
    const int whole = owr == ow;
    for (dlk_idx i = 0; i < oh; i += 2) {
        const int two = i + 1 < oh;
        const T *ra = rows + (i * s->sh - s->ph) * rstride;
        const T *rb = two ? ra + s->sh * rstride : ra;
        T *oa = whole ? outp + i * ow : buf;
        T *ob = whole && two ? outp + (i + 1) * ow : buf + owr;
        for (dlk_idx j = 0; j < owr; j += POOL_VL) {
            vec sa = {0}, sb = {0};
            for (dlk_idx a = 0; a < kh; a++)
                for (dlk_idx b = 0; b < kw; b++) {
                    sa += DLK_CAT(pool_tap, SUF)(ra + a * rstride, j, b, mode, half);
                    sb += DLK_CAT(pool_tap, SUF)(rb + a * rstride, j, b, mode, half);
                }
            memcpy(oa + j, &sa, sizeof sa);
            memcpy(ob + j, &sb, sizeof sb);
        }
        for (dlk_idx t = 0; t < 1 + two; t++) {
            T *o = t ? ob : oa;
            dlk_idx h0, h1, hp;
            avg_extent((i + t) * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
            DLK_CAT(avg_divide, SUF)(g, ow, h1 - h0, hp, cip, override, o, outp + (i + t) * ow);
        }
    }
}

static void DLK_CAT(avg_plane, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                    int kind, const T *rows, dlk_idx rstride, int cip,
                                    dlk_idx override, T *restrict outp, T *restrict buf)
{
    if (kind == 1)
        DLK_CAT(avg_plane_k, SUF)(s, g, rows, rstride, 3, 3, 1, cip, override, outp, buf);
    else if (kind == 2)
        DLK_CAT(avg_plane_k, SUF)(s, g, rows, rstride, 2, 2, 2, cip, override, outp, buf);
    else if (kind == 3)
        DLK_CAT(avg_plane_k, SUF)(s, g, rows, rstride, 3, 3, 0, cip, override, outp, buf);
    else
        DLK_CAT(avg_plane_k, SUF)(s, g, rows, rstride, 2, 2, 0, cip, override, outp, buf);
}
/* Backward of one plane, stride 2 with kw = 2 or 3 (kinds 1 and 2): each
 * output row's share grad_out / divisor (delta, zero past ow) is added into a
 * zeroed padded plane acc split into even/odd halves, then the interior is
 * merged into gx. Each cell receives its shares in PyTorch's order (output row,
 * then column): an even cell k gets window k - 1 (its tap 2) before window k,
 * the former shifted in from the previous vector in registers, so every vector
 * of acc is loaded and stored once per window row (a store at k + 1 then a load
 * at k would stall on store forwarding). */
static DLK_INLINE void DLK_CAT(avg_plane_bwd_k, SUF)(const dlk_pool2d_shape *s,
                                                     const dlk_pool_scratch *g, dlk_idx kh,
                                                     dlk_idx kw, int cip, dlk_idx override,
                                                     const T *restrict gp, T *restrict gx,
                                                     T *restrict acc, T *restrict delta)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    const dlk_idx W = s->w, ow = s->ow, owr = g->owr, len = g->len, half = g->half;
    DLK_CAT(pool_ivec, SUF) shift;  /* (prev, cur) -> prev[VL - 1], cur[0 .. VL - 2] */
    for (dlk_idx k = 0; k < POOL_VL; k++)
        shift[k] = (TI)(POOL_VL - 1 + k);
    memset(acc, 0, (size_t)(g->rows * len) * sizeof(T));
    for (dlk_idx i = 0; i < s->oh; i++) {
        dlk_idx h0, h1, hp;
        avg_extent(i * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
        DLK_CAT(avg_divide, SUF)(g, ow, h1 - h0, hp, cip, override, gp + i * ow, delta);
        for (dlk_idx a = 0; a < kh; a++) {
            T *restrict ar = acc + (i * s->sh + a) * len;
            vec prev = {0};
            for (dlk_idx j = 0; j < owr; j += POOL_VL) {
                const vec d = DLK_CAT(pool_load, SUF)(delta + j);
                vec e = DLK_CAT(pool_load, SUF)(ar + j);
                vec o = DLK_CAT(pool_load, SUF)(ar + half + j);
                if (kw == 3) {
                    e += __builtin_shuffle(prev, d, shift);
                    prev = d;
                }
                e += d;
                o += d;
                memcpy(ar + j, &e, sizeof e);
                memcpy(ar + half + j, &o, sizeof o);
            }
            if (kw == 3)  /* tap 2 of the last window */
                ar[owr] += prev[POOL_VL - 1];
        }
    }
    for (dlk_idx ih = 0; ih < s->h; ih++) {
        const T *ar = acc + (ih + s->ph) * len;
        DLK_POOL_MERGE_ROW(SUF, ar, ar + half, W, s->pw, gx + ih * W);
    }
}

/* 2x2 stride 2 without padding and without ceil_mode's partial windows: the
 * windows tile the plane, so each cell of grad_x is written once, in place, with
 * its window's share (plus +0.0, as PyTorch's zeroed grad_x + share turns a -0.0
 * share into +0.0); cells no window covers (odd H or W) are zeroed. */
static void DLK_CAT(avg_plane_bwd_tiled, SUF)(const dlk_pool2d_shape *s,
                                              const dlk_pool_scratch *g, int cip,
                                              dlk_idx override, const T *restrict gp,
                                              T *restrict gx, T *restrict delta)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    const dlk_idx W = s->w, ow = s->ow;
    DLK_CAT(pool_ivec, SUF) lo, hi;  /* (d, d) -> d0 d0 d1 d1 ... */
    for (dlk_idx k = 0; k < POOL_VL; k++) {
        lo[k] = (TI)(k / 2);
        hi[k] = (TI)(POOL_VL / 2 + k / 2);
    }
    for (dlk_idx i = 0; i < s->oh; i++) {
        T *restrict x0 = gx + 2 * i * W, *restrict x1 = x0 + W;
        dlk_idx h0, h1, hp;
        avg_extent(2 * i, 2, s->h, 0, &h0, &h1, &hp);
        DLK_CAT(avg_divide, SUF)(g, ow, h1 - h0, hp, cip, override, gp + i * ow, delta);
        for (dlk_idx j = 0; j < ow; j += POOL_VL) {
            const vec zero = {0};
            const vec d = DLK_CAT(pool_load, SUF)(delta + j) + zero;
            const vec out[2] = {__builtin_shuffle(d, d, lo), __builtin_shuffle(d, d, hi)};
            const dlk_idx n = 2 * DLK_MIN(POOL_VL, ow - j);  /* cells of this block */
            memcpy(x0 + 2 * j, out, (size_t)n * sizeof(T));
            memcpy(x1 + 2 * j, out, (size_t)n * sizeof(T));
        }
        for (dlk_idx c = 2 * ow; c < W; c++)
            x0[c] = x1[c] = 0;
    }
    memset(gx + 2 * s->oh * W, 0, (size_t)((s->h - 2 * s->oh) * W) * sizeof(T));
}

#include "avg_pool2d_k3s2_impl.h"

int DLK_CAT(dlk_avg_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                 int count_include_pad, dlk_idx divisor_override,
                                 int nthreads)
{
    if (DLK_CAT(pool_k3s2_ok, SUF)(s)) {
        const DLK_CAT(pool_k3s2_job, SUF) job = {.s = s, .x = x, .out = out,
                                                 .cip = count_include_pad,
                                                 .ovr = divisor_override};
        return DLK_CAT(pool_k3s2_planes, SUF)(&job, 0, DLK_CAT(k3s2_avg_plane, SUF), nthreads);
    }
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (dlk_pool_scratch_init(&g, s, 1) != DLK_OK)
        return DLK_ENOMEM;
    const int mode = dlk_pool_mode(s, &g);
    const int in_place = g.owr == s->ow;
    const int kind = dlk_pool_fused_kind(s);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        /* prepared plane (H rows of g.len) and two output rows; calloc so the
         * padding columns are zero and stay so */
        const size_t nplane = mode == DLK_POOL_DIRECT ? 0 : (size_t)(g.rows * g.len);
        T *plane = calloc(nplane + (size_t)(2 * g.owr), sizeof(T));
        failed = !plane;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!plane)
                continue;
            T *o = plane + nplane;
            const T *rows = x + p * hw;
            dlk_idx rstride = s->w;
            if (mode != DLK_POOL_DIRECT) {
                DLK_CAT(dlk_pool_prep, SUF)(s, &g, mode, rows, plane);
                rows = plane + s->ph * g.len;  /* input row 0; top padding rows precede it */
                rstride = g.len;
            }
            if (kind) {
                DLK_CAT(avg_plane, SUF)(s, &g, kind, rows, rstride, count_include_pad,
                                        divisor_override, out + p * ohw, o);
                continue;
            }
            for (dlk_idx i = 0; i < s->oh; i++) {
                T *orow = out + p * ohw + i * s->ow;
                DLK_CAT(avg_row, SUF)(s, &g, mode, rows, rstride, i, count_include_pad,
                                      divisor_override, in_place ? orow : o);
                if (!in_place)
                    memcpy(orow, o, (size_t)s->ow * sizeof(T));
            }
        }
        free(plane);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}

int DLK_CAT(dlk_avg_pool2d_backward, SUF)(const dlk_pool2d_shape *s, const T *grad_out,
                                          T *grad_x, int count_include_pad,
                                          dlk_idx divisor_override, int nthreads)
{
    if (DLK_CAT(pool_k3s2_ok, SUF)(s)) {
        const DLK_CAT(pool_k3s2_job, SUF) job = {.s = s, .grad_out = grad_out,
                                                 .grad_x = grad_x, .cip = count_include_pad,
                                                 .ovr = divisor_override};
        return DLK_CAT(pool_k3s2_planes, SUF)(&job, 2 * (size_t)(s->ow + POOL_VL),
                                              DLK_CAT(k3s2_avg_plane, SUF), nthreads);
    }
    const dlk_idx W = s->w, sw = s->sw, pw = s->pw, kw = s->kw;
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (dlk_pool_scratch_init(&g, s, 1) != DLK_OK)
        return DLK_ENOMEM;
    /* stride 2, kernel 3x3 or 2x2: the vector path; column arithmetic in TI */
    const dlk_idx kind = (double)s->w < 1e9 ? dlk_pool_fused_kind(s) : 0;
    const int vec_kh = kind == 1 ? 3 : kind == 2 ? 2 : 0;
    const int tiled = kind == 2 && s->sh == 2 && s->ph == 0 && s->pw == 0 &&
                      2 * s->oh <= s->h && 2 * s->ow <= s->w;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        /* e: one padded input row of gradient, or the vector path's padded plane;
         * delta: grad_out / divisor, zero past ow */
        const size_t ne = vec_kh ? (size_t)(g.rows * g.len) : (size_t)g.len;
        T *e = calloc(ne + (size_t)g.owr, sizeof(T));
        failed = !e;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!e)
                continue;
            T *restrict gx = grad_x + p * hw;
            T *restrict delta = e + ne;
            if (vec_kh == 3) {
                DLK_CAT(avg_plane_bwd_k, SUF)(s, &g, 3, 3, count_include_pad, divisor_override,
                                              grad_out + p * ohw, gx, e, delta);
                continue;
            }
            if (tiled) {
                DLK_CAT(avg_plane_bwd_tiled, SUF)(s, &g, count_include_pad, divisor_override,
                                                  grad_out + p * ohw, gx, delta);
                continue;
            }
            if (vec_kh == 2) {
                DLK_CAT(avg_plane_bwd_k, SUF)(s, &g, 2, 2, count_include_pad, divisor_override,
                                              grad_out + p * ohw, gx, e, delta);
                continue;
            }
            memset(gx, 0, (size_t)hw * sizeof(T));
            for (dlk_idx i = 0; i < s->oh; i++) {
                const T *restrict gp = grad_out + p * ohw + i * s->ow;
                dlk_idx h0, h1, hp;
                avg_extent(i * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
                DLK_CAT(avg_divide, SUF)(&g, s->ow, h1 - h0, hp, count_include_pad,
                                         divisor_override, gp, delta);
                memset(e, 0, (size_t)g.len * sizeof(T));
                if (sw == 2 && kw == 2)
                    DLK_CAT(avg_spread, SUF)(delta, g.owr, 2, 2, e);
                else if (sw == 2 && kw == 3)
                    DLK_CAT(avg_spread, SUF)(delta, g.owr, 3, 2, e);
                else
                    DLK_CAT(avg_spread, SUF)(delta, g.owr, kw, sw, e);
                for (dlk_idx ih = h0; ih < h1; ih++) {
                    T *restrict row = gx + ih * W;
                    const T *restrict er = e + pw;
                    for (dlk_idx iw = 0; iw < W; iw++)
                        row[iw] += er[iw];
                }
            }
        }
        free(e);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}
