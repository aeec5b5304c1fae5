/* Short float32 rows of even length D <= 16 with AVX-512, in a transposed "pair" layout.
 *
 * Why: with D = 10 the 16-rows-at-a-time path of softmax_short_avx512.h spends most of
 * its time on two transpose-reduction trees a group (16 row loads and 45 shuffles and
 * ops each) and on row loads that straddle the exps it has just stored (failed store
 * forwarding); the exps themselves were under a third of the time. Here the rows are
 * transposed once, in registers, so that every per-row reduction is vertical.
 *
 * Layout: 8 consecutive rows of even length D are 8*D = 16*V floats, V = D/2 vectors.
 * They are permuted into V "pair" vectors: pair vector j holds columns 2j (lanes 0-7)
 * and 2j+1 (lanes 8-15) of the 8 rows, lane l belonging to row l % 8. A row's max or
 * sum is then V-1 vertical ops and one combine of the two halves. A group is 16 rows
 * (two halves of 8), so the per-row results of a group fill one vector, lane r = row r,
 * as in softmax_short_avx512.h (dlk_avx512_log_ps, the division, the target gather).
 * The permutation is a table (dlk_pairs_init, built at library load): each output vector is
 * ceil(V/2) two-source permutes merged by blends (the last one, for odd V, a one-source
 * permute merging into the others); the way back is the inverse table.
 *
 * Numerics: the exp is dlk_avx512_expneg_tab_ps of x - max (softmax_exptab_avx512.h: about
 * 1 ulp as elsewhere, fewer FMA-pipe operations, results below FLT_MIN flushed to 0); a row's sum is a
 * fixed tree (vertical pairwise, then the two column halves: depth <= 4 for V <= 8, so
 * a relative error <= 4u = 2.4e-7, u = 2^-24), then 1/sum, log(sum) as in
 * softmax_short_avx512.h. The order of every operation depends on D alone and every row
 * of a group is computed by the same instructions (a short last group goes through a
 * zero-padded copy): results do not depend on blocking or thread count. Non-finite
 * rows: as softmax.h says (a nan or +inf poisons the sum, so the whole row is nan). */
#ifndef DLK_SOFTMAX_PAIRS_AVX512_H
#define DLK_SOFTMAX_PAIRS_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include "dlk_common.h"
#include "softmax_avx512.h"
#include "softmax_exptab_avx512.h"

/* Even rows up to this length. Measured on Zen 5 (one thread, 4096 rows), this layout
 * against softmax_short_avx512.h's: D = 8 softmax 8.2 vs 12.9 us, D = 10 13.3 vs 14.9
 * us, D = 12 17.1 vs 15.5 us: the permutes grow as D^2 / 4 a group, the trees do not. */
#define DLK_PAIRS_MAX_D 10
#define DLK_PAIRS_MAX_V (DLK_PAIRS_MAX_D / 2)

/* The per-V loops must unroll fully, so that the vectors live in registers. */
#define DLK_UNROLL _Pragma("GCC unroll 16")

/* Permutation tables for one D: vector j of the output of a shuffle is made of the
 * two-source permutes q = 0 .. ceil(V/2)-1 (sources 2q and 2q+1 of the input), lanes
 * mask[j][q] taken from permute q. */
typedef struct {
    int32_t idx[DLK_PAIRS_MAX_V][4][16];
    __mmask16 mask[DLK_PAIRS_MAX_V][4];
} dlk_pairs_perm;

typedef struct {
    int D, V;
    dlk_pairs_perm in;  /* flat -> pairs */
    dlk_pairs_perm out; /* pairs -> flat */
    int32_t row[DLK_PAIRS_MAX_D][16]; /* flat vector k, lane l: row (16k + l) / D */
} dlk_pairs;

static inline int dlk_pairs_supported(dlk_idx D) {
    return D >= 2 && D <= DLK_PAIRS_MAX_D && D % 2 == 0;
}

/* Fill one table from src_of(output vector j, lane l) = flat source position p
 * (source vector p / 16, lane p % 16). */
