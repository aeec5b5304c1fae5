/* Short float32 rows (D < DLK_SOFTMAX_FUSE_D) with AVX-512: 16 rows at a time, every
 * per-row quantity (max, sum, 1/sum, log of the sum) in the 16 lanes of one vector.
 *
 * Why: with D = 10 a row is less than one vector, so per-row scalar work (a horizontal
 * max and sum, a double division, a libm log) cost more than the exps themselves; a
 * scalar log per row alone was ~20 us for 4096 rows.
 *
 * Layout: a group is 16 consecutive rows, 16*D contiguous floats = exactly D vectors.
 *   - reductions: each row is loaded as its own vector (ceil(D/16) masked loads,
 *     combined vertically), then 16 row vectors are reduced together by a transpose
 *     tree (dlk_rows16_reduce) into one vector whose lane r is row r's result;
 *   - elementwise work (exp, scale, subtract) runs over the D flat vectors, with the
 *     per-row value brought to every element by a permute with a per-D index table
 *     (lane l of flat vector k belongs to row (16k + l) / D).
 * Forward softmax / log-softmax and cross-entropy of even D <= DLK_PAIRS_MAX_D use the
 * transposed pair layout of softmax_pairs_avx512.h instead (same group of 16 rows).
 * A group with fewer than 16 rows (the end of the array) is copied into a zero-padded
 * local group first, so every row is computed by exactly the same instructions
 * wherever it sits: results do not depend on blocking or thread count.
 * Threads: every kernel of this file and of cross_entropy_short_avx512.h runs through
 * dlk_short_parallel, tasks of DLK_SHORT_TASK rows whose boundaries do not depend on
 * the thread count.
 *
 * Numerics: sums are in float32 (a row of D < 64 terms: at most 3 vertical and 4 tree
 * roundings, relative error <= 7u = 4.2e-7 for the sum of exps, u = 2^-24), 1/sum a
 * correctly rounded division, the log by dlk_avx512_log_ps (softmax_avx512.h, < 2 ulp
 * measured). */
#ifndef DLK_SOFTMAX_SHORT_AVX512_H
#define DLK_SOFTMAX_SHORT_AVX512_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "dlk_common.h"
#include "softmax_avx512.h"
#include "softmax_common.h"
#include "softmax_pairs_avx512.h"

/* Sixteen row vectors reduced at once: lane r of the result is the reduction (max or
 * sum) of v[r]'s 16 lanes. A transpose tree of 4 levels, each halving the lanes per row:
 * a combine of two vectors is one blend (keeps half of each, any FP pipe), one shuffle
 * (brings the other halves over) and the op, so 15 shuffles in all (the shuffle pipe was
 * the bound with two shuffles a combine). The order of the operations is fixed:
 * deterministic. The tree leaves the rows permuted; one permute restores row order. */
#define DLK_ROWS16_REDUCE(name, OP)                                                       \
    static inline __m512 name(const __m512 *v) {                                          \
        __m512 w[8], q[4], h[2];                                                          \
        for (int k = 0; k < 8; k++) { /* 256-bit halves: [a a b b] */                    \
            __m512 a = v[2 * k], b = v[2 * k + 1];                                        \
            w[k] = OP(_mm512_mask_blend_ps(0xFF00, a, b),                                 \
                      _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 3, 2)));              \
        }                                                                                 \
        for (int k = 0; k < 4; k++) { /* 128-bit blocks: [A C B D] */                    \
            __m512 a = w[2 * k], b = w[2 * k + 1];                                        \
            __m512 u = _mm512_mask_blend_ps(0xF0F0, b, a);                                \
            q[k] = OP(_mm512_mask_blend_ps(0xF0F0, a, b),                                 \
                      _mm512_shuffle_f32x4(u, u, _MM_SHUFFLE(2, 3, 0, 1)));              \
        }                                                                                 \
        for (int k = 0; k < 2; k++) { /* pairs of lanes in each block */                 \
            __m512 a = q[2 * k], b = q[2 * k + 1];                                        \
            h[k] = OP(_mm512_mask_blend_ps(0xCCCC, a, b),                                 \
                      _mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 3, 2)));                 \
        }                                                                                 \
        __m512 u = _mm512_mask_blend_ps(0xAAAA, h[1], h[0]);                              \
        __m512 t = OP(_mm512_mask_blend_ps(0xAAAA, h[0], h[1]),                           \
                      _mm512_permute_ps(u, _MM_SHUFFLE(2, 3, 0, 1)));                    \
        /* t: lane 4j + {0, 1, 2, 3} holds row {0, 8, 4, 12} + (0, 2, 1, 3)[j] */         \
        const __m512i back = _mm512_setr_epi32(0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13,   \
                                               3, 11, 7, 15);                             \
        return _mm512_permutexvar_ps(back, t);                                            \
    }
