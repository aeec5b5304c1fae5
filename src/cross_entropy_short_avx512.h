/* Cross-entropy of float32 rows shorter than 64 classes with AVX-512: the 16-rows-at-a-
 * time machinery of softmax_short_avx512.h (see there for the layout and numerics; even
 * C <= DLK_PAIRS_MAX_D goes through the pair layout of softmax_pairs_avx512.h) with the
 * per-row loss and gradient factors in vector lanes too. Why: for (4096, 10) logits a
 * scalar log and a double division per row cost several times the exps.
 * Every row is computed by the same instructions (a short last group goes through a
 * padded copy), so results do not depend on blocking or thread count. */
#ifndef DLK_CROSS_ENTROPY_SHORT_AVX512_H
#define DLK_CROSS_ENTROPY_SHORT_AVX512_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "softmax_short_avx512.h"

/* A group's 16 targets: lanes to keep (target != ignore_index), lanes whose target is out
 * of [0, C) (bad), and the targets as int32 with 0 in the other lanes (a safe index). */
static inline __m512i dlk_ce_short_targets(const int64_t *t, int64_t ignore_index, dlk_idx C,
                                           __mmask16 *keep, __mmask16 *bad) {
    __m512i t0 = _mm512_loadu_si512((const void *)t), t1 = _mm512_loadu_si512((const void *)(t + 8));
    const __m512i ii = _mm512_set1_epi64(ignore_index), nc = _mm512_set1_epi64((int64_t)C);
    __mmask16 k = (__mmask16)(_mm512_cmpneq_epi64_mask(t0, ii) |
                              ((unsigned)_mm512_cmpneq_epi64_mask(t1, ii) << 8));
    /* unsigned t < C is 0 <= t < C */
    __mmask16 in = (__mmask16)(_mm512_cmplt_epu64_mask(t0, nc) |
                               ((unsigned)_mm512_cmplt_epu64_mask(t1, nc) << 8));
    *keep = k;
    *bad = (__mmask16)(k & ~in);
    __m512i tc = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(t0)),
                                    _mm512_cvtepi64_epi32(t1), 1);
    return _mm512_maskz_mov_epi32((__mmask16)(k & in), tc);
}

/* What every task of a call shares. */
typedef struct {
    const float *x;
    const int64_t *target;
    const float *weight;    /* (C,) or NULL */
    dlk_idx C;
    int64_t ignore_index;
    double eps, W;          /* label smoothing, sum of the class weights */
    const dlk_short_rows *sr;
    const dlk_pairs *pr;    /* pair layout, or NULL */
    /* forward */
    float *loss_rows;       /* per-row losses (reduction none), or NULL */
    double *part;           /* per task: sum of the losses, sum of the target weights */
    dlk_idx *first_bad;     /* per task: first bad flat index, or -1 */
    /* backward */
    const float *grad_out;  /* (rows,) for reduction none, or NULL */
    double base;            /* the scale of every row otherwise */
    float *grad;
    const float (*wcol)[16];  /* pair layout: class weight of each lane of pair vector j */
} dlk_ce_short_args;

/* The first half of a group's loss: targets checked, rows' maxima and sums of exps (the
 * pair layout when V > 0, a constant, else the generic path with e as scratch). */
typedef struct {
    const float *x;
    __m512 m, s;
    __m512i tc;
    __mmask16 keep, bad;
} dlk_ce_short_stage;

static inline __attribute__((always_inline)) void
dlk_ce_short_group_stats(const dlk_ce_short_args *a, const dlk_short_rows *sr, const float *x,
                         const int64_t *t, float *e, dlk_ce_short_stage *st, const int V) {
    st->x = x;
    st->tc = dlk_ce_short_targets(t, a->ignore_index, a->C, &st->keep, &st->bad);
    if (V)
        dlk_pairs_group_stats(a->pr, x, &st->m, &st->s, V);
    else
        dlk_short_group_exp(sr, x, e, &st->m, &st->s);
}

