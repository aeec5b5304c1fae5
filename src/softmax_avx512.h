/* AVX-512 row reductions for softmax_rows.h (max; sums of exps in float32 lanes folded
 * into double per chunk; sum and dot in double).
 * Four accumulators, combined in a fixed order: deterministic for any thread count.
 * Tails use masked loads, which never touch the masked-off memory. */
#ifndef DLK_SOFTMAX_AVX512_H
#define DLK_SOFTMAX_AVX512_H

#include <immintrin.h>
#include <math.h>
#include "dlk_common.h"
#include "softmax_exp.h"

static inline float dlk_avx512_max_f32(const float *x, dlk_idx n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    dlk_idx j = 0;
    for (; j + 64 <= n; j += 64) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + j + 16));
        m2 = _mm512_max_ps(m2, _mm512_loadu_ps(x + j + 32));
        m3 = _mm512_max_ps(m3, _mm512_loadu_ps(x + j + 48));
    }
    for (; j + 16 <= n; j += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
    if (j < n) {
        __mmask16 k = (__mmask16)((1u << (n - j)) - 1u);
        m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(ninf, k, x + j));
    }
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

static inline double dlk_avx512_max_f64(const double *x, dlk_idx n) {
    const __m512d ninf = _mm512_set1_pd(-INFINITY);
    __m512d m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    dlk_idx j = 0;
    for (; j + 32 <= n; j += 32) {
        m0 = _mm512_max_pd(m0, _mm512_loadu_pd(x + j));
        m1 = _mm512_max_pd(m1, _mm512_loadu_pd(x + j + 8));
        m2 = _mm512_max_pd(m2, _mm512_loadu_pd(x + j + 16));
        m3 = _mm512_max_pd(m3, _mm512_loadu_pd(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) m0 = _mm512_max_pd(m0, _mm512_loadu_pd(x + j));
    if (j < n) {
        __mmask8 k = (__mmask8)((1u << (n - j)) - 1u);
        m1 = _mm512_max_pd(m1, _mm512_mask_loadu_pd(ninf, k, x + j));
    }
    return _mm512_reduce_max_pd(_mm512_max_pd(_mm512_max_pd(m0, m1), _mm512_max_pd(m2, m3)));
}

/* float32 values are widened 8 at a time and summed in double */
static inline double dlk_avx512_sum_f32(const float *x, dlk_idx n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    dlk_idx j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + j)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 8)));
        a2 = _mm512_add_pd(a2, _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 16)));
        a3 = _mm512_add_pd(a3, _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 24)));
    }
    for (; j + 8 <= n; j += 8) a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + j)));
    if (j < n) {
        __mmask8 k = (__mmask8)((1u << (n - j)) - 1u);
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, x + j)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

static inline double dlk_avx512_sum_f64(const double *x, dlk_idx n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    dlk_idx j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm512_add_pd(a0, _mm512_loadu_pd(x + j));
        a1 = _mm512_add_pd(a1, _mm512_loadu_pd(x + j + 8));
        a2 = _mm512_add_pd(a2, _mm512_loadu_pd(x + j + 16));
        a3 = _mm512_add_pd(a3, _mm512_loadu_pd(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) a0 = _mm512_add_pd(a0, _mm512_loadu_pd(x + j));
    if (j < n) {
        __mmask8 k = (__mmask8)((1u << (n - j)) - 1u);
        a1 = _mm512_add_pd(a1, _mm512_maskz_loadu_pd(k, x + j));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

static inline double dlk_avx512_dot_f32(const float *a, const float *b, dlk_idx n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    dlk_idx j = 0;
#define DLK_DOT8(acc, off)                                                     \
    acc = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + j + (off))),    \
                          _mm512_cvtps_pd(_mm256_loadu_ps(b + j + (off))), acc)
    for (; j + 32 <= n; j += 32) {
        DLK_DOT8(a0, 0);
        DLK_DOT8(a1, 8);
        DLK_DOT8(a2, 16);
        DLK_DOT8(a3, 24);
    }
    for (; j + 8 <= n; j += 8) DLK_DOT8(a0, 0);
#undef DLK_DOT8
    if (j < n) {
        __mmask8 k = (__mmask8)((1u << (n - j)) - 1u);
        a1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, a + j)),
                             _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, b + j)), a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

