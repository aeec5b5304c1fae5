/* Templated body of src/cross_entropy.c (T, SFX, EXPNEG, LANES as in softmax_body.h).
 *
 * Layout: logits (rows, C) C-contiguous, target (rows,) int64 (the binding moves the class
 * axis of (N, C, d1, ...) logits last). Per row, with w = weight (1 without) and
 * W = sum(w), eps = label_smoothing, lse = max + log(sum exp(z - max)):
 *   loss = (1 - eps) * w_t * (lse - z_t) + eps / C * sum_c w_c * (lse - z_c)
 * which is PyTorch's cross_entropy with label smoothing (nll on log_softmax plus the
 * smoothing term, both zero for ignored rows). The terms lse - z_c are formed as
 * (max - z_c) + log(sum), all >= 0, in double, so there is no cancellation for huge logits.
 * Complexity O(rows * C); rows are split in static blocks over threads; per-row losses
 * are reduced serially in row order (thread-count independent).
 * Reference: dlkern/reference/softmax.py cross_entropy / cross_entropy_backward.
 */
#include "softmax_rows.h"
#ifdef DLK_SOFTMAX_FUSED_F32
#include "cross_entropy_short_avx512.h"
#endif

/* Validate targets (first bad flat index to *bad) and return the total target weight of
 * the non-ignored rows (PyTorch's mean denominator). */
static double SFX(ce_scan_targets)(const int64_t *target, const T *weight, dlk_idx rows,
                                   dlk_idx C, int64_t ignore_index, dlk_idx *bad) {
    /* First a branch-free integer pass (a flag and a count: a serial double sum was ~6 us
     * for 4096 rows), the weights summed in four fixed accumulators; the first bad index
     * is searched only when there is one. Fixed order: thread-count independent. */
    int64_t any_bad = 0, count = 0;
    for (dlk_idx i = 0; i < rows; i++) { /* integer only: gcc vectorizes it */
        int64_t t = target[i];
        int64_t keep = t != ignore_index;
        any_bad |= keep & ((uint64_t)t >= (uint64_t)C);
        count += keep;
    }
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    if (weight && !any_bad)
        for (dlk_idx i = 0; i < rows; i++)
            if (target[i] != ignore_index) acc[i & 3] += (double)weight[target[i]];
    *bad = -1;
    if (any_bad) {
        for (dlk_idx i = 0; i < rows; i++) {
            int64_t t = target[i];
            if (t != ignore_index && (t < 0 || t >= (int64_t)C)) {
                *bad = i;
                return 0.0;
            }
        }
    }
    return weight ? (acc[0] + acc[1]) + (acc[2] + acc[3]) : (double)count;
}

/* Sum of the per-row losses in a fixed order: eight accumulators by row index (a
 * serial chain of double adds was ~5 us for 4096 rows). */
