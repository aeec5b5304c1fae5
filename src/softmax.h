/* Softmax, log-softmax and cross-entropy kernels (dlkern.functional.softmax).
 *
 * Layout: the input is C-contiguous and viewed as (outer, D, inner); the softmax runs
 * over D (torch's `dim`). inner == 1 is the common contiguous-rows case; inner > 1 is a
 * middle axis (strided columns). float32 and float64 from one templated body.
 *
 * The log-sum-exp guard: every row is shifted by its maximum before exp (so every term
 * is in [0, 1] and the largest is 1), the sum of exps is accumulated in double, except on
 * the AVX-512 float32 paths: rows of 64 or more sum in float32 lanes folded into double
 * every 1024 elements (relative error of the sum <= ~1.0e-6 for any row length, see
 * softmax_avx512.h); shorter rows go 16 at a time with the sum in float32 (<= 7 roundings,
 * 4.2e-7; even rows up to 10 long in a transposed layout, 2.4e-7, see
 * softmax_pairs_avx512.h) and its log vectorized (< 2 ulp), see softmax_short_avx512.h. Log-softmax is
 * formed as (x - max) - log(sum), so finite logits of any magnitude give finite,
 * accurate results.
 * A +inf or nan in a row makes that whole row nan (its max or its sum is nan/inf - inf);
 * an all -inf row is nan (-inf - -inf), as in PyTorch. Rows never interact.
 *
 * Threads: rows (or column blocks) are split statically across `nthreads`; every row is
 * computed by one thread in a fixed order, so results are bit-identical for any count.
 * Reference: dlkern/reference/softmax.py (torch.nn.functional semantics).
 */
#ifndef DLK_SOFTMAX_H
#define DLK_SOFTMAX_H

#include <stdint.h>
#include "dlk_common.h"

/* y = softmax(x) (log == 0) or log_softmax(x) (log != 0) over D.
 * Returns DLK_OK or DLK_ENOMEM (log_softmax allocates a small per-thread scratch). */
int dlk_softmax_forward_f32(const float *x, float *y, dlk_idx outer, dlk_idx D, dlk_idx inner,
                            int is_log, int nthreads);
int dlk_softmax_forward_f64(const double *x, double *y, dlk_idx outer, dlk_idx D,
                            dlk_idx inner, int is_log, int nthreads);

/* grad_in from grad_out and the forward OUTPUT `out`:
 * softmax: out * (grad_out - sum(grad_out * out)); log_softmax: grad_out - exp(out) * sum(grad_out). */
void dlk_softmax_backward_f32(const float *grad_out, const float *out, float *grad_in,
                              dlk_idx outer, dlk_idx D, dlk_idx inner, int is_log, int nthreads);
void dlk_softmax_backward_f64(const double *grad_out, const double *out, double *grad_in,
                              dlk_idx outer, dlk_idx D, dlk_idx inner, int is_log, int nthreads);

/* Cross-entropy over rows: logits (rows, C) C-contiguous, target (rows,) int64.
 * weight: (C,) or NULL. reduction: 0 none, 1 mean, 2 sum.
 * Forward writes loss[rows] (none) or loss[0] (mean: sum / sum of target weights of
 * non-ignored rows, nan when that is 0/0; sum). Ignored rows have loss 0.
 * Backward writes grad (rows, C) = scale * (softmax * a - (1-eps) w_t onehot - eps/C w),
 * a = (1-eps) w_t + eps/C sum(w), scale = grad_out (none: grad_out[row]; mean: divided
 * by the total weight); ignored rows get softmax * 0 (0, or nan for a non-finite row, as
 * PyTorch's log_softmax backward gives).
 * Both validate the targets: *bad is set to the flat index of the first target outside
 * [0, C) that is not ignore_index, or -1; when it is set, the output is unspecified (the
 * backward computes nothing; the float32 short-row forward validates within its pass and
 * may have written per-row losses, but never loss[0] of a reduced loss). */
int dlk_cross_entropy_forward_f32(const float *logits, const int64_t *target, const float *weight,
                                  dlk_idx rows, dlk_idx C, int64_t ignore_index,
                                  double label_smoothing, int reduction, float *loss,
                                  dlk_idx *bad, int nthreads);
int dlk_cross_entropy_forward_f64(const double *logits, const int64_t *target,
                                  const double *weight, dlk_idx rows, dlk_idx C,
                                  int64_t ignore_index, double label_smoothing, int reduction,
                                  double *loss, dlk_idx *bad, int nthreads);
int dlk_cross_entropy_backward_f32(const float *logits, const int64_t *target,
                                   const float *weight, dlk_idx rows, dlk_idx C,
                                   int64_t ignore_index, double label_smoothing, int reduction,
                                   const float *grad_out, double grad_out_scalar, float *grad,
                                   dlk_idx *bad, int nthreads);
int dlk_cross_entropy_backward_f64(const double *logits, const int64_t *target,
                                   const double *weight, dlk_idx rows, dlk_idx C,
                                   int64_t ignore_index, double label_smoothing, int reduction,
                                   const double *grad_out, double grad_out_scalar, double *grad,
                                   dlk_idx *bad, int nthreads);

#endif
