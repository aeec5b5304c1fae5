/* Elementwise activations and dropout (see activations.h for the contracts).
 *
 * Why C here: the exp-based activations are compute-bound in exp/log1p, and glibc's
 * scalar expf/exp do not vectorize without -ffast-math (libmvec's SIMD variants are
 * only declared under __FAST_MATH__), so a branch-free exp/expm1/log1p written here
 * lets gcc -O3 -march=native vectorize whole loops (16 floats per AVX-512 op), fused
 * into one pass over memory where NumPy needs several passes and temporaries.
 *
 * The math helpers assume a non-positive argument (every activation reduces to
 * exp(-|x|), expm1(x <= 0) or log1p(e) with e in [0, 1]), so nothing can overflow:
 *   exp:   the softmax family's dlk_expneg_f32/f64 (softmax_exp.h): x = k*ln2 + r,
 *          |r| <= ln2/2 (Cody-Waite split, round-to-nearest k by the 1.5*2^mantissa
 *          trick), a near-minimax polynomial for exp(r), 2^k from the trick's bits.
 *          Results below the smallest normal number flush to 0 (x < -87.34 float,
 *          -708.40 double), as torch's float32 sigmoid does: building subnormals exactly
 *          (2^(k/2) * 2^(k-k/2)) cost 25% of sigmoid's time, measured, for values
 *          below 1e-38.
 *   expm1: the same reduction, Taylor to degree 7 (float) / 13 (double), truncation
 *          < 0.1 ulp; expm1(x) = 2^k*p + (2^k - 1) with p = expm1(r) (no cancellation
 *          for small x, where k = 0 and the result is p itself).
 *   log1p: log(1+e) = 2*atanh(s), s = e/(2+e) (or, when 1+e > sqrt(2), ln2 + 2*atanh(s)
 *          with s = (w-2)/(w+2), w = 1+e), so |s| <= 0.1716 and the odd series needs
 *          5 (float) / 11 (double) terms.
 * Accuracy is checked in tests/test_activations.py against glibc (a few ulp).
 *
 * This file is compiled once and includes itself twice, with T = float and double,
 * so both dtypes come from one source.
 */
#ifndef DLK_ACT_T

#include "activations.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "softmax_exp.h"

/* Elements per parallel block: fixed, so which elements the vector body or the
 * scalar tail of a block handles never depends on the thread count; large enough
 * (64 KB of float32) that OpenMP's per-block overhead is negligible. Blocks are
 * handed out dynamically: on a shared, oversubscribed machine a descheduled thread
 * then delays only the block it holds, not a static half of the array. */
#define DLK_ACT_BLOCK 16384
/* Independent partial sums per reduction (two AVX-512 registers of doubles). */
#define DLK_ACT_LANES 16

#ifdef _OPENMP
#define DLK_ACT_OMP_FOR _Pragma("omp parallel for num_threads(nthreads) schedule(dynamic, 1) if(nb_ > 1)")
#define DLK_ACT_OMP_SIMD _Pragma("omp simd")
#else
#define DLK_ACT_OMP_FOR
#define DLK_ACT_OMP_SIMD
#endif

/* Run the statement(s) in the variadic tail for every i in [0, n), in fixed blocks. */
#define DLK_ACT_ELEMENTWISE(n, i, ...)                                             \
    do {                                                                           \
        const dlk_idx nb_ = ((n) + DLK_ACT_BLOCK - 1) / DLK_ACT_BLOCK;             \
        DLK_ACT_OMP_FOR                                                            \
        for (dlk_idx b_ = 0; b_ < nb_; ++b_) {                                     \
            const dlk_idx lo_ = b_ * DLK_ACT_BLOCK;                                \
            const dlk_idx hi_ = DLK_MIN((n), lo_ + DLK_ACT_BLOCK);                 \
            DLK_ACT_OMP_SIMD                                                       \
            for (dlk_idx i = lo_; i < hi_; ++i) { __VA_ARGS__ }                    \
        }                                                                          \
    } while (0)

/* 2^k from t = x*log2(e) + 1.5*2^mantissa_bits, whose low mantissa bits hold the rounded
 * k (two's complement): no float->int conversion, and a NaN t just yields garbage bits
 * that the NaN already in the polynomial overrides. Valid for normal exponents. */
