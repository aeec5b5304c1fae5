/* Templated row helpers shared by softmax.c and cross_entropy.c (static, included once per
 * dtype with T, SFX, EXPNEG defined; see softmax_body.h).
 *
 * Reductions use `omp simd reduction`: it lets gcc vectorize them (reassociating into
 * vector lanes, which plain C forbids without -ffast-math). The lane split is fixed at
 * compile time, so a row's result never depends on the thread count. Without OpenMP the
 * pragmas vanish and the loops run in plain order. Sums accumulate in double (the AVX-512
 * float32 exp-sum of long rows: see DLK_SOFTMAX_F32_CHUNK in softmax_avx512.h). */
#ifndef DLK_SIMD_REDUCTION
#ifdef _OPENMP
#define DLK_PRAGMA(x) _Pragma(#x)
#define DLK_SIMD_REDUCTION(op, var) DLK_PRAGMA(omp simd reduction(op : var))
#else
#define DLK_SIMD_REDUCTION(op, var)
#endif
#endif

/* Row maximum, sum and dot product. A nan may or may not win the maximum; either way it
 * poisons the row's sum of exps, so the row comes out nan.
 * With AVX-512 these are written with intrinsics: four independent accumulators hide the
 * add/max latency (gcc would keep a single dependency chain) and masked loads handle the
 * tail without reading past the row. Otherwise `omp simd reduction` vectorizes them. */
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include "softmax_avx512.h"
#include "softmax_short_avx512.h"
#define row_max_f32 dlk_avx512_max_f32
#define row_max_f64 dlk_avx512_max_f64
#define row_sum_f32 dlk_avx512_sum_f32
#define row_sum_f64 dlk_avx512_sum_f64
#define row_dot_f32 dlk_avx512_dot_f32
#define row_dot_f64 dlk_avx512_dot_f64
#define DLK_SOFTMAX_FUSED_F32 1
#else
static inline T SFX(row_max)(const T *x, dlk_idx n) {
    T m = -(T)INFINITY;
    DLK_SIMD_REDUCTION(max, m)
    for (dlk_idx j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static inline double SFX(row_sum)(const T *x, dlk_idx n) {
    double s = 0.0;
    DLK_SIMD_REDUCTION(+, s)
    for (dlk_idx j = 0; j < n; j++) s += (double)x[j];
    return s;
}

static inline double SFX(row_dot)(const T *a, const T *b, dlk_idx n) {
    double s = 0.0;
    DLK_SIMD_REDUCTION(+, s)
    for (dlk_idx j = 0; j < n; j++) s += (double)a[j] * (double)b[j];
    return s;
}
#endif

/* For rows [0, rows) of length D starting at x: m[r] = max of row r,
 * e[r*D + d] = exp(x[r*D + d] - m[r]) and s[r] = sum of row r of e (double).
 * e may be NULL (only the sums are wanted) when SFX(exp_sum_only)(D) says so.
 * Long rows are exponentiated row by row; short rows (D < FUSE_D) are
 * shifted row by row and exponentiated in one flat loop over the whole block, so the
 * exp vectorizes however short the rows are. The path depends only on D. */
static inline void SFX(rows_shifted_exp)(const T *restrict x, dlk_idx rows, dlk_idx D,
                                         T *restrict m, T *restrict e, double *restrict s) {
    if (D >= DLK_SOFTMAX_FUSE_D) {
#ifdef DLK_SOFTMAX_FUSED_F32
        if (sizeof(T) == sizeof(float)) { /* exp, store and sum in one pass */
            for (dlk_idx r = 0; r < rows; r++) {
                const float *xr = (const float *)x + r * D;
                float mr = dlk_avx512_max_f32(xr, D);
                m[r] = (T)mr;
                s[r] = dlk_avx512_expneg_sum_f32(xr, mr, e ? (float *)e + r * D : NULL, D);
            }
            return;
        }
#endif
        for (dlk_idx r = 0; r < rows; r++) {
            const T *xr = x + r * D;
            T *er = e + r * D;
            T mr = SFX(row_max)(xr, D);
            /* (exp and sum in one simd-reduction loop defeats gcc 12's if-conversion of
             * the exp: two loops, the second from L1) */
            for (dlk_idx d = 0; d < D; d++) er[d] = EXPNEG(xr[d] - mr);
            m[r] = mr;
            s[r] = SFX(row_sum)(er, D);
        }
        return;
    }
    for (dlk_idx r = 0; r < rows; r++) {
        const T *xr = x + r * D;
        T *er = e + r * D;
        T mr = SFX(row_max)(xr, D);
        m[r] = mr;
        for (dlk_idx d = 0; d < D; d++) er[d] = xr[d] - mr;
    }
    dlk_idx n = rows * D;
    for (dlk_idx k = 0; k < n; k++) e[k] = EXPNEG(e[k]);
    for (dlk_idx r = 0; r < rows; r++) s[r] = SFX(row_sum)(e + r * D, D);
}

/* Rows per block: enough to give the flat exp loop ~BLOCK_ELEMS elements. */
static inline dlk_idx SFX(block_rows)(dlk_idx D) {
    dlk_idx r = D > 0 ? DLK_SOFTMAX_BLOCK_ELEMS / D : DLK_SOFTMAX_BLOCK_ELEMS;
    return r < 1 ? 1 : r;
}

/* Whether rows_shifted_exp can sum the exps of rows of length D without storing them. */
static inline int SFX(exp_sum_only)(dlk_idx D) {
#ifdef DLK_SOFTMAX_FUSED_F32
    return sizeof(T) == sizeof(float) && D >= DLK_SOFTMAX_FUSE_D;
#else
    return 0;
#endif
}