/* The second half: per-row losses of the group (16 rows, those past the array's end
 * padded with ignore_index): loss = (1 - eps) w_t ((max - x_t) + log(sum)), plus, when
 * eps > 0, eps/C (sum_c w_c (max - x_c) + W log(sum)) (the smoothing term per row in
 * double, as cross_entropy_body.h); ignored rows 0. Writes 16 doubles to rl; valid: the
 * rows that count (kept, target in range), wt_out their target weights. */
static inline void dlk_ce_short_group_loss(const dlk_ce_short_args *a, const dlk_ce_short_stage *st,
                                           double *rl, __mmask16 *valid, __m512 *wt_out) {
    dlk_idx C = a->C;
    const float *x = st->x;
    __mmask16 keep = st->keep;
    __m512 lg = dlk_avx512_log_ps(st->s);
    const __m512i rowoff = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)C));
    __m512 xt = _mm512_i32gather_ps(_mm512_add_epi32(rowoff, st->tc), x, 4);
    __m512 wt = a->weight ? _mm512_i32gather_ps(st->tc, a->weight, 4) : _mm512_set1_ps(1.0f);
    *valid = (__mmask16)(keep & ~st->bad);
    *wt_out = wt;
    __m512 nll = _mm512_add_ps(_mm512_sub_ps(st->m, xt), lg);
    __m512 l = _mm512_maskz_mul_ps(keep, _mm512_mul_ps(wt, _mm512_set1_ps((float)(1.0 - a->eps))), nll);
    _mm512_storeu_pd(rl, _mm512_cvtps_pd(_mm512_castps512_ps256(l)));
    _mm512_storeu_pd(rl + 8, _mm512_cvtps_pd(_mm256_castpd_ps(
                                 _mm512_extractf64x4_pd(_mm512_castps_pd(l), 1))));
    if (a->eps > 0.0) {
        float mv[16], lv[16];
        _mm512_storeu_ps(mv, st->m);
        _mm512_storeu_ps(lv, lg);
        for (int r = 0; r < 16; r++) {
            if (!((keep >> r) & 1)) continue;
            const float *xr = x + r * C;
            double mr = (double)mv[r], sm = 0.0;
            if (a->weight)
                for (dlk_idx c = 0; c < C; c++) sm += (double)a->weight[c] * (mr - (double)xr[c]);
            else
                for (dlk_idx c = 0; c < C; c++) sm += mr - (double)xr[c];
            rl[r] += a->eps / (double)C * (sm + a->W * (double)lv[r]);
        }
    }
}

/* The logits (rows of C) and targets of the group at row g of a task ending at r1: in
 * place, or for the array's last group, if partial, a copy padded with ignored rows
 * (xp, tp). */
static inline __attribute__((always_inline)) void
dlk_ce_short_group_at(const dlk_ce_short_args *a, dlk_idx C, dlk_idx g, dlk_idx r1, float *xp,
                      int64_t *tp, const float **xg, const int64_t **tg) {
    dlk_idx nr = DLK_MIN((dlk_idx)16, r1 - g);
    *xg = a->x + g * C;
    *tg = a->target + g;
    if (nr < 16) {
        dlk_short_pad(xp, *xg, nr, C);
        for (int i = 0; i < 16; i++) tp[i] = i < nr ? (*tg)[i] : a->ignore_index;
        *xg = xp;
        *tg = tp;
    }
}

/* The first half for the group at row g of a task ending at r1. */
static inline __attribute__((always_inline)) void
dlk_ce_short_stats_at(const dlk_ce_short_args *a, const dlk_short_rows *sr, dlk_idx g,
                      dlk_idx r1, float *xp, int64_t *tp, float *e, dlk_ce_short_stage *st,
                      const int V) {
    const float *xg;
    const int64_t *tg;
    dlk_ce_short_group_at(a, a->C, g, r1, xp, tp, &xg, &tg);
    dlk_ce_short_group_stats(a, sr, xg, tg, e, st, V);
}

