/* exp(d) for d <= 0 (the shifted logits d = x - max of the short-row softmax family),
 * float32, AVX-512, through a 32-entry table of 2^(k/32).
 *
 * Why: on (4096, 10) cross-entropy the exps were FMA-pipe bound: dlk_avx512_expneg_ps
 * (softmax_avx512.h) spends 10 FMA-pipe operations per vector (the reduction, a degree-6
 * polynomial, vscalefps). Here the table (two registers, read by one vpermt2ps, a shuffle)
 * shortens the reduced argument to |r| <= ln2/64, where a degree-3 polynomial is
 * accurate, and 2^n is added to the table entry's exponent with integer operations:
 * 7 FMA-pipe operations a vector.
 *
 * Method: d = (32 n + k) ln2/32 + r, n = floor(N / 32), k = N mod 32, N = round(32 d / ln2)
 * by the 1.5*2^23 shifter (N sits in the low bits of the shifter's sum, so its low 5 bits
 * are k and the table index, and the bits above give n). ln2/32 is split into hi (9
 * significant bits: N hi is exact for |N| <= 4032) and lo, r = (d - N hi) - N lo.
 * e^r = 1 + r + r^2/2 + r^3/6 (truncation r^4/24 < 6e-10 relative on |r| <= ln2/64),
 * applied as T + T (r q) with T = 2^(k/32) 2^n, q = 1 + r/2 + r^2/6.
 * Accuracy: the table entries are correctly rounded (0.5 ulp), the final fma rounds once,
 * the other roundings are scaled by |r| <= 0.011: about 1 ulp in all.
 * Range: d below LO = ln(FLT_MIN) (-87.34, including -inf) gives 0, as dlk_expneg_f32
 * of softmax_exp.h (the table entry times 2^n stays a normal float above LO); d = 0
 * gives exactly 1; a nan propagates (max keeps its second operand, the flush compare is
 * unordered-true). */
#ifndef DLK_SOFTMAX_EXPTAB_AVX512_H
#define DLK_SOFTMAX_EXPTAB_AVX512_H

#include <immintrin.h>

/* 2^(k/32), k = 0..31, correctly rounded to float; read as two vectors by vpermt2ps */
static const float dlk_exp2_32_table[32] __attribute__((aligned(64))) = {
    0x1.000000p+0f, 0x1.059b0ep+0f, 0x1.0b5586p+0f, 0x1.11301ep+0f, 0x1.172b84p+0f,
    0x1.1d4874p+0f, 0x1.2387a6p+0f, 0x1.29e9e0p+0f, 0x1.306fe0p+0f, 0x1.371a74p+0f,
    0x1.3dea64p+0f, 0x1.44e086p+0f, 0x1.4bfdaep+0f, 0x1.5342b6p+0f, 0x1.5ab07ep+0f,
    0x1.6247ecp+0f, 0x1.6a09e6p+0f, 0x1.71f75ep+0f, 0x1.7a1148p+0f, 0x1.82589ap+0f,
    0x1.8ace54p+0f, 0x1.93737cp+0f, 0x1.9c4918p+0f, 0x1.a5503cp+0f, 0x1.ae89fap+0f,
    0x1.b7f770p+0f, 0x1.c199bep+0f, 0x1.cb720ep+0f, 0x1.d5818ep+0f, 0x1.dfc974p+0f,
    0x1.ea4afap+0f, 0x1.f50766p+0f};

/* The body of both exps below. term (a constant at each call): the terms of a sum of
 * exps that is >= 1 (it holds exp(0) = 1: the cross-entropy loss's log-sum-exp), for
 * which two of the operations can go:
 * - one reduction step, r = d - N ln2/32 with ln2/32 rounded to float: its error,
 *   5.9e-11, times |N| <= 4032 makes r off by at most 2.4e-7 at d = LO, i.e. a term
 *   e^d has a relative error <= 2.7e-9 |d| more: at most 1e-8 absolute on the sum of 10
 *   terms (max of e^d |d| is 1/e), far below the sum's own float32 rounding;
 * - no flush: d < LO gives about FLT_MIN instead of 0, below the sum's rounding.
 * 11 operations instead of 13. */
static inline __attribute__((always_inline)) __m512 dlk_avx512_expneg_tab_ps_(__m512 d,
                                                                              const int term) {
    const __m512 lo = _mm512_set1_ps(-87.33654f); /* ln(FLT_MIN), rounded up */
    const __m512 shifter = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23 */
    const __m512 t0 = _mm512_load_ps(dlk_exp2_32_table), t1 = _mm512_load_ps(dlk_exp2_32_table + 16);
    __m512 xc = _mm512_max_ps(lo, d); /* -inf -> lo (flushed below); nan stays */
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(0x1.715476p+5f), shifter); /* 32/ln2 */
    __m512 nf = _mm512_sub_ps(t, shifter);
    __m512 r;
    if (term) {
        r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(0x1.62e430p-6f), xc); /* ln2/32 */
    } else {
        r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(0x1.63p-6f), xc);     /* ln2/32 hi */
        r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(-0x1.bd0106p-18f), r); /* ln2/32 lo */
    }
    __m512i ti = _mm512_castps_si512(t);
    /* n << 23: the bits of N above the low 5, moved to the exponent field (the shifter's
     * own bits sit above bit 13 and shift out) */
    __m512i n23 = _mm512_slli_epi32(_mm512_andnot_si512(_mm512_set1_epi32(31), ti), 18);
    __m512 tab = _mm512_permutex2var_ps(t0, ti, t1); /* uses the index's low 5 bits: k */
    __m512 ts = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(tab), n23));
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 6.0f), r, _mm512_set1_ps(0.5f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    /* T + T (r q): r q first, so no product falls below FLT_MIN before the last rounding */
    if (term) return _mm512_fmadd_ps(ts, _mm512_mul_ps(r, q), ts);
    __mmask16 keep = _mm512_cmp_ps_mask(d, lo, _CMP_NLT_UQ); /* d >= lo or nan */
    return _mm512_maskz_fmadd_ps(keep, ts, _mm512_mul_ps(r, q), ts);
}

/* exp(d), d <= 0, flushed to 0 below LO (the header comment). */
static inline __m512 dlk_avx512_expneg_tab_ps(__m512 d) { return dlk_avx512_expneg_tab_ps_(d, 0); }

/* A term of a sum of exps that is >= 1 (see dlk_avx512_expneg_tab_ps_). */
static inline __m512 dlk_avx512_expneg_tab_term_ps(__m512 d) {
    return dlk_avx512_expneg_tab_ps_(d, 1);
}

#endif