static inline void dlk_pairs_table(dlk_pairs_perm *t, int V, int to_pairs, int D) {
        for (int j = 0; j < V; j++) {
        for (int q = 0; q < 4; q++) t->mask[j][q] = 0;
        for (int l = 0; l < 16; l++) {
            int p;
            if (to_pairs) { /* pair vector j, lane l: row l % 8, column 2j + l / 8 */
                p = (l % 8) * D + 2 * j + l / 8;
            } else { /* flat position 16j + l: row f / D, column f % D */
                int f = 16 * j + l, r = f / D, c = f % D;
                p = 16 * (c / 2) + 8 * (c % 2) + r;
            }
            int src = p / 16, q = src / 2;
            t->idx[j][q][l] = (p % 16) + 16 * (src % 2);
            t->mask[j][q] |= (__mmask16)(1u << l);
        }
        for (int q = 0; q < 4; q++) /* lanes of other permutes: any valid index */
            for (int l = 0; l < 16; l++)
                if (!((t->mask[j][q] >> l) & 1)) t->idx[j][q][l] = 0;
    }
}

static inline void dlk_pairs_init(dlk_pairs *pr, dlk_idx D) {
    pr->D = (int)D;
    pr->V = (int)(D / 2);
    dlk_pairs_table(&pr->in, pr->V, 1, (int)D);
    dlk_pairs_table(&pr->out, pr->V, 0, (int)D);
    for (int k = 0; k < D; k++)
        for (int l = 0; l < 16; l++) pr->row[k][l] = (16 * k + l) / (int)D;
}

/* The tables of every supported D, built once when the library loads (they took 0.2 us,
 * about 3% of a (4096, 10) cross-entropy, when built per call). Read-only afterwards. */
static dlk_pairs dlk_pairs_tables[DLK_PAIRS_MAX_V + 1];

static void __attribute__((constructor)) dlk_pairs_tables_init(void) {
    for (int V = 1; V <= DLK_PAIRS_MAX_V; V++) dlk_pairs_init(&dlk_pairs_tables[V], 2 * V);
}

/* The pair layout's tables for rows of length D, or NULL when D is not supported. */
static inline const dlk_pairs *dlk_pairs_for(dlk_idx D) {
    return dlk_pairs_supported(D) ? &dlk_pairs_tables[D / 2] : NULL;
}

/* dst[0..V) = the table's permutation of src[0..V). V is a compile-time constant in
 * the callers (always inlined into the per-V instantiations below), so the loops
 * unroll and the vectors stay in registers. */
static inline __attribute__((always_inline)) void
dlk_pairs_shuffle(const dlk_pairs_perm *t, const __m512 *src, __m512 *dst, const int V) {
    DLK_UNROLL
    for (int j = 0; j < V; j++) {
        __m512 acc = _mm512_permutex2var_ps(
            src[0], _mm512_loadu_si512((const void *)t->idx[j][0]), src[V > 1 ? 1 : 0]);
        DLK_UNROLL
        for (int q = 1; 2 * q < V; q++) {
            __m512i idx = _mm512_loadu_si512((const void *)t->idx[j][q]);
            if (2 * q + 1 == V) { /* one source left: a merging permute, no blend */
                acc = _mm512_mask_permutexvar_ps(acc, t->mask[j][q], idx, src[2 * q]);
                continue;
            }
            __m512 b = _mm512_permutex2var_ps(src[2 * q], idx, src[2 * q + 1]);
            acc = _mm512_mask_blend_ps(t->mask[j][q], acc, b);
        }
        dst[j] = acc;
    }
}

/* Vertical max / sum of v[0..V), pairwise in a fixed order. */
static inline __attribute__((always_inline)) __m512 dlk_pairs_vmax(const __m512 *v, const int V) {
    __m512 a = v[0];
    DLK_UNROLL
    for (int j = 1; j < V; j++) a = _mm512_max_ps(a, v[j]); /* order does not matter */
    return a;
}