/* A group's valid rows (lane r = row r) join the weight total: their class weights
 * into the two double accumulators, or their count when there are no weights. */
static inline __attribute__((always_inline)) void
dlk_ce_short_tally(__mmask16 valid, __m512 wt, int weighted, __m512d *w0, __m512d *w1,
                   int64_t *count) {
    if (weighted) {
        __m512 wv = _mm512_maskz_mov_ps(valid, wt);
        *w0 = _mm512_add_pd(*w0, _mm512_cvtps_pd(_mm512_castps512_ps256(wv)));
        *w1 = _mm512_add_pd(*w1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                     _mm512_extractf64x4_pd(_mm512_castps_pd(wv), 1))));
    } else {
        *count += __builtin_popcount(valid);
    }
}

/* A task's loss and weight partial sums, their 16 lanes added in lane order: one order
 * for every row layout, so results do not depend on which loop ran. */
static inline void dlk_ce_short_store_part(const dlk_ce_short_args *a, dlk_idx task,
                                           __m512d acc0, __m512d acc1, __m512d w0,
                                           __m512d w1, int64_t count, int weighted) {
    double lv[16], wv[16], s = 0.0, w = 0.0;
    _mm512_storeu_pd(lv, acc0);
    _mm512_storeu_pd(lv + 8, acc1);
    _mm512_storeu_pd(wv, w0);
    _mm512_storeu_pd(wv + 8, w1);
    for (int l = 0; l < 16; l++) {
        s += lv[l];
        w += wv[l];
    }
    a->part[2 * task] = s;
    a->part[2 * task + 1] = weighted ? w : (double)count;
}

/* Forward task: rows [r0, r1) validated and their losses computed; per-row losses to
 * loss_rows, or their sum (and the sum of the target weights, the mean's denominator)
 * to this task's part, each added in a fixed order (16 lanes, then the lanes in order):
 * thread-count independent. Software-pipelined: the next group's exps are issued before
 * this group's log and loss, whose dependent chain would otherwise stall (measured
 * 10% on the loss pass). The array's last group, if partial, is a padded copy. */
static inline __attribute__((always_inline)) void
dlk_ce_short_forward_rows(const dlk_ce_short_args *a, const dlk_short_rows *sr, dlk_idx r0,
                          dlk_idx r1, const int V) {
    float e[64 * 16], xp[64 * 16];
    int64_t tp[16];
    double rl[16];
    dlk_idx task = r0 / DLK_SHORT_TASK, first_bad = -1;
    int64_t count = 0;
    __m512d acc0 = _mm512_setzero_pd(), acc1 = acc0, w0 = acc0, w1 = acc0;
    dlk_ce_short_stage cur, next;
    dlk_ce_short_stats_at(a, sr, r0, r1, xp, tp, e, &cur, V);
    next = cur; /* (defined when the last iteration copies it) */
    for (dlk_idx g = r0; g < r1; g += 16) {
        dlk_idx nr = DLK_MIN((dlk_idx)16, r1 - g);
        if (g + 16 < r1) dlk_ce_short_stats_at(a, sr, g + 16, r1, xp, tp, e, &next, V);
        __mmask16 valid;
        __m512 wt;
        dlk_ce_short_group_loss(a, &cur, rl, &valid, &wt);
        if (cur.bad && first_bad < 0) first_bad = g + __builtin_ctz(cur.bad);
        cur = next;
        if (a->loss_rows) {
            for (dlk_idx i = 0; i < nr; i++) a->loss_rows[g + i] = (float)rl[i];
            continue;
        }
        acc0 = _mm512_add_pd(acc0, _mm512_loadu_pd(rl)); /* padded rows add 0 */
        acc1 = _mm512_add_pd(acc1, _mm512_loadu_pd(rl + 8));
        dlk_ce_short_tally(valid, wt, a->weight != NULL, &w0, &w1, &count);
    }
    a->first_bad[task] = first_bad;
    if (!a->loss_rows)
        dlk_ce_short_store_part(a, task, acc0, acc1, w0, w1, count, a->weight != NULL);
}

