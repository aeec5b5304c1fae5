/* float32 batch statistics of an (N, C) channel strip, accumulated in float32 SIMD
 * lanes over short row blocks and merged into double once per block. Used by the
 * (N, C) training forward and backward of batch_norm.c for float32 only (float64
 * keeps its double sums); included once by batch_norm.c.
 *
 * Why: widening every value to double (two conversions per 16 floats, then double
 * adds and FMAs at half the lanes) made the three statistics passes of the (N, C)
 * strips compute-bound: ~29 us for (256, 512) on one core against ~7 us for a copy
 * of the same bytes. Here an element costs a few float32 vector operations; the
 * double work is per block and channel, not per element.
 *
 * Method, per block of nb <= BN_ROWS rows and per 16-channel column of the strip:
 *   1. c = K + sum(x - K) / nb, K the block's first row: the block's mean in float32,
 *      to a few ulp of K (x - K is exact when x is within a factor 2 of K, Sterbenz);
 *   2. s1 = sum(x - c), s2 = sum((x - c)^2) (backward also sg = sum dy and
 *      sgd = sum dy * (x - c)), in four (backward: two) float32 partial sums over
 *      rows r mod 4 (2), added as a tree. x - c is of the order of the block's spread however large the common
 *      offset, so these sums carry float32 rounding relative to the spread;
 *   3. in double: the block's mean c + s1/nb and M2 = s2 - s1^2/nb (the corrected
 *      two-pass form, exact for any centre, accurate for one this close) are merged
 *      into the strip's running mean and M2 with Chan, Golub and LeVeque's pairwise
 *      update, block after block.
 * The blocks and their order depend only on N, and a strip is reduced by one thread,
 * so results do not depend on the thread count. Measured on awkward float32 data
 * (offset 1e4 with spread 0.1, channel scales from 1e-3 to 1e3, N = 2, N = 65): mean
 * and output within ~1 float32 ulp of a float64 computation as before, variance
 * within ~2 ulp (the all-double sums: ~1; torch: 7 ulp to 1e-2 relative).
 *
 * Memory: step 1 reads the block's rows (x, and dy in the backward) once, in order,
 * and copies them column by column into a local pack (16 KiB each) that step 2
 * re-reads from L1; a partial last column (w not a multiple of 16) is copied
 * zero-padded, so every vector load stays inside the arrays.
 *
 * Cost, (256, 512) float32 training forward on 2 threads (C harness): statistics
 * ~6 us and normalization ~5 us, against ~4.6 us for a 2-thread pass that reads x
 * and writes y; the all-double statistics took ~10 us. */
#include <string.h>

/* Rows per block: long enough to amortise the double merge (about 25 double vector
 * operations per column) over the float32 sums (5 per row), short enough that the
 * float32 sums of a block stay within a few ulp and the packed block (BN_ROWS rows
 * of a 128-channel strip, 16 KiB) stays in L1 between steps 1 and 2. */
#define BN_ROWS 32
#define BN_V 16

typedef float bn_v16 __attribute__((vector_size(BN_V * sizeof(float))));
/* the same at any float's address (an unaligned, aliasing load); GCC compiled memcpy
 * loads of these 64-byte vectors into copies through the stack */
typedef float bn_v16u __attribute__((vector_size(BN_V * sizeof(float)), aligned(4),
                                     may_alias));

static inline bn_v16 bn_ld16(const float *p) { return *(const bn_v16u *)p; }

/* The float32 centre of nb >= 1 rows of a packed column (step 1 for a partial one). */
static inline bn_v16 bn_block_centre(const bn_v16 *restrict p, dlk_idx nb) {
    const bn_v16 K = p[0];
    bn_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    dlk_idx r = 1;
    for (; r + 4 <= nb; r += 4) {
        a0 += p[r] - K;
        a1 += p[r + 1] - K;
        a2 += p[r + 2] - K;
        a3 += p[r + 3] - K;
    }
    for (; r < nb; ++r) a0 += p[r] - K;
    return K + ((a0 + a1) + (a2 + a3)) * (1.0f / (float)nb);
}

/* Step 1 for the nv full columns of a block of nb rows at xb (row stride C): each
 * column's float32 centre into c, and its rows (and dy's) copied column by column into
 * px (pg) for step 2. Rows are read in order, each a contiguous run the hardware
 * prefetches; the copy is what step 2 re-reads. Why: read in place, a column's rows
 * (C values apart) fall into few L1 sets (2 of 64 when C = 512, 1 when C = 1024) and
 * were evicted before step 2, and walking a column down the rows defeated the
 * prefetchers (both measured: step 1 and 2 in place took longer than the double sums). */