static inline double dlk_avx512_dot_f64(const double *a, const double *b, dlk_idx n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    dlk_idx j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm512_fmadd_pd(_mm512_loadu_pd(a + j), _mm512_loadu_pd(b + j), a0);
        a1 = _mm512_fmadd_pd(_mm512_loadu_pd(a + j + 8), _mm512_loadu_pd(b + j + 8), a1);
        a2 = _mm512_fmadd_pd(_mm512_loadu_pd(a + j + 16), _mm512_loadu_pd(b + j + 16), a2);
        a3 = _mm512_fmadd_pd(_mm512_loadu_pd(a + j + 24), _mm512_loadu_pd(b + j + 24), a3);
    }
    for (; j + 8 <= n; j += 8)
        a0 = _mm512_fmadd_pd(_mm512_loadu_pd(a + j), _mm512_loadu_pd(b + j), a0);
    if (j < n) {
        __mmask8 k = (__mmask8)((1u << (n - j)) - 1u);
        a1 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(k, a + j), _mm512_maskz_loadu_pd(k, b + j), a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

/* exp(x - m) of a row, summed (see DLK_SOFTMAX_F32_CHUNK), stored to e when e != NULL (softmax and
 * cross-entropy keep the exps; log-softmax only needs their sum). The exp is
 * dlk_expneg_f32 of softmax_exp.h (same reduction, same polynomial, <= 1 ulp measured
 * against float64 over the normal range) written with intrinsics, so that it shares one
 * loop with the store and the sum (gcc 12 does not if-convert the scalar
 * version inside a reduction loop), and with 2^n applied by vscalefps: one instruction
 * instead of building the exponent bits, multiplying and masking the flush to zero,
 * measured 1.8x faster. vscalefps also scales into the subnormal range correctly, so
 * here results below FLT_MIN are subnormals rather than 0. The clamp at -104 keeps
 * n >= -150, where the result rounds to 0 (exp(-inf) = 0); a nan passes through the
 * max (its second operand) and the polynomial.
 * The tail is a masked load of -inf: exp gives 0 there and adds nothing. */
static inline __m512 dlk_avx512_expneg_ps(__m512 x) {
    const __m512 shifter = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23: round to integer */
    __m512 xc = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    __m512 nf = _mm512_sub_ps(
        _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
    __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 q = _mm512_set1_ps(1.393364160e-03f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.369148709e-03f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.166646674e-02f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.666650474e-01f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0.5f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    __m512 p = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, nf);
}

/* log(x) for x > 0 (normal or subnormal), +inf -> +inf, nan -> nan, 0 -> -inf, x < 0
 * -> nan. x = m * 2^e with m in [0.75, 1.5) (getmant/getexp; m >= 1.5 is halved, an exact
 * operation), log(m) = 2 atanh(z), z = (m - 1) / (m + 1) in [-1/7, 1/5], by its odd
 * series to z^9 (truncation < 1e-9 relative), e * ln2 with ln2 split in hi + lo so that
 * e * ln2_hi is exact. Measured over every positive normal float against double log:
 * < 2 ulp (1.97 ulp worst, just above 1, where log is tiny; the sums it is used on are
 * >= 1). */
static inline __m512 dlk_avx512_log_ps(__m512 x) {
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_nan);
    __m512 e = _mm512_getexp_ps(x);
    __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.5f), _CMP_GE_OQ);
    m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.0f));
    __m512 z = _mm512_div_ps(_mm512_sub_ps(m, _mm512_set1_ps(1.0f)),
                             _mm512_add_ps(m, _mm512_set1_ps(1.0f)));
    __m512 z2 = _mm512_mul_ps(z, z);
    __m512 p = _mm512_set1_ps(2.0f / 9.0f);
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(2.0f / 7.0f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(2.0f / 5.0f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(2.0f / 3.0f));
    p = _mm512_mul_ps(_mm512_mul_ps(p, z2), z);        /* 2z^3/3 + ... */
    /* e*ln2_hi exact (ln2_hi has 16 significant bits, |e| <= 150); small terms first */
    __m512 lo = _mm512_fmadd_ps(e, _mm512_set1_ps(1.42860677e-6f), p);
    __m512 r = _mm512_add_ps(_mm512_add_ps(lo, _mm512_add_ps(z, z)),
                             _mm512_mul_ps(e, _mm512_set1_ps(0.693145752f)));
    /* getexp(0) = -inf and getmant(0) = 1 would give -inf anyway; inf: getexp = inf;
     * nan and x < 0 (getmant's _MM_MANT_SIGN_nan) give nan through m. */
    return r;
}

