/* Cross-entropy of float32 rows shorter than 64 classes with AVX-512: the 16-rows-at-a-
 * time machinery of softmax_short_avx512.h (see there for the layout and numerics) with
 * the per-row loss and gradient scale in vector lanes too. Why: for (4096, 10) logits a
 * scalar log and a double division per row cost several times the exps.
 * Every row is computed by the same instructions (a short last group goes through a
 * padded copy), so results do not depend on blocking or thread count. */
#ifndef DLK_CROSS_ENTROPY_SHORT_AVX512_H
#define DLK_CROSS_ENTROPY_SHORT_AVX512_H

#include <stdint.h>
#include <string.h>
#include "softmax_short_avx512.h"

/* Per-row loss of one group of 16 rows (x: 16*C logits, t: 16 targets):
 * loss = (1 - eps) w_t ((max - x_t) + log(sum)), plus, when eps > 0,
 * eps/C (sum_c w_c (max - x_c) + W log(sum)) (as cross_entropy_body.h, the smoothing
 * term per row in double); ignored rows 0. Writes 16 doubles to rl. */
static inline void dlk_ce_short_group_loss(const dlk_short_rows *sr, const float *x,
                                           const int64_t *t, const float *weight,
                                           int64_t ignore_index, double eps, double W,
                                           float *e, double *rl) {
    dlk_idx C = sr->D;
    __m512 m, s;
    dlk_short_group_exp(sr, x, e, &m, &s);
    __m512 lg = dlk_avx512_log_ps(s);
    /* targets: 16 int64 -> lanes; ignored rows read class 0 and are zeroed below */
    __m512i t0 = _mm512_loadu_si512((const void *)t), t1 = _mm512_loadu_si512((const void *)(t + 8));
    const __m512i ii = _mm512_set1_epi64(ignore_index);
    __mmask16 keep = (__mmask16)(_mm512_cmpneq_epi64_mask(t0, ii) |
                                 ((unsigned)_mm512_cmpneq_epi64_mask(t1, ii) << 8));
    __m512i tc = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(t0)),
                                    _mm512_cvtepi64_epi32(t1), 1);
    tc = _mm512_maskz_mov_epi32(keep, tc);
    const __m512i rowoff = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)C));
    __m512 xt = _mm512_i32gather_ps(_mm512_add_epi32(rowoff, tc), x, 4);
    __m512 wt = weight ? _mm512_i32gather_ps(tc, weight, 4) : _mm512_set1_ps(1.0f);
    __m512 nll = _mm512_add_ps(_mm512_sub_ps(m, xt), lg);
    __m512 l = _mm512_maskz_mul_ps(keep, _mm512_mul_ps(wt, _mm512_set1_ps((float)(1.0 - eps))), nll);
    _mm512_storeu_pd(rl, _mm512_cvtps_pd(_mm512_castps512_ps256(l)));
    _mm512_storeu_pd(rl + 8, _mm512_cvtps_pd(_mm256_castpd_ps(
                                 _mm512_extractf64x4_pd(_mm512_castps_pd(l), 1))));
    if (eps > 0.0) {
        float mv[16], lv[16];
        _mm512_storeu_ps(mv, m);
        _mm512_storeu_ps(lv, lg);
        for (int r = 0; r < 16; r++) {
            if (!((keep >> r) & 1)) continue;
            const float *xr = x + r * C;
            double mr = (double)mv[r], sm = 0.0;
            if (weight)
                for (dlk_idx c = 0; c < C; c++) sm += (double)weight[c] * (mr - (double)xr[c]);
            else
                for (dlk_idx c = 0; c < C; c++) sm += mr - (double)xr[c];
            rl[r] += eps / (double)C * (sm + W * (double)lv[r]);
        }
    }
}

/* Per-row losses rl[0, rows) of rows at x (targets t). */
static inline void dlk_ce_short_loss(const dlk_short_rows *sr, const float *x, const int64_t *t,
                                     dlk_idx rows, const float *weight, int64_t ignore_index,
                                     double eps, double W, double *rl) {
    float e[64 * 16];
    dlk_idx C = sr->D, r = 0;
    for (; r + 16 <= rows; r += 16)
        dlk_ce_short_group_loss(sr, x + r * C, t + r, weight, ignore_index, eps, W, e, rl + r);
    if (r < rows) {
        float xp[64 * 16];
        int64_t tp[16];
        double lp[16];
        dlk_idx nr = rows - r;
        size_t n = (size_t)(nr * C);
        memcpy(xp, x + r * C, n * sizeof(float));
        memset(xp + n, 0, (size_t)(16 * C) * sizeof(float) - n * sizeof(float));
        for (int i = 0; i < 16; i++) tp[i] = i < nr ? t[r + i] : ignore_index;
        dlk_ce_short_group_loss(sr, xp, tp, weight, ignore_index, eps, W, e, lp);
        memcpy(rl + r, lp, (size_t)nr * sizeof(double));
    }
}