static inline __attribute__((always_inline)) void bn_block_pack(
    const float *restrict xb, const float *restrict gb, dlk_idx C, dlk_idx nb, dlk_idx nv,
    bn_v16 (*restrict px)[BN_ROWS], bn_v16 (*restrict pg)[BN_ROWS], bn_v16 *restrict c) {
    bn_v16 K[BN_STRIP / BN_V], a[BN_STRIP / BN_V];
    for (dlk_idx v = 0; v < nv; ++v) {
        K[v] = px[v][0] = bn_ld16(xb + v * BN_V);
        a[v] = (bn_v16){0};
        if (gb) pg[v][0] = bn_ld16(gb + v * BN_V);
    }
    for (dlk_idx r = 1; r < nb; ++r) {
        const float *restrict xr = xb + r * C;
        for (dlk_idx v = 0; v < nv; ++v) {
            bn_v16 t = bn_ld16(xr + v * BN_V);
            px[v][r] = t;
            a[v] += t - K[v];
        }
        if (gb)
            for (dlk_idx v = 0; v < nv; ++v) pg[v][r] = bn_ld16(gb + r * C + v * BN_V);
    }
    for (dlk_idx v = 0; v < nv; ++v) c[v] = K[v] + a[v] * (1.0f / (float)nb);
}

/* Step 2 of the forward: s1, s2 of a packed column centred on c. */
static inline void bn_block_centred(const bn_v16 *restrict p, dlk_idx nb, bn_v16 c,
                                    bn_v16 *s1, bn_v16 *s2) {
    bn_v16 b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    bn_v16 q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};
    dlk_idx r = 0;
    for (; r + 4 <= nb; r += 4) {
        bn_v16 d0 = p[r] - c, d1 = p[r + 1] - c;
        bn_v16 d2 = p[r + 2] - c, d3 = p[r + 3] - c;
        b0 += d0;
        b1 += d1;
        b2 += d2;
        b3 += d3;
        q0 += d0 * d0;
        q1 += d1 * d1;
        q2 += d2 * d2;
        q3 += d3 * d3;
    }
    for (; r < nb; ++r) {
        bn_v16 d = p[r] - c;
        b0 += d;
        q0 += d * d;
    }
    *s1 = (b0 + b1) + (b2 + b3);
    *s2 = (q0 + q1) + (q2 + q3);
}

/* Step 2 of the backward: also sg = sum dy, sgd = sum dy * (x - c); two partial sums
 * each (rows r mod 2), which keeps the accumulators in registers. */
static inline void bn_block_centred_grad(const bn_v16 *restrict p,
                                         const bn_v16 *restrict g, dlk_idx nb, bn_v16 c,
                                         bn_v16 *s1, bn_v16 *s2, bn_v16 *sg, bn_v16 *sgd) {
    bn_v16 b0 = {0}, b1 = {0}, q0 = {0}, q1 = {0};
    bn_v16 e0 = {0}, e1 = {0}, f0 = {0}, f1 = {0};
    dlk_idx r = 0;
    for (; r + 2 <= nb; r += 2) {
        bn_v16 d0 = p[r] - c, d1 = p[r + 1] - c;
        bn_v16 g0 = g[r], g1 = g[r + 1];
        b0 += d0;
        b1 += d1;
        q0 += d0 * d0;
        q1 += d1 * d1;
        e0 += g0;
        e1 += g1;
        f0 += g0 * d0;
        f1 += g1 * d1;
    }
    if (r < nb) {
        bn_v16 d = p[r] - c, gr = g[r];
        b0 += d;
        q0 += d * d;
        e0 += gr;
        f0 += gr * d;
    }
    *s1 = b0 + b1;
    *s2 = q0 + q1;
    *sg = e0 + e1;
    *sgd = f0 + f1;
}

/* Per-channel double state of a strip while its blocks are merged: 8 channels per
 * vector, and the same as plain arrays (channel j at .d[j]) for the final loop. */
typedef double bn_v8d __attribute__((vector_size(8 * sizeof(double))));
typedef float bn_v8f __attribute__((vector_size(8 * sizeof(float))));
typedef union {
    bn_v8d v[BN_STRIP / 8];
    double d[BN_STRIP];
} bn_strip_doubles;
typedef struct {
    bn_strip_doubles mean, m2;
    bn_strip_doubles sg;  /* sum dy */
    bn_strip_doubles sgd; /* sum of dy * (x - c_b) + (c_b - c_0) * sum_b dy over blocks b */
    bn_strip_doubles c0;  /* the first block's centres c_0: the reference of sgd */
} bn_blocked_state;

/* Factors of merging a block of nb rows after na rows. */
typedef struct {
    double inb, fb, fab; /* 1 / nb, nb / n, na * nb / n with n = na + nb */
    int first;           /* na == 0 */
} bn_merge_factors;

static inline bn_merge_factors bn_merge_factors_of(dlk_idx na, dlk_idx nb) {
    double n = (double)(na + nb);
    bn_merge_factors f = {1.0 / (double)nb, (double)nb / n, (double)na * (double)nb / n,
                          na == 0};
    return f;
}

static inline bn_v8d bn_half(bn_v16 v, int h) {
    bn_v8f f = h ? __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15)
                 : __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
    return __builtin_convertvector(f, bn_v8d);
}