/* Elements summed in float32 lanes before the partial sum is folded into double (a
 * multiple of 64, the step of the loops below). Why: widening every exp to double
 * (vcvtps2pd + vaddpd) was ~20% of the fused loop's time; summing in float32 lanes and
 * widening once per chunk keeps the error bound independent of the row length.
 * Error bound of a row's sum S of n terms t_i >= 0 (u = 2^-24): each of the 64 lanes
 * (4 accumulators x 16) adds at most CHUNK/64 = 16 terms of a chunk (15 roundings), the
 * 4 accumulators are combined in 2 more, so a chunk's float sum is within gamma_17
 * ~ 17u ~ 1.0e-6 of its exact value, relative to that chunk's sum; the chunks' sums are
 * then exact in double and added in double (error ~ n/8 * 2^-53, negligible), so
 * |S_computed - S| <= ~1.0e-6 * S for any n. In log-softmax, log(S) is thus within
 * ~1.0e-6 absolute. The order of every addition is fixed by the row length alone. */
#define DLK_SOFTMAX_F32_CHUNK 1024

/* acc (8 double lanes) += the 64 float lanes a0..a3, in a fixed order */
static inline __m512d dlk_avx512_fold_f32(__m512d acc, __m512 a0, __m512 a1, __m512 a2,
                                          __m512 a3) {
    __m512 v = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(
                                  _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

static inline double dlk_avx512_expneg_sum_f32(const float *x, float m, float *e, dlk_idx n) {
    const __m512 vm = _mm512_set1_ps(m);
    __m512d acc = _mm512_setzero_pd();
    dlk_idx j = 0;
    while (j < n) {
        dlk_idx end = DLK_MIN(n, j + DLK_SOFTMAX_F32_CHUNK);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 64 <= end; j += 64) {
            /* the next row (read by the next max pass) and its exps' destination, from
             * L3: fetched while this row computes, not while the max pass waits */
            for (int c = 0; c < 64; c += 16) {
                _mm_prefetch((const char *)(x + n + j + c), _MM_HINT_T0);
                if (e) _mm_prefetch((const char *)(e + n + j + c), _MM_HINT_ET0);
            }
            __m512 y0 = dlk_avx512_expneg_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
            __m512 y1 = dlk_avx512_expneg_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm));
            __m512 y2 = dlk_avx512_expneg_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j + 32), vm));
            __m512 y3 = dlk_avx512_expneg_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j + 48), vm));
            if (e) {
                _mm512_storeu_ps(e + j, y0);
                _mm512_storeu_ps(e + j + 16, y1);
                _mm512_storeu_ps(e + j + 32, y2);
                _mm512_storeu_ps(e + j + 48, y3);
            }
            a0 = _mm512_add_ps(a0, y0);
            a1 = _mm512_add_ps(a1, y1);
            a2 = _mm512_add_ps(a2, y2);
            a3 = _mm512_add_ps(a3, y3);
        }
        /* the row's last < 64 elements (only in its last chunk) */
        for (; j < end; j += 16) {
            __mmask16 k = end - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - j)) - 1u);
            __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + j);
            __m512 y = dlk_avx512_expneg_ps(_mm512_sub_ps(v, vm));
            if (e) _mm512_mask_storeu_ps(e + j, k, y);
            a0 = _mm512_add_ps(a0, y);
        }
        acc = dlk_avx512_fold_f32(acc, a0, a1, a2, a3);
    }
    return _mm512_reduce_add_pd(acc);
}