DLK_ROWS16_REDUCE(dlk_rows16_max, _mm512_max_ps)
DLK_ROWS16_REDUCE(dlk_rows16_sum, _mm512_add_ps)
#undef DLK_ROWS16_REDUCE

/* What a group needs to know about D, computed once per call: the masks of a row's
 * ceil(D/16) loads and (in a table the call owns) the row of every flat lane. Small, so
 * that each task takes its own copy: the compiler then keeps it in registers (through a
 * shared pointer it would reload it after every vector store, which may alias). */
typedef struct {
    dlk_idx D;
    int nv;                 /* vectors per row, ceil(D / 16) */
    __mmask16 mask[4];      /* lanes of each of them */
    const int32_t *row;     /* row[16k + l] = (16k + l) / D, for k < D */
} dlk_short_rows;

#define DLK_SHORT_ROW_TABLE (64 * 16)

static inline void dlk_short_rows_init(dlk_short_rows *sr, int32_t *table, dlk_idx D) {
    sr->D = D;
    sr->nv = (int)((D + 15) / 16);
    for (int c = 0; c < sr->nv; c++) {
        dlk_idx left = D - 16 * c;
        sr->mask[c] = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    }
    for (int32_t r = 0; r < 16; r++)
        for (dlk_idx d = 0; d < D; d++) table[r * D + d] = r;
    sr->row = table;
}

static inline __m512i dlk_short_rows_idx(const dlk_short_rows *sr, dlk_idx k) {
    return _mm512_loadu_si512((const void *)(sr->row + 16 * k));
}

/* Row vectors of 16 rows at x (row r at x + r*D): max (masked-off lanes -inf) */
static inline __m512 dlk_short_rows_max(const dlk_short_rows *sr, const float *x) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 v[16];
    if (sr->nv == 1) { /* one vector a row: a loop gcc unrolls, rows kept in registers */
        for (int r = 0; r < 16; r++) v[r] = _mm512_mask_loadu_ps(ninf, sr->mask[0], x + r * sr->D);
        return dlk_rows16_max(v);
    }
    for (int r = 0; r < 16; r++) {
        const float *xr = x + r * sr->D;
        __m512 a = _mm512_mask_loadu_ps(ninf, sr->mask[0], xr);
        for (int c = 1; c < sr->nv; c++)
            a = _mm512_max_ps(a, _mm512_mask_loadu_ps(ninf, sr->mask[c], xr + 16 * c));
        v[r] = a;
    }
    return dlk_rows16_max(v);
}

/* ... and sum (masked-off lanes 0) */
static inline __m512 dlk_short_rows_sum(const dlk_short_rows *sr, const float *x) {
    __m512 v[16];
    if (sr->nv == 1) {
        for (int r = 0; r < 16; r++) v[r] = _mm512_maskz_loadu_ps(sr->mask[0], x + r * sr->D);
        return dlk_rows16_sum(v);
    }
    for (int r = 0; r < 16; r++) {
        const float *xr = x + r * sr->D;
        __m512 a = _mm512_maskz_loadu_ps(sr->mask[0], xr);
        for (int c = 1; c < sr->nv; c++)
            a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(sr->mask[c], xr + 16 * c));
        v[r] = a;
    }
    return dlk_rows16_sum(v);
}