static inline __attribute__((always_inline)) __m512 dlk_pairs_vsum(const __m512 *v, const int V) {
    __m512 s[DLK_PAIRS_MAX_V];
    DLK_UNROLL
    for (int j = 0; j < V; j++) s[j] = v[j];
    DLK_UNROLL
    for (int w = 1; w < V; w *= 2) /* tree: (0+1) (2+3) ..., then stride 2, 4 */
        DLK_UNROLL
        for (int j = 0; j + w < V; j += 2 * w) s[j] = _mm512_add_ps(s[j], s[j + w]);
    return s[0];
}

/* Per-row results of a group from the two halves' partials a (rows 0-7) and b (rows
 * 8-15), each lane l = row l % 8, column parity l / 8: lane r of the result = row r. */
static inline __m512 dlk_pairs_rows_max(__m512 a, __m512 b) {
    return _mm512_max_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}

static inline __m512 dlk_pairs_rows_sum(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}

/* Row values (lane r = row r) brought to every lane of half h's pair vectors. */
static inline __m512 dlk_pairs_bcast(__m512 rows, int h) {
    const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
    return _mm512_permutexvar_ps(h ? _mm512_add_epi32(i0, _mm512_set1_epi32(8)) : i0, rows);
}

/* A group of 16 rows at x (16*D floats) in pair layout: p[h*V + j] for half h, pair
 * vector j. Returns the rows' maxima (lane r = row r). */
static inline __attribute__((always_inline)) __m512
dlk_pairs_load(const dlk_pairs *pr, const float *x, __m512 *p, const int V) {
    __m512 f[DLK_PAIRS_MAX_V];
    DLK_UNROLL
    for (int h = 0; h < 2; h++) {
        DLK_UNROLL
        for (int j = 0; j < V; j++) f[j] = _mm512_loadu_ps(x + 16 * (h * V + j));
        dlk_pairs_shuffle(&pr->in, f, p + h * V, V);
    }
    __m512 mr = dlk_pairs_rows_max(dlk_pairs_vmax(p, V), dlk_pairs_vmax(p + V, V));
    return mr;
}

/* The exps of a group of 16 rows at x (16*D floats) in pair layout: e[h*V + j] for
 * half h, pair vector j; z likewise x - max (for log-softmax; may be NULL). m and s get
 * the rows' maxima and sums of exps (lane r = row r). */
static inline __attribute__((always_inline)) void
dlk_pairs_group_exp(const dlk_pairs *pr, const float *x, __m512 *z, __m512 *e, __m512 *m,
                    __m512 *s, const int V) {
    __m512 p[2 * DLK_PAIRS_MAX_V];
    __m512 mr = dlk_pairs_load(pr, x, p, V);
    DLK_UNROLL
    for (int h = 0; h < 2; h++) {
        __m512 mb = dlk_pairs_bcast(mr, h);
        DLK_UNROLL
        for (int j = 0; j < V; j++) {
            __m512 d = _mm512_sub_ps(p[h * V + j], mb);
            if (z) z[h * V + j] = d;
            e[h * V + j] = dlk_avx512_expneg_tab_ps(d);
        }
    }
    *m = mr;
    *s = dlk_pairs_rows_sum(dlk_pairs_vsum(e, V), dlk_pairs_vsum(e + V, V));
}

/* Store a group held in pair layout (v[h*V + j]) to y, 16*D floats. */
static inline __attribute__((always_inline)) void
dlk_pairs_group_store(const dlk_pairs *pr, const __m512 *v, float *y, const int V) {
    __m512 f[DLK_PAIRS_MAX_V];
    DLK_UNROLL
    for (int h = 0; h < 2; h++) {
        dlk_pairs_shuffle(&pr->out, v + h * V, f, V);
        DLK_UNROLL
        for (int j = 0; j < V; j++) _mm512_storeu_ps(y + 16 * (h * V + j), f[j]);
    }
}