/* Gradient of one group: grad = softmax * k - (1 - eps) w_t scale onehot - u w, with
 * k = scale_r a_r (numerator per row, num[r]) and the per-element smoothing term u w_c
 * (u = scale_r eps/C) when eps > 0. num and cor (the one-hot correction per row) come
 * from the caller; ignored rows have num 0 (softmax * 0: 0, or nan for a non-finite
 * row) and no correction. */
static inline void dlk_ce_short_group_grad(const dlk_short_rows *sr, const float *x,
                                           float *grad, const int64_t *t, const float *num,
                                           const float *cor, const double *u,
                                           const float *weight, int64_t ignore_index) {
    dlk_idx C = sr->D;
    __m512 m, s;
    dlk_short_group_exp(sr, x, grad, &m, &s);
    __m512 k = _mm512_div_ps(_mm512_loadu_ps(num), s);
    for (dlk_idx j = 0; j < C; j++) {
        __m512 kj = _mm512_permutexvar_ps(dlk_short_rows_idx(sr, j), k);
        _mm512_storeu_ps(grad + 16 * j, _mm512_mul_ps(_mm512_loadu_ps(grad + 16 * j), kj));
    }
    for (int r = 0; r < 16; r++) {
        if (t[r] == ignore_index) continue;
        float *gr = grad + r * C;
        if (u[r] != 0.0) {
            if (weight) {
                for (dlk_idx c = 0; c < C; c++) gr[c] -= (float)(u[r] * (double)weight[c]);
            } else {
                float ut = (float)u[r];
                for (dlk_idx c = 0; c < C; c++) gr[c] -= ut;
            }
        }
        gr[t[r]] -= cor[r];
    }
}

/* Rows per task of the drivers below: whole groups, so only the array's last group is
 * padded. The split of tasks over threads never changes a row's instructions. */
#define DLK_CE_SHORT_TASK 128

/* Forward: per-row losses rl[0, rows) (ignored rows 0). */
static inline void dlk_ce_short_forward_f32(const float *x, const int64_t *target,
                                            const float *weight, dlk_idx rows, dlk_idx C,
                                            int64_t ignore_index, double eps, double W,
                                            double *rl, int nthreads) {
    dlk_idx ntasks = (rows + DLK_CE_SHORT_TASK - 1) / DLK_CE_SHORT_TASK;
    if (rows * C < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        dlk_short_rows sr;
        dlk_short_rows_init(&sr, C);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx k = 0; k < ntasks; k++) {
            dlk_idx r0 = k * DLK_CE_SHORT_TASK;
            dlk_ce_short_loss(&sr, x + r0 * C, target + r0, DLK_MIN(DLK_CE_SHORT_TASK, rows - r0),
                              weight, ignore_index, eps, W, rl + r0);
        }
    }
}

/* Backward: grad (rows, C); scale per row = grad_out[row] (reduction none) or base. */
static inline void dlk_ce_short_backward_f32(const float *x, const int64_t *target,
                                             const float *weight, dlk_idx rows, dlk_idx C,
                                             int64_t ignore_index, double eps, double W,
                                             const float *grad_out, double base, float *grad,
                                             int nthreads) {
    dlk_idx ntasks = (rows + DLK_CE_SHORT_TASK - 1) / DLK_CE_SHORT_TASK;
    if (rows * C < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        dlk_short_rows sr;
        dlk_short_rows_init(&sr, C);
        /* per-row factors without a division in the row loop */
        const double keep_w = 1.0 - eps, eps_c = eps / (double)C, smooth = eps_c * W;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx k = 0; k < ntasks; k++) {
            dlk_idx r0 = k * DLK_CE_SHORT_TASK, r1 = DLK_MIN(r0 + DLK_CE_SHORT_TASK, rows);
            for (dlk_idx g = r0; g < r1; g += 16) {
                dlk_idx nr = DLK_MIN((dlk_idx)16, r1 - g);
                float num[16], cor[16];
                double u[16];
                int64_t tp[16];
                for (int r = 0; r < 16; r++) {
                    int64_t t = r < nr ? target[g + r] : ignore_index;
                    tp[r] = t;
                    num[r] = cor[r] = 0.0f;
                    u[r] = 0.0;
                    if (t == ignore_index) continue;
                    double scale = grad_out ? (double)grad_out[g + r] : base;
                    double wt = weight ? (double)weight[t] : 1.0;
                    num[r] = (float)(scale * (keep_w * wt + smooth));
                    cor[r] = (float)(scale * keep_w * wt);
                    u[r] = scale * eps_c;
                }
                if (nr == 16) {
                    dlk_ce_short_group_grad(&sr, x + g * C, grad + g * C, tp, num, cor, u,
                                            weight, ignore_index);
                } else {
                    float xp[64 * 16], gp[64 * 16];
                    size_t n = (size_t)(nr * C);
                    memcpy(xp, x + g * C, n * sizeof(float));
                    memset(xp + n, 0, (size_t)(16 * C) * sizeof(float) - n * sizeof(float));
                    dlk_ce_short_group_grad(&sr, xp, gp, tp, num, cor, u, weight, ignore_index);
                    memcpy(grad + g * C, gp, n * sizeof(float));
                }
            }
        }
    }
}

#endif