/* ... and dot product of two row sets */
static inline __m512 dlk_short_rows_dot(const dlk_short_rows *sr, const float *a,
                                        const float *b) {
    __m512 v[16];
    for (int r = 0; r < 16; r++) {
        const float *ar = a + r * sr->D, *br = b + r * sr->D;
        __m512 s = _mm512_mul_ps(_mm512_maskz_loadu_ps(sr->mask[0], ar),
                                 _mm512_maskz_loadu_ps(sr->mask[0], br));
        for (int c = 1; c < sr->nv; c++)
            s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(sr->mask[c], ar + 16 * c),
                                _mm512_maskz_loadu_ps(sr->mask[c], br + 16 * c), s);
        v[r] = s;
    }
    return dlk_rows16_sum(v);
}

/* One full group of softmax / log-softmax forward: 16 rows at x, results at y.
 * e: scratch of 16*D floats for log-softmax's exps (softmax keeps them in y).
 * Returns the rows' maxima and sums of exps (lane r = row r) for the caller that
 * wants them (cross-entropy). */
static inline void dlk_short_group_exp(const dlk_short_rows *sr, const float *x, float *e,
                                       __m512 *m_out, __m512 *s_out) {
    __m512 m = dlk_short_rows_max(sr, x);
    for (dlk_idx k = 0; k < sr->D; k++) {
        __m512 mk = _mm512_permutexvar_ps(dlk_short_rows_idx(sr, k), m);
        _mm512_storeu_ps(e + 16 * k,
                         dlk_avx512_expneg_ps(_mm512_sub_ps(_mm512_loadu_ps(x + 16 * k), mk)));
    }
    *m_out = m;
    *s_out = dlk_short_rows_sum(sr, e);
}

static inline void dlk_short_group_softmax(const dlk_short_rows *sr, const float *x, float *y,
                                           float *e, int is_log) {
    __m512 m, s;
    if (!is_log) {
        dlk_short_group_exp(sr, x, y, &m, &s);
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
        for (dlk_idx k = 0; k < sr->D; k++) {
            __m512 ik = _mm512_permutexvar_ps(dlk_short_rows_idx(sr, k), inv);
            _mm512_storeu_ps(y + 16 * k, _mm512_mul_ps(_mm512_loadu_ps(y + 16 * k), ik));
        }
    } else {
        dlk_short_group_exp(sr, x, e, &m, &s);
        __m512 lse = dlk_avx512_log_ps(s);
        for (dlk_idx k = 0; k < sr->D; k++) {
            __m512i ix = dlk_short_rows_idx(sr, k);
            /* (x - m) - log(sum), as the long rows */
            __m512 z = _mm512_sub_ps(_mm512_loadu_ps(x + 16 * k), _mm512_permutexvar_ps(ix, m));
            _mm512_storeu_ps(y + 16 * k, _mm512_sub_ps(z, _mm512_permutexvar_ps(ix, lse)));
        }
    }
}

/* ---- drivers: tasks of whole groups, split over threads ---- */

/* Rows per task: a multiple of the group, so that only the array's last group is
 * padded; the split of tasks over threads never changes a row's instructions. */
#define DLK_SHORT_TASK 128

/* A task computes rows [r0, r1) (r0 a multiple of DLK_SHORT_TASK) of the call that ctx
 * describes; tasks write disjoint outputs. */
typedef void (*dlk_short_task)(void *ctx, dlk_idx r0, dlk_idx r1);

/* Runs task over [0, rows), tasks split statically over threads: one thread below
 * DLK_SOFTMAX_SERIAL_ELEMS elements, where the fork costs more than it saves. */