static inline float dlk_pow2_f32(float t) {
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline double dlk_pow2_f64(double t) {
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ull + 1023u) << 52;
    double f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- float instantiation ---- */
#define DLK_ACT_T float
#define DLK_ACT_I int32_t
#define DLK_ACT_SUF(name) name##_f32
#define DLK_ACT_POW2 dlk_pow2_f32
#define DLK_ACT_EXPNEG dlk_expneg_f32
#define DLK_ACT_ROUND_MAGIC 12582912.0f /* 1.5 * 2^23 */
#define DLK_ACT_LN2_HI 0.693145751953125f
#define DLK_ACT_LN2_LO 1.428606765330187045e-06f
#define DLK_ACT_EXP_LO (-87.33654f)     /* ln(FLT_MIN): 2^k stays normal */
#define DLK_ACT_SQRT2 1.41421356237309505f
#define DLK_ACT_EXPM1_POLY(r)                                                      \
    ((r) * (1.0f + (r) * (1.0f / 2 + (r) * (1.0f / 6 + (r) * (1.0f / 24 +         \
     (r) * (1.0f / 120 + (r) * (1.0f / 720 + (r) * (1.0f / 5040))))))))
#define DLK_ACT_ATANH_POLY(z)                                                      \
    (1.0f + (z) * (1.0f / 3 + (z) * (1.0f / 5 + (z) * (1.0f / 7 + (z) * (1.0f / 9)))))
#include "activations.c"
#undef DLK_ACT_T
#undef DLK_ACT_I
#undef DLK_ACT_SUF
#undef DLK_ACT_POW2
#undef DLK_ACT_EXPNEG
#undef DLK_ACT_ROUND_MAGIC
#undef DLK_ACT_LN2_HI
#undef DLK_ACT_LN2_LO
#undef DLK_ACT_EXP_LO
#undef DLK_ACT_SQRT2
#undef DLK_ACT_EXPM1_POLY
#undef DLK_ACT_ATANH_POLY

/* ---- double instantiation ---- */
#define DLK_ACT_T double
#define DLK_ACT_I int64_t
#define DLK_ACT_SUF(name) name##_f64
#define DLK_ACT_POW2 dlk_pow2_f64
#define DLK_ACT_EXPNEG dlk_expneg_f64
#define DLK_ACT_ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#define DLK_ACT_LN2_HI 6.93147180369123816490e-01
#define DLK_ACT_LN2_LO 1.90821492927058770002e-10
#define DLK_ACT_EXP_LO (-708.39641853226) /* ln(DBL_MIN): 2^k stays normal */
#define DLK_ACT_SQRT2 1.41421356237309504880
#define DLK_ACT_EXPM1_POLY(r)                                                      \
    ((r) * (1.0 + (r) * (1.0 / 2 + (r) * (1.0 / 6 + (r) * (1.0 / 24 +             \
     (r) * (1.0 / 120 + (r) * (1.0 / 720 + (r) * (1.0 / 5040 +                     \
     (r) * (1.0 / 40320 + (r) * (1.0 / 362880 + (r) * (1.0 / 3628800 +             \
     (r) * (1.0 / 39916800 + (r) * (1.0 / 479001600 + (r) * (1.0 / 6227020800.0))))))))))))))
#define DLK_ACT_ATANH_POLY(z)                                                      \
    (1.0 + (z) * (1.0 / 3 + (z) * (1.0 / 5 + (z) * (1.0 / 7 + (z) * (1.0 / 9 +     \
     (z) * (1.0 / 11 + (z) * (1.0 / 13 + (z) * (1.0 / 15 + (z) * (1.0 / 17 +       \
     (z) * (1.0 / 19 + (z) * (1.0 / 21)))))))))))
#include "activations.c"

#else /* ======== templated body: T, I, SUF(...) defined by the including pass ======== */

#define T DLK_ACT_T
#define I DLK_ACT_I
#define SUF DLK_ACT_SUF

/* exp(x) for x <= 0: the softmax family's (softmax_exp.h; same contract: NaN passes
 * through, results below the smallest normal flush to 0), one exp for the whole
 * package. Its minimax polynomial is one degree below the Taylor one expm1 uses. */
static inline T SUF(dlk_exp_neg)(T x) {
    return DLK_ACT_EXPNEG(x);
}

/* expm1(x) for x <= 0 (NaN passes through); below -60 the result is -1 in both dtypes. */
static inline T SUF(dlk_expm1_neg)(T x) {
    const T xc = x < (T)-60 ? (T)-60 : x;
    const T t = xc * (T)1.44269504088896340736 + DLK_ACT_ROUND_MAGIC;
    const T kf = t - DLK_ACT_ROUND_MAGIC;
    const T r = (xc - kf * DLK_ACT_LN2_HI) - kf * DLK_ACT_LN2_LO;
    const T p = DLK_ACT_EXPM1_POLY(r);
    const T s = DLK_ACT_POW2(t);
    return s * p + (s - (T)1);
}

/* log1p(e) for e in [0, 1] (NaN passes through). */
static inline T SUF(dlk_log1p_unit)(T e) {
    const T w = (T)1 + e;
    const int big = w > DLK_ACT_SQRT2;
    const T num = big ? w - (T)2 : e;
    const T den = big ? w + (T)2 : (T)2 + e;
    const T s = num / den;
    const T z = s * s;
    const T series = (T)2 * s * DLK_ACT_ATANH_POLY(z);
    return big ? series + (T)0.693147180559945309417 : series;
}

/* 1/(1+exp(-x)) without overflow for any x. */
static inline T SUF(dlk_sigmoid)(T x) {
    const T e = SUF(dlk_exp_neg)(-fabs(x));
    const T num = x >= (T)0 ? (T)1 : e;
    return num / ((T)1 + e);
}

int SUF(dlk_act_forward)(int op, const T *restrict x, T *restrict y, dlk_idx n, double a,
                         double b, int nthreads) {
    const T ta = (T)a, tb = (T)b;
    switch (op) {
    case DLK_ACT_RELU:
        DLK_ACT_ELEMENTWISE(n, i, y[i] = x[i] < (T)0 ? (T)0 : x[i];);
        return DLK_OK;
    case DLK_ACT_LEAKY_RELU:
        DLK_ACT_ELEMENTWISE(n, i, y[i] = x[i] > (T)0 ? x[i] : x[i] * ta;);
        return DLK_OK;
    case DLK_ACT_ELU:
        DLK_ACT_ELEMENTWISE(n, i,
            const T v = x[i];
            const T em1 = SUF(dlk_expm1_neg)(v > (T)0 ? (T)0 : v);
            y[i] = v > (T)0 ? v : em1 * ta;);
        return DLK_OK;
    case DLK_ACT_SIGMOID:
        DLK_ACT_ELEMENTWISE(n, i, y[i] = SUF(dlk_sigmoid)(x[i]););
        return DLK_OK;
    case DLK_ACT_TANH:
        /* tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): exact-ish near 0, 1 for large |x| */
        DLK_ACT_ELEMENTWISE(n, i,
            const T m = SUF(dlk_expm1_neg)((T)-2 * fabs(x[i]));
            y[i] = copysign(-m / ((T)2 + m), x[i]););
        return DLK_OK;
    case DLK_ACT_SOFTPLUS:
        /* log1p(exp(bx)) = max(bx, 0) + log1p(exp(-|bx|)): never overflows, even when
         * the threshold lets large bx through (torch's direct form gives inf there). */
        DLK_ACT_ELEMENTWISE(n, i,
            const T bx = x[i] * ta;
            const T sp = (bx > (T)0 ? bx : (T)0) + SUF(dlk_log1p_unit)(SUF(dlk_exp_neg)(-fabs(bx)));
            y[i] = bx > tb ? x[i] : sp / ta;);
        return DLK_OK;
    default:
        return -1;
    }
}

int SUF(dlk_act_backward)(int op, const T *restrict g, const T *restrict xy, T *restrict gx,
                          dlk_idx n, double a, double b, int nthreads) {
    const T ta = (T)a, tb = (T)b;
    switch (op) {
    case DLK_ACT_RELU:
        DLK_ACT_ELEMENTWISE(n, i, gx[i] = xy[i] <= (T)0 ? (T)0 : g[i];);
        return DLK_OK;
    case DLK_ACT_LEAKY_RELU:
        DLK_ACT_ELEMENTWISE(n, i, gx[i] = xy[i] > (T)0 ? g[i] : g[i] * ta;);
        return DLK_OK;
    case DLK_ACT_ELU:
        DLK_ACT_ELEMENTWISE(n, i,
            const T v = xy[i];
            /* NaN takes the exp branch and propagates (torch's vectorized path does;
             * its scalar tail returns g, so torch itself is position-dependent). */
            const T e = SUF(dlk_exp_neg)(v > (T)0 ? (T)0 : v);
            gx[i] = v > (T)0 ? g[i] : g[i] * ta * e;);
        return DLK_OK;
    case DLK_ACT_SIGMOID:
        DLK_ACT_ELEMENTWISE(n, i, gx[i] = g[i] * ((T)1 - xy[i]) * xy[i];);
        return DLK_OK;
    case DLK_ACT_TANH:
        DLK_ACT_ELEMENTWISE(n, i, gx[i] = g[i] * ((T)1 - xy[i] * xy[i]););
        return DLK_OK;
    case DLK_ACT_SOFTPLUS:
        DLK_ACT_ELEMENTWISE(n, i,
            const T bx = xy[i] * ta;
            gx[i] = bx > tb ? g[i] : g[i] * SUF(dlk_sigmoid)(bx););
        return DLK_OK;
    default:
        return -1;
    }
}

void SUF(dlk_prelu_forward)(const T *restrict x, const T *restrict w, T *restrict y, dlk_idx N,
                            dlk_idx C, dlk_idx S, int nthreads) {
    const dlk_idx rows = N * C;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) if(rows * S > DLK_ACT_BLOCK)
#endif
    for (dlk_idx row = 0; row < rows; ++row) {
        const T wc = w[row % C];
        const T *restrict xr = x + row * S;
        T *restrict yr = y + row * S;
        for (dlk_idx s = 0; s < S; ++s) yr[s] = xr[s] > (T)0 ? xr[s] : wc * xr[s];
    }
}