/* Per-row factors of one group's gradient (lane r = row r), computed in double as the
 * generic path does: num = scale ((1 - eps) w_t + eps/C W), cor = scale (1 - eps) w_t
 * (subtracted at the target's column), u = scale eps/C (times w_c, subtracted from every
 * column); ignored rows 0, their tc -1 (no column). scale = grad_out[row] or base. */
static inline void dlk_ce_short_factors(const dlk_ce_short_args *a, const int64_t *t,
                                        const float *grad_out, dlk_idx nr, __m512 *num,
                                        __m512 *cor, double *u, __m512i *tcol) {
    __mmask16 keep, bad;
    __m512i tc = dlk_ce_short_targets(t, a->ignore_index, a->C, &keep, &bad);
    __m512 wt = a->weight ? _mm512_i32gather_ps(tc, a->weight, 4) : _mm512_set1_ps(1.0f);
    __m512 sc = grad_out ? _mm512_maskz_loadu_ps((__mmask16)((1u << nr) - 1u), grad_out)
                         : _mm512_setzero_ps();
    const __m512d keep_w = _mm512_set1_pd(1.0 - a->eps), eps_c = _mm512_set1_pd(a->eps / (double)a->C);
    const __m512d smooth = _mm512_mul_pd(eps_c, _mm512_set1_pd(a->W));
    __m256 nh[2], ch[2];
    for (int h = 0; h < 2; h++) {
        __m256 w8 = h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(wt), 1))
                      : _mm512_castps512_ps256(wt);
        __m256 s8 = h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sc), 1))
                      : _mm512_castps512_ps256(sc);
        __m512d w = _mm512_cvtps_pd(w8);
        __m512d scale = grad_out ? _mm512_cvtps_pd(s8) : _mm512_set1_pd(a->base);
        __mmask8 k8 = (__mmask8)(keep >> (8 * h));
        nh[h] = _mm512_cvtpd_ps(_mm512_maskz_mul_pd(k8, scale, _mm512_fmadd_pd(keep_w, w, smooth)));
        ch[h] = _mm512_cvtpd_ps(_mm512_maskz_mul_pd(k8, _mm512_mul_pd(scale, keep_w), w));
        _mm512_storeu_pd(u + 8 * h, _mm512_maskz_mul_pd(k8, scale, eps_c));
    }
    *num = _mm512_insertf32x8(_mm512_castps256_ps512(nh[0]), nh[1], 1);
    *cor = _mm512_insertf32x8(_mm512_castps256_ps512(ch[0]), ch[1], 1);
    *tcol = _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), keep, tc);
}

/* Gradient of one group, generic path: grad = softmax * num/sum - u w - cor onehot (the
 * one-hot and smoothing terms per row, scalar). */
static inline void dlk_ce_short_group_grad(const dlk_ce_short_args *a, const dlk_short_rows *sr,
                                           const float *x, float *grad, __m512 num, __m512 cor,
                                           const double *u, __m512i tcol) {
    dlk_idx C = sr->D;
    __m512 m, s;
    dlk_short_group_exp(sr, x, grad, &m, &s);
    __m512 k = _mm512_div_ps(num, s);
    for (dlk_idx j = 0; j < C; j++) {
        __m512 kj = _mm512_permutexvar_ps(dlk_short_rows_idx(sr, j), k);
        _mm512_storeu_ps(grad + 16 * j, _mm512_mul_ps(_mm512_loadu_ps(grad + 16 * j), kj));
    }
    float cv[16];
    int32_t tv[16];
    _mm512_storeu_ps(cv, cor);
    _mm512_storeu_si512((void *)tv, tcol);
    for (int r = 0; r < 16; r++) {
        if (tv[r] < 0) continue;
        float *gr = grad + r * C;
        if (u[r] != 0.0) {
            if (a->weight) {
                for (dlk_idx c = 0; c < C; c++) gr[c] -= (float)(u[r] * (double)a->weight[c]);
            } else {
                float ut = (float)u[r];
                for (dlk_idx c = 0; c < C; c++) gr[c] -= ut;
            }
        }
        gr[tv[r]] -= cv[r];
    }
}