/* Sum and dot product of a float32 row in float32 lanes, folded into double every
 * DLK_SOFTMAX_F32_CHUNK elements exactly as the exp-sum above (4 accumulators of 16
 * lanes, a fixed order): error <= ~17u * sum |terms| (u = 2^-24) for any row length,
 * float32 accuracy for the backward passes of long rows, without a widening per element. */
static inline double dlk_avx512_lanesum_f32(const float *x, dlk_idx n) {
    __m512d acc = _mm512_setzero_pd();
    dlk_idx j = 0;
    while (j < n) {
        dlk_idx end = DLK_MIN(n, j + DLK_SOFTMAX_F32_CHUNK);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 64 <= end; j += 64) {
            a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + j));
            a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + j + 16));
            a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + j + 32));
            a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + j + 48));
        }
        for (; j < end; j += 16) {
            __mmask16 k = end - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - j)) - 1u);
            a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(k, x + j));
        }
        acc = dlk_avx512_fold_f32(acc, a0, a1, a2, a3);
    }
    return _mm512_reduce_add_pd(acc);
}

static inline double dlk_avx512_lanedot_f32(const float *a, const float *b, dlk_idx n) {
    __m512d acc = _mm512_setzero_pd();
    dlk_idx j = 0;
    while (j < n) {
        dlk_idx end = DLK_MIN(n, j + DLK_SOFTMAX_F32_CHUNK);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 64 <= end; j += 64) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(b + j + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 32), _mm512_loadu_ps(b + j + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 48), _mm512_loadu_ps(b + j + 48), a3);
        }
        for (; j < end; j += 16) {
            __mmask16 k = end - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - j)) - 1u);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + j), _mm512_maskz_loadu_ps(k, b + j), a0);
        }
        acc = dlk_avx512_fold_f32(acc, a0, a1, a2, a3);
    }
    return _mm512_reduce_add_pd(acc);
}

/* The elements [j0, j1) of a log_softmax backward row with the full-range exp: the rare
 * vectors holding some y > 0 (an output that did not come from log_softmax). Kept out of
 * line so the hot loop below keeps its constants in registers. */
static __attribute__((noinline)) void dlk_log_softmax_grad_slow_f32(
    const float *g, const float *y, float *out, float s, dlk_idx j0, dlk_idx j1) {
    for (dlk_idx d = j0; d < j1; d++) out[d] = g[d] - dlk_exp_f32(y[d]) * s;
}

/* log_softmax backward of one row: out = g - exp(y) * s. y is a log-probability, so
 * y <= 0 and the cheap exp of the forward applies. A vector holding any y > 0 takes the
 * full-range scalar exp instead, so any input is right. */
static inline void dlk_avx512_log_softmax_grad_f32(const float *g, const float *y, float *out,
                                                   float s, dlk_idx n) {
    const __m512 vs = _mm512_set1_ps(s), zero = _mm512_setzero_ps();
    dlk_idx j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 y0 = _mm512_loadu_ps(y + j), y1 = _mm512_loadu_ps(y + j + 16);
        if (_mm512_cmp_ps_mask(y0, zero, _CMP_GT_OQ) | _mm512_cmp_ps_mask(y1, zero, _CMP_GT_OQ)) {
            dlk_log_softmax_grad_slow_f32(g, y, out, s, j, j + 32);
            continue;
        }
        _mm512_storeu_ps(out + j, _mm512_fnmadd_ps(dlk_avx512_expneg_ps(y0), vs,
                                                   _mm512_loadu_ps(g + j)));
        _mm512_storeu_ps(out + j + 16, _mm512_fnmadd_ps(dlk_avx512_expneg_ps(y1), vs,
                                                        _mm512_loadu_ps(g + j + 16)));
    }
    for (; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        __m512 yv = _mm512_maskz_loadu_ps(k, y + j);
        if (_mm512_cmp_ps_mask(yv, zero, _CMP_GT_OQ)) {
            dlk_log_softmax_grad_slow_f32(g, y, out, s, j, DLK_MIN(j + 16, n));
            continue;
        }
        __m512 gv = _mm512_maskz_loadu_ps(k, g + j);
        _mm512_mask_storeu_ps(out + j, k, _mm512_fnmadd_ps(dlk_avx512_expneg_ps(yv), vs, gv));
    }
}

#endif
