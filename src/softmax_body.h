/* Templated body of src/softmax.c: included once per dtype with
 *   T      element type (float, double)
 *   SFX(n) name suffixing macro (n##_f32, n##_f64)
 *   EXPNEG exp for arguments <= 0 / -inf / nan, EXPFULL full-range exp
 *   LANES  accumulator lanes (one AVX-512 register of T)
 *
 * Layout: x is viewed as (outer, D, inner), C-contiguous; the softmax runs over D.
 *   inner == 1: rows of D contiguous elements, processed in blocks of rows whose
 *     shifted values x - max are written contiguously and exponentiated in one flat,
 *     vectorized loop (so short rows like D = 10 vectorize as well as long ones).
 *   inner > 1: columns of stride `inner`, processed COLS columns at a time so every
 *     inner loop runs over contiguous memory.
 * Sums (of exps, of g*y, of g) are accumulated in double in LANES fixed lanes (float32
 * sums of exps of rows >= FUSE_D with AVX-512: float32 lanes folded into double per
 * chunk, see softmax_avx512.h), folded in a fixed order: the result of a row never depends on the thread count. Each row (column)
 * is computed by one thread; threads split rows in static blocks.
 * Complexity: O(outer * D * inner) time, 4 passes over each row (L1/L2-resident).
 */

#include "softmax_rows.h"

/* ---- inner == 1 ---- */

static int SFX(softmax_rows)(const T *x, T *y, dlk_idx rows, dlk_idx D, int is_log, int nthreads) {
#ifdef DLK_SOFTMAX_FUSED_F32
    if (sizeof(T) == sizeof(float) && D < DLK_SOFTMAX_FUSE_D) { /* softmax_short_avx512.h */
        dlk_softmax_short_f32((const float *)x, (float *)y, rows, D, is_log, nthreads);
        return DLK_OK;
    }
#endif
    dlk_idx br = SFX(block_rows)(D);
    dlk_idx nblocks = (rows + br - 1) / br;
    /* log_softmax needs the exps only for the sums: a per-thread scratch block */
    dlk_idx scratch = is_log && !SFX(exp_sum_only)(D) ? br * D : 0;
    int status = DLK_OK;
    if (rows * D < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        T *e = NULL;
        T m[DLK_SOFTMAX_BLOCK_ELEMS];
        double s[DLK_SOFTMAX_BLOCK_ELEMS];
        int ok = 1;
        if (scratch) {
            e = (T *)malloc((size_t)scratch * sizeof(T));
            if (!e) {
                ok = 0;
#ifdef _OPENMP
#pragma omp atomic write
#endif
                status = DLK_ENOMEM;
            }
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx b = 0; b < nblocks; b++) {
            if (!ok) continue;
            dlk_idx r0 = b * br;
            dlk_idx nr = DLK_MIN(br, rows - r0);
            const T *xb = x + r0 * D;
            T *yb = y + r0 * D;
            if (!is_log) {
                SFX(rows_shifted_exp)(xb, nr, D, m, yb, s);
                for (dlk_idx r = 0; r < nr; r++) {
                    T *yr = yb + r * D;
                    T inv = (T)(1.0 / s[r]);
                    for (dlk_idx d = 0; d < D; d++) yr[d] *= inv;
                }
            } else {
                SFX(rows_shifted_exp)(xb, nr, D, m, e, s);
                for (dlk_idx r = 0; r < nr; r++) {
                    const T *xr = xb + r * D;
                    T *yr = yb + r * D;
                    T mr = m[r];
                    T lse = (T)log(s[r]);
                    /* (x - m) - log(sum): never x - (m + log(sum)), which loses log(sum)
                     * when |m| is huge (m = 1e30). */
                    for (dlk_idx d = 0; d < D; d++) yr[d] = (xr[d] - mr) - lse;
                }
            }
        }
        free(e);
    }
    return status;
}