static inline __attribute__((always_inline)) void
dlk_ce_short_grad_one(const dlk_ce_short_args *a, const dlk_short_rows *sr, const float *x,
                      float *grad, const int64_t *t, const float *grad_out, dlk_idx nr,
                      const int V) {
    __m512 num, cor;
    __m512i tcol;
    double u[16];
    dlk_ce_short_factors(a, t, grad_out, nr, &num, &cor, u, &tcol);
    if (!V) {
        dlk_ce_short_group_grad(a, sr, x, grad, num, cor, u, tcol);
        return;
    }
    __m512 uf = _mm512_setzero_ps();
    if (a->eps > 0.0)
        uf = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_loadu_pd(u))),
                                _mm512_cvtpd_ps(_mm512_loadu_pd(u + 8)), 1);
    dlk_pairs_group_ce_grad(a->pr, x, grad, num, cor, tcol, a->eps > 0.0, uf, a->wcol, V);
}

static inline __attribute__((always_inline)) void
dlk_ce_short_backward_rows(const dlk_ce_short_args *a, const dlk_short_rows *sr, dlk_idx r0,
                           dlk_idx r1, const int V) {
    dlk_idx C = a->C;
    for (dlk_idx g = r0; g < r1; g += 16) {
        dlk_idx nr = DLK_MIN((dlk_idx)16, r1 - g);
        const float *go = a->grad_out ? a->grad_out + g : NULL;
        if (nr == 16) {
            dlk_ce_short_grad_one(a, sr, a->x + g * C, a->grad + g * C, a->target + g, go, 16, V);
        } else {
            float xp[64 * 16], gp[64 * 16];
            int64_t tp[16];
            dlk_short_pad(xp, a->x + g * C, nr, C);
            for (int i = 0; i < 16; i++) tp[i] = i < nr ? a->target[g + i] : a->ignore_index;
            dlk_ce_short_grad_one(a, sr, xp, gp, tp, go, nr, V);
            memcpy(a->grad + g * C, gp, (size_t)(nr * C) * sizeof(float));
        }
    }
}

/* the pair layout's loss without label smoothing (uses dlk_ce_short_args and
 * dlk_ce_short_targets above) */
#include "cross_entropy_pairs_avx512.h"

static inline __attribute__((always_inline)) void
dlk_ce_short_rows(const dlk_ce_short_args *a, const dlk_short_rows *sr, dlk_idx r0, dlk_idx r1,
                  const int V) {
    if (a->grad)
        dlk_ce_short_backward_rows(a, sr, r0, r1, V);
    else if (V && a->eps == 0.0)
        dlk_ce_pairs_forward_rows(a, r0, r1, V);
    else
        dlk_ce_short_forward_rows(a, sr, r0, r1, V);
}

/* One task of either pass (the backward when a->grad is set): a private copy of the
 * arguments (see dlk_short_rows), then the code for this D. */
static void dlk_ce_short_task(void *ctx, dlk_idx r0, dlk_idx r1) {
    dlk_ce_short_args a = *(const dlk_ce_short_args *)ctx;
    if (a.pr) {
#define DLK_CALL(V) dlk_ce_short_rows(&a, NULL, r0, r1, V)
        DLK_PAIRS_DISPATCH(a.pr->V, DLK_CALL)
#undef DLK_CALL
    } else {
        dlk_short_rows sr = *a.sr;
        dlk_ce_short_rows(&a, &sr, r0, r1, 0);
    }
}