/* Softmax (y = e / sum) or log-softmax (y = (x - max) - log(sum)) of one full group. */
static inline __attribute__((always_inline)) void
dlk_pairs_group_softmax(const dlk_pairs *pr, const float *x, float *y, int is_log,
                        const int V) {
    __m512 e[2 * DLK_PAIRS_MAX_V], m, s;
    dlk_pairs_group_exp(pr, x, NULL, e, &m, &s, V);
    if (is_log) {
        /* (x - max) - log(sum), as the generic path, formed where x is: the per-row values
         * brought to the flat lanes by one permute each is cheaper than keeping x - max
         * (10 more registers) and transposing it back */
        __m512 lse = dlk_avx512_log_ps(s);
        DLK_UNROLL
        for (int k = 0; k < 2 * V; k++) {
            __m512i ik = _mm512_loadu_si512((const void *)pr->row[k]);
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + 16 * k), _mm512_permutexvar_ps(ik, m));
            _mm512_storeu_ps(y + 16 * k, _mm512_sub_ps(d, _mm512_permutexvar_ps(ik, lse)));
        }
        return;
    }
    __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
    DLK_UNROLL
    for (int h = 0; h < 2; h++) {
        __m512 ib = dlk_pairs_bcast(inv, h);
        DLK_UNROLL
        for (int j = 0; j < V; j++) e[h * V + j] = _mm512_mul_ps(e[h * V + j], ib);
    }
    dlk_pairs_group_store(pr, e, y, V);
}

/* Maxima and sums of exps of one full group (lane r = row r), for the cross-entropy
 * loss. */
static inline __attribute__((always_inline)) void
dlk_pairs_group_stats(const dlk_pairs *pr, const float *x, __m512 *m, __m512 *s, const int V) {
    __m512 e[2 * DLK_PAIRS_MAX_V];
    dlk_pairs_group_exp(pr, x, NULL, e, m, s, V);
}

/* Cross-entropy gradient of one full group: grad = e * (num / sum) - u w_c - cor on the
 * target column (num, cor, u per row, lane r = row r; tc the target of each row as int32,
 * -1 for none; w_c the class weight of each lane, wcol[j] for pair vector j; the u term
 * only when smooth). The order of the operations is cross_entropy_short_avx512.h's. */
static inline __attribute__((always_inline)) void
dlk_pairs_group_ce_grad(const dlk_pairs *pr, const float *x, float *grad, __m512 num,
                        __m512 cor, __m512i tc, int smooth, __m512 u, const float (*wcol)[16],
                        const int V) {
    __m512 e[2 * DLK_PAIRS_MAX_V], m, s;
    dlk_pairs_group_exp(pr, x, NULL, e, &m, &s, V);
    __m512 k = _mm512_div_ps(num, s);
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    DLK_UNROLL
    for (int h = 0; h < 2; h++) {
        __m512 kb = dlk_pairs_bcast(k, h), cb = dlk_pairs_bcast(cor, h);
        __m512 ub = dlk_pairs_bcast(u, h);
        __m512i tb = _mm512_castps_si512(dlk_pairs_bcast(_mm512_castsi512_ps(tc), h));
        DLK_UNROLL
        for (int j = 0; j < V; j++) {
            __mmask16 hit = _mm512_cmpeq_epi32_mask(
                tb, _mm512_add_epi32(half, _mm512_set1_epi32(2 * j)));
            __m512 g = _mm512_mul_ps(e[h * V + j], kb);
            if (smooth) g = _mm512_fnmadd_ps(ub, _mm512_loadu_ps(wcol[j]), g);
            e[h * V + j] = _mm512_mask_sub_ps(g, hit, g, cb);
        }
    }
    dlk_pairs_group_store(pr, e, grad, V);
}

/* Instantiate `CALL(V)` for the V of pr (D = 2V <= DLK_PAIRS_MAX_D): the per-V code is
 * unrolled. */
#define DLK_PAIRS_DISPATCH(V_RUNTIME, CALL) \
    switch (V_RUNTIME) {                    \
    case 1: CALL(1); break;                 \
    case 2: CALL(2); break;                 \
    case 3: CALL(3); break;                 \
    case 4: CALL(4); break;                 \
    default: CALL(5); break;                \
    }

#endif