static void SFX(softmax_backward_rows)(const T *g, const T *y, T *gx, dlk_idx rows, dlk_idx D,
                                       int is_log, int nthreads) {
#ifdef DLK_SOFTMAX_FUSED_F32
    if (sizeof(T) == sizeof(float) && D < DLK_SOFTMAX_FUSE_D) { /* softmax_short_avx512.h */
        dlk_softmax_short_backward_f32((const float *)g, (const float *)y, (float *)gx, rows, D,
                                       is_log, nthreads);
        return;
    }
#endif
    dlk_idx br = SFX(block_rows)(D);
    dlk_idx nblocks = (rows + br - 1) / br;
    if (rows * D < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (dlk_idx b = 0; b < nblocks; b++) {
        dlk_idx r0 = b * br;
        dlk_idx nr = DLK_MIN(br, rows - r0);
        const T *gb = g + r0 * D;
        const T *yb = y + r0 * D;
        T *ob = gx + r0 * D;
        if (!is_log) {
            /* d softmax: gx = y * (g - sum(g * y)) */
            for (dlk_idx r = 0; r < nr; r++) {
                const T *gr = gb + r * D, *yr = yb + r * D;
                T *orow = ob + r * D;
#ifdef DLK_SOFTMAX_FUSED_F32
                T dot = (T)(sizeof(T) == sizeof(float) && D >= DLK_SOFTMAX_FUSE_D
                                ? dlk_avx512_lanedot_f32((const float *)gr, (const float *)yr, D)
                                : SFX(row_dot)(gr, yr, D));
#else
                T dot = (T)SFX(row_dot)(gr, yr, D);
#endif
                for (dlk_idx d = 0; d < D; d++) orow[d] = yr[d] * (gr[d] - dot);
            }
        } else {
            /* d log_softmax: gx = g - exp(y) * sum(g). Long rows: one pass, the exp
             * inline; short rows: the exp over the block in one flat loop first, so it
             * vectorizes however short the rows are. */
            if (D >= DLK_SOFTMAX_FUSE_D) {
#ifdef DLK_SOFTMAX_FUSED_F32
                if (sizeof(T) == sizeof(float)) {
                    for (dlk_idx r = 0; r < nr; r++) {
                        const float *gr = (const float *)gb + r * D;
                        float s = (float)dlk_avx512_lanesum_f32(gr, D);
                        dlk_avx512_log_softmax_grad_f32(gr, (const float *)yb + r * D,
                                                        (float *)ob + r * D, s, D);
                    }
                    continue;
                }
#endif
                for (dlk_idx r = 0; r < nr; r++) {
                    const T *gr = gb + r * D, *yr = yb + r * D;
                    T *orow = ob + r * D;
                    T s = (T)SFX(row_sum)(gr, D);
                    for (dlk_idx d = 0; d < D; d++) orow[d] = gr[d] - EXPFULL(yr[d]) * s;
                }
                continue;
            }
            dlk_idx n = nr * D;
            for (dlk_idx k = 0; k < n; k++) ob[k] = EXPFULL(yb[k]);
            for (dlk_idx r = 0; r < nr; r++) {
                const T *gr = gb + r * D;
                T *orow = ob + r * D;
                T s = (T)SFX(row_sum)(gr, D);
                for (dlk_idx d = 0; d < D; d++) orow[d] = gr[d] - orow[d] * s;
            }
        }
    }
}

/* ---- inner > 1: COLS columns at a time, every inner loop contiguous ---- */

static void SFX(softmax_cols)(const T *x, T *y, dlk_idx outer, dlk_idx D, dlk_idx inner,
                              int is_log, int nthreads) {
    dlk_idx ncb = (inner + DLK_SOFTMAX_COLS - 1) / DLK_SOFTMAX_COLS;
    dlk_idx ntasks = outer * ncb;
    if (outer * D * inner < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (dlk_idx task = 0; task < ntasks; task++) {
        dlk_idx o = task / ncb;
        dlk_idx k0 = (task % ncb) * DLK_SOFTMAX_COLS;
        dlk_idx nc = DLK_MIN((dlk_idx)DLK_SOFTMAX_COLS, inner - k0);
        const T *xo = x + o * D * inner + k0;
        T *yo = y + o * D * inner + k0;
        T m[DLK_SOFTMAX_COLS];
        double s[DLK_SOFTMAX_COLS];
        T f[DLK_SOFTMAX_COLS];
        for (dlk_idx c = 0; c < nc; c++) { m[c] = -(T)INFINITY; s[c] = 0.0; }
        for (dlk_idx d = 0; d < D; d++) {
            const T *xd = xo + d * inner;
            for (dlk_idx c = 0; c < nc; c++) m[c] = xd[c] > m[c] ? xd[c] : m[c];
        }
        for (dlk_idx d = 0; d < D; d++) {
            const T *xd = xo + d * inner;
            T *yd = yo + d * inner;
            for (dlk_idx c = 0; c < nc; c++) {
                T e = EXPNEG(xd[c] - m[c]);
                if (!is_log) yd[c] = e;
                s[c] += (double)e;
            }
        }
        if (!is_log) {
            for (dlk_idx c = 0; c < nc; c++) f[c] = (T)(1.0 / s[c]);
            for (dlk_idx d = 0; d < D; d++) {
                T *yd = yo + d * inner;
                for (dlk_idx c = 0; c < nc; c++) yd[c] *= f[c];
            }
        } else {
            for (dlk_idx c = 0; c < nc; c++) f[c] = (T)log(s[c]);
            for (dlk_idx d = 0; d < D; d++) {
                const T *xd = xo + d * inner;
                T *yd = yo + d * inner;
                for (dlk_idx c = 0; c < nc; c++) yd[c] = (xd[c] - m[c]) - f[c];
            }
        }
    }
}

static void SFX(softmax_backward_cols)(const T *g, const T *y, T *gx, dlk_idx outer, dlk_idx D,
                                       dlk_idx inner, int is_log, int nthreads) {
    dlk_idx ncb = (inner + DLK_SOFTMAX_COLS - 1) / DLK_SOFTMAX_COLS;
    dlk_idx ntasks = outer * ncb;
    if (outer * D * inner < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (dlk_idx task = 0; task < ntasks; task++) {
        dlk_idx o = task / ncb;
        dlk_idx k0 = (task % ncb) * DLK_SOFTMAX_COLS;
        dlk_idx nc = DLK_MIN((dlk_idx)DLK_SOFTMAX_COLS, inner - k0);
        dlk_idx off = o * D * inner + k0;
        double s[DLK_SOFTMAX_COLS];
        T f[DLK_SOFTMAX_COLS];
        for (dlk_idx c = 0; c < nc; c++) s[c] = 0.0;
        for (dlk_idx d = 0; d < D; d++) {
            const T *gd = g + off + d * inner, *yd = y + off + d * inner;
            if (!is_log)
                for (dlk_idx c = 0; c < nc; c++) s[c] += (double)gd[c] * (double)yd[c];
            else
                for (dlk_idx c = 0; c < nc; c++) s[c] += (double)gd[c];
        }
        for (dlk_idx c = 0; c < nc; c++) f[c] = (T)s[c];
        for (dlk_idx d = 0; d < D; d++) {
            const T *gd = g + off + d * inner, *yd = y + off + d * inner;
            T *od = gx + off + d * inner;
            if (!is_log)
                for (dlk_idx c = 0; c < nc; c++) od[c] = yd[c] * (gd[c] - f[c]);
            else
                for (dlk_idx c = 0; c < nc; c++) od[c] = gd[c] - EXPFULL(yd[c]) * f[c];
        }
    }
}

int SFX(dlk_softmax_forward)(const T *x, T *y, dlk_idx outer, dlk_idx D, dlk_idx inner,
                             int is_log, int nthreads) {
    if (outer <= 0 || D <= 0 || inner <= 0) return DLK_OK;
    if (inner == 1) return SFX(softmax_rows)(x, y, outer, D, is_log, nthreads);
    SFX(softmax_cols)(x, y, outer, D, inner, is_log, nthreads);
    return DLK_OK;
}

void SFX(dlk_softmax_backward)(const T *grad_out, const T *out, T *grad_in, dlk_idx outer,
                               dlk_idx D, dlk_idx inner, int is_log, int nthreads) {
    if (outer <= 0 || D <= 0 || inner <= 0) return;
    if (inner == 1)
        SFX(softmax_backward_rows)(grad_out, out, grad_in, outer, D, is_log, nthreads);
    else
        SFX(softmax_backward_cols)(grad_out, out, grad_in, outer, D, inner, is_log, nthreads);
}