int SUF(dlk_prelu_backward)(const T *restrict g, const T *restrict x, const T *restrict w,
                            T *restrict gx, T *restrict gw, dlk_idx N, dlk_idx C, dlk_idx S,
                            int nthreads) {
    const dlk_idx rows = N * C;
    /* One partial sum per (n, c) row, each computed by exactly one thread, then summed
     * in a fixed order: the weight gradient is identical for any thread count. */
    double *partial = (double *)malloc((size_t)(rows > 0 ? rows : 1) * sizeof(double));
    if (!partial) return DLK_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) if(rows * S > DLK_ACT_BLOCK)
#endif
    for (dlk_idx row = 0; row < rows; ++row) {
        const T wc = w[row % C];
        const T *restrict gr = g + row * S;
        const T *restrict xr = x + row * S;
        T *restrict gxr = gx + row * S;
        DLK_ACT_OMP_SIMD
        for (dlk_idx s = 0; s < S; ++s) gxr[s] = gr[s] * (xr[s] > (T)0 ? (T)1 : wc);
        /* 16 independent lanes, summed in a fixed order at the end: one running sum is a
         * serial chain of adds the compiler may not reorder, and a vectorized reduction
         * would sum in an order that depends on the data's alignment. */
        double lane[DLK_ACT_LANES] = {0};
        dlk_idx s = 0;
        /* The product is rounded in T, then summed in double: converting both factors
         * to double first mixes vector widths and gcc gives up vectorizing (21 ms vs
         * 0.6 ms on the bench shape, measured). */
        for (; s + DLK_ACT_LANES <= S; s += DLK_ACT_LANES) {
            for (int l = 0; l < DLK_ACT_LANES; ++l) {
                const T xv = xr[s + l];
                const T xn = xv > (T)0 ? (T)0 : xv;
                lane[l] += (double)(xn * gr[s + l]);
            }
        }
        for (int l = 0; s < S; ++s, ++l) {
            const T xv = xr[s];
            const T xn = xv > (T)0 ? (T)0 : xv;
            lane[l] += (double)(xn * gr[s]);
        }
        double acc = 0.0;
        for (int l = 0; l < DLK_ACT_LANES; ++l) acc += lane[l];
        partial[row] = acc;
    }
    for (dlk_idx c = 0; c < C; ++c) {
        double acc = 0.0;
        for (dlk_idx nn = 0; nn < N; ++nn) acc += partial[nn * C + c];
        gw[c] = (T)acc;
    }
    free(partial);
    return DLK_OK;
}

void SUF(dlk_rrelu_train)(const T *restrict x, const T *restrict slope, T *restrict y,
                          T *restrict noise, dlk_idx n, int nthreads) {
    DLK_ACT_ELEMENTWISE(n, i,
        const int neg = x[i] <= (T)0;
        y[i] = neg ? x[i] * slope[i] : x[i];
        noise[i] = neg ? slope[i] : (T)1;);
}

void SUF(dlk_dropout)(const T *restrict x, const uint32_t *restrict bits, uint32_t threshold,
                      T scale, T *restrict y, unsigned char *restrict mask, dlk_idx n,
                      int nthreads) {
    DLK_ACT_ELEMENTWISE(n, i,
        const int keep = bits[i] >= threshold;
        y[i] = keep ? x[i] * scale : (T)0;
        mask[i] = (unsigned char)keep;);
}

void SUF(dlk_dropout_backward)(const T *restrict g, const unsigned char *restrict mask, T scale,
                               T *restrict gx, dlk_idx n, int nthreads) {
    DLK_ACT_ELEMENTWISE(n, i, gx[i] = mask[i] ? g[i] * scale : (T)0;);
}

#undef T
#undef I
#undef SUF
#endif