static inline void dlk_short_parallel(dlk_short_task task, void *ctx, dlk_idx rows, dlk_idx D,
                                      int nthreads) {
    dlk_idx ntasks = (rows + DLK_SHORT_TASK - 1) / DLK_SHORT_TASK;
    if (rows * D < DLK_SOFTMAX_SERIAL_ELEMS || ntasks < 2) nthreads = 1;
    if (nthreads == 1) { /* no parallel region at all: its entry alone was ~0.1 us */
        for (dlk_idx k = 0; k < ntasks; k++)
            task(ctx, k * DLK_SHORT_TASK, DLK_MIN(rows, (k + 1) * DLK_SHORT_TASK));
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (dlk_idx k = 0; k < ntasks; k++)
        task(ctx, k * DLK_SHORT_TASK, DLK_MIN(rows, (k + 1) * DLK_SHORT_TASK));
}

/* The last, partial group of an array: its n rows copied into a zero-padded group of 16,
 * so that they are computed by the same instructions as the rows of full groups. */
static inline void dlk_short_pad(float *group, const float *src, dlk_idx n, dlk_idx D) {
    memcpy(group, src, (size_t)(n * D) * sizeof(float));
    memset(group + n * D, 0, (size_t)((16 - n) * D) * sizeof(float));
}

/* ---- softmax / log-softmax forward ---- */

typedef struct {
    const float *x;
    float *y;
    dlk_idx D;
    int is_log;
    const dlk_short_rows *sr; /* the generic path, or */
    const dlk_pairs *pr;      /* the pair layout (softmax_pairs_avx512.h), or NULL */
} dlk_short_softmax_args;

/* Rows [r0, r1) in the pair layout, V = D / 2 a constant (one instantiation per V). */
static inline __attribute__((always_inline)) void
dlk_pairs_rows_softmax(const dlk_short_softmax_args *a, dlk_idx r0, dlk_idx r1, const int V) {
    const dlk_pairs *pr = a->pr;
    const float *x = a->x;
    float *y = a->y;
    int is_log = a->is_log;
    dlk_idx D = 2 * V, r = r0;
    for (; r + 16 <= r1; r += 16) dlk_pairs_group_softmax(pr, x + r * D, y + r * D, is_log, V);
    if (r < r1) {
        float xp[DLK_PAIRS_MAX_D * 16], yp[DLK_PAIRS_MAX_D * 16];
        dlk_short_pad(xp, x + r * D, r1 - r, D);
        dlk_pairs_group_softmax(pr, xp, yp, is_log, V);
        memcpy(y + r * D, yp, (size_t)((r1 - r) * D) * sizeof(float));
    }
}

static void dlk_short_softmax_task(void *ctx, dlk_idx r0, dlk_idx r1) {
    const dlk_short_softmax_args *a = (const dlk_short_softmax_args *)ctx;
    if (a->pr) {
#define DLK_CALL(V) dlk_pairs_rows_softmax(a, r0, r1, V)
        DLK_PAIRS_DISPATCH(a->pr->V, DLK_CALL)
#undef DLK_CALL
        return;
    }
    dlk_short_rows sr = *a->sr;
    const float *x = a->x;
    float *y = a->y;
    int is_log = a->is_log;
    float e[64 * 16];
    dlk_idx D = sr.D, r = r0;
    for (; r + 16 <= r1; r += 16) dlk_short_group_softmax(&sr, x + r * D, y + r * D, e, is_log);
    if (r < r1) {
        float xp[64 * 16], yp[64 * 16];
        dlk_short_pad(xp, x + r * D, r1 - r, D);
        dlk_short_group_softmax(&sr, xp, yp, e, is_log);
        memcpy(y + r * D, yp, (size_t)((r1 - r) * D) * sizeof(float));
    }
}

/* Softmax / log-softmax forward of `rows` short rows. */
static inline void dlk_softmax_short_f32(const float *x, float *y, dlk_idx rows, dlk_idx D,
                                         int is_log, int nthreads) {
    int32_t table[DLK_SHORT_ROW_TABLE];
    dlk_short_rows sr;
    dlk_short_softmax_args a = {x, y, D, is_log, &sr, dlk_pairs_for(D)};
    if (!a.pr) dlk_short_rows_init(&sr, table, D);
    dlk_short_parallel(dlk_short_softmax_task, &a, rows, D, nthreads);
}

/* One group of softmax backward (out = y * (g - sum(g * y))) or log-softmax backward
 * (out = g - exp(y) * sum(g)). log-softmax outputs are <= 0, so the forward's cheap exp
 * applies; a vector holding some y > 0 (an output that did not come from log_softmax)
 * takes the full-range scalar exp, so any input is right. */
static inline void dlk_short_group_backward(const dlk_short_rows *sr, const float *g,
                                            const float *y, float *out, int is_log) {
    dlk_idx D = sr->D;
    if (!is_log) {
        __m512 dot = dlk_short_rows_dot(sr, g, y);
        for (dlk_idx k = 0; k < D; k++) {
            __m512 dk = _mm512_permutexvar_ps(dlk_short_rows_idx(sr, k), dot);
            _mm512_storeu_ps(out + 16 * k, _mm512_mul_ps(_mm512_loadu_ps(y + 16 * k),
                             _mm512_sub_ps(_mm512_loadu_ps(g + 16 * k), dk)));
        }
        return;
    }
    __m512 s = dlk_short_rows_sum(sr, g);
    const __m512 zero = _mm512_setzero_ps();
    for (dlk_idx k = 0; k < D; k++) {
        __m512 sk = _mm512_permutexvar_ps(dlk_short_rows_idx(sr, k), s);
        __m512 yk = _mm512_loadu_ps(y + 16 * k), gk = _mm512_loadu_ps(g + 16 * k);
        if (_mm512_cmp_ps_mask(yk, zero, _CMP_GT_OQ)) {
            float sv[16];
            _mm512_storeu_ps(sv, sk);
            for (int l = 0; l < 16; l++)
                out[16 * k + l] = g[16 * k + l] - dlk_exp_f32(y[16 * k + l]) * sv[l];
            continue;
        }
        _mm512_storeu_ps(out + 16 * k, _mm512_fnmadd_ps(dlk_avx512_expneg_ps(yk), sk, gk));
    }
}

/* ---- softmax / log-softmax backward ---- */

typedef struct {
    const float *g, *y;
    float *out;
    dlk_idx D;
    int is_log;
    const dlk_short_rows *sr;
} dlk_short_backward_args;

static void dlk_short_backward_task(void *ctx, dlk_idx r0, dlk_idx r1) {
    const dlk_short_backward_args *a = (const dlk_short_backward_args *)ctx;
    dlk_short_rows sr = *a->sr;
    const float *g = a->g, *y = a->y;
    float *out = a->out;
    int is_log = a->is_log;
    dlk_idx D = sr.D, r = r0;
    for (; r + 16 <= r1; r += 16)
        dlk_short_group_backward(&sr, g + r * D, y + r * D, out + r * D, is_log);
    if (r < r1) {
        float gp[64 * 16], yp[64 * 16], op[64 * 16];
        dlk_short_pad(gp, g + r * D, r1 - r, D);
        dlk_short_pad(yp, y + r * D, r1 - r, D);
        dlk_short_group_backward(&sr, gp, yp, op, is_log);
        memcpy(out + r * D, op, (size_t)((r1 - r) * D) * sizeof(float));
    }
}

/* Backward of `rows` short rows. */
static inline void dlk_softmax_short_backward_f32(const float *g, const float *y, float *out,
                                                  dlk_idx rows, dlk_idx D, int is_log,
                                                  int nthreads) {
    int32_t table[DLK_SHORT_ROW_TABLE];
    dlk_short_rows sr;
    dlk_short_rows_init(&sr, table, D);
    dlk_short_backward_args a = {g, y, out, D, is_log, &sr};
    dlk_short_parallel(dlk_short_backward_task, &a, rows, D, nthreads);
}

#endif
