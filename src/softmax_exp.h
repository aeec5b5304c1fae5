/* Branch-free exp for the softmax family, written so gcc -O3 vectorizes loops that call it.
 *
 * libm's exp does not vectorize here: glibc only declares its vector variants (libmvec)
 * under -ffast-math, which dlkern does not use. So this is a classic Cody-Waite
 * reduction x = n*ln2 + r, |r| <= ln2/2, a polynomial for e^r and 2^n built from bits.
 *
 *   dlk_exp_f32: Taylor polynomial of degree 7 (truncation < 1e-8 relative on |r| <= ln2/2,
 *                below float32's half ulp), about 1 ulp overall.
 *   dlk_exp_f64: Taylor polynomial of degree 13 (truncation < 1e-17), within a few ulp.
 *
 * Whole range, no special cases left to the caller: results that underflow become
 * subnormals and then 0 (2^n is applied as two factors 2^(n/2) * 2^(n - n/2), so neither
 * factor leaves the normal range), results that overflow become +inf, exp(-inf) = 0,
 * exp(+inf) = +inf, exp(nan) = nan. Inputs are clamped first with compare-selects
 * (which also map nan to the lower bound) so the float-to-int conversion never sees a
 * nan or an out-of-range value; the nan is put back by the last select.
 *
 * Everything is `static inline` over scalars: gcc inlines it into the callers' loops and
 * vectorizes the loop body (AVX-512/AVX2 with -march=native).
 */
#ifndef DLK_SOFTMAX_EXP_H
#define DLK_SOFTMAX_EXP_H

#include <stdint.h>
#include <string.h>

static inline float dlk_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline double dlk_f64_from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline float dlk_exp_f32(float x) {
    /* e^-104 is below half the smallest subnormal, e^89 above FLT_MAX. */
    float xc = x > -104.0f ? x : -104.0f;
    xc = xc < 89.0f ? xc : 89.0f;
    /* n = round(x / ln2) by the 1.5*2^23 shifter: exact for |n| < 2^22. */
    const float shifter = 12582912.0f;
    float nf = (xc * 1.44269504088896341f + shifter) - shifter;
    /* ln2 split so that n * ln2_hi is exact (ln2_hi has 9 significant bits). */
    float r = xc - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t n = (int32_t)nf;                 /* in [-150, 129] */
    int32_t n1 = n >> 1;                     /* arithmetic shift: floor(n/2) */
    int32_t n2 = n - n1;
    float s1 = dlk_f32_from_bits((uint32_t)(n1 + 127) << 23);
    float s2 = dlk_f32_from_bits((uint32_t)(n2 + 127) << 23);
    float y = (p * s1) * s2;
    return x != x ? x : y;
}

static inline double dlk_exp_f64(double x) {
    /* e^-746 is below half the smallest subnormal, e^710 above DBL_MAX. */
    double xc = x > -746.0 ? x : -746.0;
    xc = xc < 710.0 ? xc : 710.0;
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    double nf = (xc * 1.4426950408889634074 + shifter) - shifter;
    /* fdlibm's split of ln2: n * ln2_hi is exact for |n| < 2^11. */
    double r = xc - nf * 6.93147180369123816490e-01;
    r = r - nf * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t n = (int64_t)nf;                 /* in [-1077, 1025] */
    int64_t n1 = n >> 1;
    int64_t n2 = n - n1;
    double s1 = dlk_f64_from_bits((uint64_t)(n1 + 1023) << 52);
    double s2 = dlk_f64_from_bits((uint64_t)(n2 + 1023) << 52);
    double y = (p * s1) * s2;
    return x != x ? x : y;
}

/* exp for arguments that are <= 0, -inf or nan: the shifted logits x - max(x) of the
 * softmax family, and exp(-|x|) of the activations (src/activations.c uses these too). Cheaper than the full-range versions (one scale factor, no upper
 * clamp). Results below the smallest normal number (x < ln(FLT_MIN) ~ -87.34 in float32,
 * x < ln(DBL_MIN) ~ -708.40 in float64) are flushed to 0 rather than returned as
 * subnormals: they are at most ~1e-38 (1e-308) relative to the row's largest term.
 * The 2^n factor comes straight from the shifter's bits (the exponent bias is folded into
 * the shifter), so no float-to-int conversion happens and a nan simply propagates. */
static inline float dlk_expneg_f32(float x) {
    const float lo = -87.33654f; /* just above ln(FLT_MIN): 2^n stays normal */
    const float shifter = 12582912.0f + 127.0f; /* 1.5*2^23 + exponent bias */
    float xc = x < lo ? lo : x;              /* -inf -> lo; nan stays nan */
    float t = xc * 1.44269504088896341f + shifter;
    float nf = t - shifter;
    float r = xc - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    /* near-minimax (Chebyshev) fit of (e^r - 1)/r on [-ln2/2, ln2/2], rel. error 1e-8 */
    float q = 1.393364160e-03f;
    q = q * r + 8.369148709e-03f;
    q = q * r + 4.166646674e-02f;
    q = q * r + 1.666650474e-01f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    float p = q * r + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    float y = p * dlk_f32_from_bits(tb << 23);
    return x < lo ? 0.0f : y;
}

static inline double dlk_expneg_f64(double x) {
    const double lo = -708.39641853226; /* just above ln(DBL_MIN) */
    const double shifter = 6755399441055744.0 + 1023.0; /* 1.5*2^52 + exponent bias */
    double xc = x < lo ? lo : x;
    double t = xc * 1.4426950408889634074 + shifter;
    double nf = t - shifter;
    double r = xc - nf * 6.93147180369123816490e-01;
    r = r - nf * 1.90821492927058770002e-10;
    /* near-minimax fit of (e^r - 1)/r on [-ln2/2, ln2/2], rel. error 1e-17 */
    double q = 2.510520637395701e-08;
    q = q * r + 2.7626357241447223e-07;
    q = q * r + 2.7557255425746435e-06;
    q = q * r + 2.4801504346997686e-05;
    q = q * r + 0.00019841269874800493;
    q = q * r + 0.0013888888932488599;
    q = q * r + 0.008333333333326141;
    q = q * r + 0.04166666666657314;
    q = q * r + 0.1666666666666667;
    q = q * r + 0.5000000000000006;
    q = q * r + 1.0;
    double p = q * r + 1.0;
    uint64_t tb;
    memcpy(&tb, &t, sizeof tb);
    double y = p * dlk_f64_from_bits(tb << 52);
    return x < lo ? 0.0 : y;
}

#endif