/* Step 3: merge one block's column (the 16 channels from 16 * v) into the state. */
static inline void bn_block_merge(bn_blocked_state *restrict st, dlk_idx v,
                                  bn_merge_factors f, bn_v16 c, bn_v16 s1, bn_v16 s2,
                                  const bn_v16 *sg, const bn_v16 *sgd) {
    for (int h = 0; h < 2; ++h) {
        dlk_idx k = 2 * v + h;
        bn_v8d cd = bn_half(c, h), d1 = bn_half(s1, h), d2 = bn_half(s2, h);
        bn_v8d mb = cd + d1 * f.inb, m2b = d2 - d1 * d1 * f.inb;
        if (f.first) {
            st->mean.v[k] = mb;
            st->m2.v[k] = m2b;
        } else {
            bn_v8d delta = mb - st->mean.v[k];
            st->mean.v[k] += delta * f.fb;
            st->m2.v[k] += m2b + delta * delta * f.fab;
        }
        if (!sg) continue;
        bn_v8d g = bn_half(*sg, h), gd = bn_half(*sgd, h);
        if (f.first) {
            st->c0.v[k] = cd;
            st->sg.v[k] = g;
            st->sgd.v[k] = gd;
        } else { /* c_b - c_0 is exact in double */
            st->sg.v[k] += g;
            st->sgd.v[k] += gd + (cd - st->c0.v[k]) * g;
        }
    }
}

/* Steps 1-3 over the blocks of a strip of w channels (nv = w / BN_V full columns and
 * a partial one if w is not a multiple of BN_V), into st; see the header comment. */
static inline __attribute__((always_inline)) void bn_blocked_strip(
    const float *x, const float *dy, dlk_idx N, dlk_idx C, dlk_idx w,
    bn_blocked_state *restrict st) {
    /* a block's columns, packed by step 1 (a partial column zero-padded) */
    bn_v16 px[BN_STRIP / BN_V][BN_ROWS], pg[BN_STRIP / BN_V][BN_ROWS];
    bn_v16 c[BN_STRIP / BN_V];
    dlk_idx nv = w / BN_V, tail = w - nv * BN_V;
    for (dlk_idx n0 = 0; n0 < N; n0 += BN_ROWS) {
        dlk_idx nb = DLK_MIN(BN_ROWS, N - n0);
        const float *xb = x + n0 * C, *gb = dy ? dy + n0 * C : NULL;
        bn_block_pack(xb, gb, C, nb, nv, px, pg, c);
        if (tail) {
            for (dlk_idx r = 0; r < nb; ++r) {
                px[nv][r] = (bn_v16){0};
                memcpy(&px[nv][r], xb + r * C + nv * BN_V, (size_t)tail * sizeof(float));
                if (gb) {
                    pg[nv][r] = (bn_v16){0};
                    memcpy(&pg[nv][r], gb + r * C + nv * BN_V, (size_t)tail * sizeof(float));
                }
            }
            c[nv] = bn_block_centre(px[nv], nb);
        }
        bn_merge_factors f = bn_merge_factors_of(n0, nb);
        for (dlk_idx v = 0; v < nv + (tail > 0); ++v) {
            bn_v16 s1, s2, sg, sgd;
            if (gb) {
                bn_block_centred_grad(px[v], pg[v], nb, c[v], &s1, &s2, &sg, &sgd);
                bn_block_merge(st, v, f, c[v], s1, s2, &sg, &sgd);
            } else {
                bn_block_centred(px[v], nb, c[v], &s1, &s2);
                bn_block_merge(st, v, f, c[v], s1, s2, NULL, NULL);
            }
        }
    }
}

/* Batch mean, biased variance and inverse std of the w <= BN_STRIP channels at x
 * (row stride C, N >= 1 rows); with dy also sdy = sum dy and sdyd = sum dy * (x - mean).
 * The variance is clamped at 0 (NaN kept), as in the double paths. */
static void bn_blocked_stats_f32(const float *x, const float *dy, dlk_idx N, dlk_idx C,
                                 dlk_idx w, double eps, double *mean, double *var,
                                 double *invstd, double *sdy, double *sdyd) {
    bn_blocked_state st;
    if (w == BN_STRIP) /* a literal width keeps step 1's accumulators in registers */
        bn_blocked_strip(x, dy, N, C, BN_STRIP, &st);
    else
        bn_blocked_strip(x, dy, N, C, w, &st);
    double M = (double)N;
    /* plain loops, vectorized: a division and a square root per channel cost as much
     * as the rest of a small strip when done one at a time */
    for (dlk_idx j = 0; j < w; ++j) {
        double v = st.m2.d[j] / M;
        v = v < 0.0 ? 0.0 : v; /* rounding can leave M2 just below 0; NaN is kept */
        mean[j] = st.mean.d[j];
        var[j] = v;
        invstd[j] = 1.0 / sqrt(v + eps);
    }
    if (dy)
        for (dlk_idx j = 0; j < w; ++j) {
            sdy[j] = st.sg.d[j];
            sdyd[j] = st.sgd.d[j] + (st.c0.d[j] - st.mean.d[j]) * st.sg.d[j];
        }
}