/* The arguments both passes share; the generic path's row table goes to table. */
static inline void dlk_ce_short_setup(dlk_ce_short_args *a, dlk_short_rows *sr, int32_t *table,
                                      const float *x, const int64_t *target,
                                      const float *weight, dlk_idx C, int64_t ignore_index,
                                      double eps, double W) {
    memset(a, 0, sizeof *a);
    a->x = x;
    a->target = target;
    a->weight = weight;
    a->C = C;
    a->ignore_index = ignore_index;
    a->eps = eps;
    a->W = W;
    a->sr = sr;
    a->pr = dlk_pairs_for(C);
    if (!a->pr) dlk_short_rows_init(sr, table, C);
}

/* Forward: validates the targets (*bad = first flat index out of [0, C) that is not
 * ignore_index, or -1; then nothing is written to loss[0] and loss[0, rows) is
 * unspecified), computes the per-row losses (reduction 0, to loss[0, rows)) or their
 * mean (1, over the sum of the target weights: nan when that is 0/0, as PyTorch) or sum
 * (2, to loss[0]). The task totals are added in task order. */
static inline int dlk_ce_short_forward_f32(const float *x, const int64_t *target,
                                           const float *weight, dlk_idx rows, dlk_idx C,
                                           int64_t ignore_index, double eps, double W,
                                           int reduction, float *loss, dlk_idx *bad,
                                           int nthreads) {
    dlk_idx ntasks = (rows + DLK_SHORT_TASK - 1) / DLK_SHORT_TASK;
    /* per task: two partial sums and the first bad index (one block) */
    void *block = malloc((size_t)(ntasks > 0 ? ntasks : 1) * (2 * sizeof(double) + sizeof(dlk_idx)));
    if (!block) return DLK_ENOMEM;
    int32_t table[DLK_SHORT_ROW_TABLE];
    dlk_short_rows sr;
    dlk_ce_short_args a;
    dlk_ce_short_setup(&a, &sr, table, x, target, weight, C, ignore_index, eps, W);
    a.loss_rows = reduction == 0 ? loss : NULL;
    a.part = (double *)block;
    a.first_bad = (dlk_idx *)(a.part + 2 * ntasks);
    dlk_short_parallel(dlk_ce_short_task, &a, rows, C, nthreads);
    *bad = -1;
    double total = 0.0, wsum = 0.0;
    for (dlk_idx k = 0; k < ntasks; k++) {
        if (a.first_bad[k] >= 0) {
            *bad = a.first_bad[k];
            break;
        }
        if (reduction != 0) {
            total += a.part[2 * k];
            wsum += a.part[2 * k + 1];
        }
    }
    if (*bad < 0 && reduction != 0) loss[0] = (float)(reduction == 1 ? total / wsum : total);
    free(block);
    return DLK_OK;
}

/* Backward (targets already validated): grad (rows, C); scale per row = grad_out[row]
 * (reduction none) or base. */
static inline void dlk_ce_short_backward_f32(const float *x, const int64_t *target,
                                             const float *weight, dlk_idx rows, dlk_idx C,
                                             int64_t ignore_index, double eps, double W,
                                             const float *grad_out, double base, float *grad,
                                             int nthreads) {
    int32_t table[DLK_SHORT_ROW_TABLE];
    float wcol[DLK_PAIRS_MAX_V][16];
    dlk_short_rows sr;
    dlk_ce_short_args a;
    dlk_ce_short_setup(&a, &sr, table, x, target, weight, C, ignore_index, eps, W);
    a.grad_out = grad_out;
    a.base = base;
    a.grad = grad;
    if (a.pr) {
        for (int j = 0; j < a.pr->V; j++) /* pair vector j: classes 2j (lanes 0-7), 2j+1 */
            for (int l = 0; l < 16; l++) wcol[j][l] = weight ? weight[2 * j + l / 8] : 1.0f;
        a.wcol = (const float (*)[16])wcol;
    }
    dlk_short_parallel(dlk_ce_short_task, &a, rows, C, nthreads);
}

#endif