static double SFX(ce_total)(const double *rl, dlk_idx rows) {
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    dlk_idx i = 0;
    for (; i + 8 <= rows; i += 8) /* lane-wise: gcc vectorizes without reassociating */
        for (int l = 0; l < 8; l++) acc[l] += rl[i + l];
    for (; i < rows; i++) acc[i & 7] += rl[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

int SFX(dlk_cross_entropy_forward)(const T *logits, const int64_t *target, const T *weight,
                                   dlk_idx rows, dlk_idx C, int64_t ignore_index,
                                   double label_smoothing, int reduction, T *loss,
                                   dlk_idx *bad, int nthreads) {
    double eps = label_smoothing;
    double W = 0.0;
    for (dlk_idx c = 0; c < C; c++) W += weight ? (double)weight[c] : 1.0;
#ifdef DLK_SOFTMAX_FUSED_F32
    if (sizeof(T) == sizeof(float) && C < DLK_SOFTMAX_FUSE_D) /* cross_entropy_short_avx512.h: */
        return dlk_ce_short_forward_f32((const float *)logits, target, (const float *)weight,
                                        rows, C, ignore_index, eps, W, reduction, (float *)loss,
                                        bad, nthreads); /* validates the targets in its pass */
#endif
    double wsum = SFX(ce_scan_targets)(target, weight, rows, C, ignore_index, bad);
    if (*bad >= 0) return DLK_OK;
    double *rl = (double *)malloc((size_t)(rows > 0 ? rows : 1) * sizeof(double));
    if (!rl) return DLK_ENOMEM;
    dlk_idx br = SFX(block_rows)(C);
    dlk_idx nblocks = (rows + br - 1) / br;
    int status = DLK_OK;
    if (rows * C < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        T m[DLK_SOFTMAX_BLOCK_ELEMS];
        double s[DLK_SOFTMAX_BLOCK_ELEMS];
        /* the loss needs only the sums of exps: long float32 rows (AVX-512) sum them
         * without storing them; others need a scratch block */
        int sum_only = SFX(exp_sum_only)(C);
        dlk_idx cap = sum_only ? 1 : br * C;
        T *e = (T *)malloc((size_t)(cap > 0 ? cap : 1) * sizeof(T));
        if (!e) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            status = DLK_ENOMEM;
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx b = 0; b < nblocks; b++) {
            if (!e) continue;
            dlk_idx r0 = b * br;
            dlk_idx nr = DLK_MIN(br, rows - r0);
            const T *xb = logits + r0 * C;
            SFX(rows_shifted_exp)(xb, nr, C, m, sum_only ? NULL : e, s);
            for (dlk_idx r = 0; r < nr; r++) {
                int64_t t = target[r0 + r];
                if (t == ignore_index) {
                    rl[r0 + r] = 0.0;
                    continue;
                }
                const T *xr = xb + r * C;
                double mr = (double)m[r];
                double lg = log(s[r]);
                double wt = weight ? (double)weight[t] : 1.0;
                double l = (1.0 - eps) * wt * ((mr - (double)xr[t]) + lg);
                if (eps > 0.0) {
                    double sm = 0.0;
                    if (weight)
                        for (dlk_idx c = 0; c < C; c++) sm += (double)weight[c] * (mr - (double)xr[c]);
                    else
                        for (dlk_idx c = 0; c < C; c++) sm += mr - (double)xr[c];
                    l += eps / (double)C * (sm + W * lg);
                }
                rl[r0 + r] = l;
            }
        }
        free(e);
    }
    if (status == DLK_OK) {
        if (reduction == 0) {
            for (dlk_idx i = 0; i < rows; i++) loss[i] = (T)rl[i];
        } else {
            double total = SFX(ce_total)(rl, rows);
            /* mean over zero total weight is 0/0 = nan, as in PyTorch */
            loss[0] = (T)(reduction == 1 ? total / wsum : total);
        }
    }
    free(rl);
    return status;
}

int SFX(dlk_cross_entropy_backward)(const T *logits, const int64_t *target, const T *weight,
                                    dlk_idx rows, dlk_idx C, int64_t ignore_index,
                                    double label_smoothing, int reduction, const T *grad_out,
                                    double grad_out_scalar, T *grad, dlk_idx *bad,
                                    int nthreads) {
    double wsum = SFX(ce_scan_targets)(target, weight, rows, C, ignore_index, bad);
    if (*bad >= 0) return DLK_OK;
    double eps = label_smoothing;
    double W = 0.0;
    for (dlk_idx c = 0; c < C; c++) W += weight ? (double)weight[c] : 1.0;
    double base = reduction == 1 ? grad_out_scalar / wsum : grad_out_scalar;
#ifdef DLK_SOFTMAX_FUSED_F32
    if (sizeof(T) == sizeof(float) && C < DLK_SOFTMAX_FUSE_D) { /* cross_entropy_short_avx512.h */
        dlk_ce_short_backward_f32((const float *)logits, target, (const float *)weight, rows, C,
                                  ignore_index, eps, W, reduction == 0 ? (const float *)grad_out
                                                                       : NULL,
                                  base, (float *)grad, nthreads);
        return DLK_OK;
    }
#endif
    dlk_idx br = SFX(block_rows)(C);
    dlk_idx nblocks = (rows + br - 1) / br;
    if (rows * C < DLK_SOFTMAX_SERIAL_ELEMS) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (dlk_idx b = 0; b < nblocks; b++) {
        T m[DLK_SOFTMAX_BLOCK_ELEMS];
        double sums[DLK_SOFTMAX_BLOCK_ELEMS];
        dlk_idx r0 = b * br;
        dlk_idx nr = DLK_MIN(br, rows - r0);
        T *gb = grad + r0 * C;
        /* the exps go straight into grad, then each row is scaled and corrected */
        SFX(rows_shifted_exp)(logits + r0 * C, nr, C, m, gb, sums);
        for (dlk_idx r = 0; r < nr; r++) {
            T *gr = gb + r * C;
            int64_t t = target[r0 + r];
            double s = sums[r];
            if (t == ignore_index) {
                /* 0 * softmax: zero, or nan for a non-finite row (PyTorch's behaviour) */
                T k = (T)(0.0 / s);
                for (dlk_idx c = 0; c < C; c++) gr[c] *= k;
                continue;
            }
            double scale = reduction == 0 ? (double)grad_out[r0 + r] : base;
            double wt = weight ? (double)weight[t] : 1.0;
            double a = (1.0 - eps) * wt + eps / (double)C * W;
            T k = (T)(scale * a / s);
            if (eps > 0.0) {
                double u = scale * eps / (double)C;
                if (weight) {
                    for (dlk_idx c = 0; c < C; c++)
                        gr[c] = gr[c] * k - (T)(u * (double)weight[c]);
                } else {
                    T ut = (T)u;
                    for (dlk_idx c = 0; c < C; c++) gr[c] = gr[c] * k - ut;
                }
            } else {
                for (dlk_idx c = 0; c < C; c++) gr[c] *= k;
            }
            gr[t] -= (T)(scale * (1.0 - eps) * wt);
        }
    }
    return DLK_OK;
}
