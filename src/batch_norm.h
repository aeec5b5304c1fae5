/* Batch normalization over (N, C, S) data, S = product of the spatial dims
 * (S = 1 for (N, C) input), matching torch.nn.functional.batch_norm and the
 * gradients of torch's native_batch_norm_backward.
 *
 * Layout: x, y, grad_out, grad_x are C-contiguous (N, C, S); every per-channel
 * array (weight, bias, running_mean, running_var, grad_weight, grad_bias) is a
 * contiguous (C,) array of the same dtype. weight / bias may be NULL (ones /
 * zeros); running_mean / running_var may be NULL in training (then they are not
 * updated) and are required in eval mode.
 *
 * Numerics: statistics are accumulated in double for both dtypes, the variance
 * by two passes (mean, then centered squares with the (sum d)^2/M correction),
 * never as E[x^2]-E[x]^2, so a zero-variance channel or values around 1e4 with
 * a tiny spread stay accurate. Exception, as accurate: float32 (N, C) training
 * sums blocks of rows in float32, each centred on its own mean, and merges the
 * blocks in double (batch_norm_blocked_f32.h). The float32 elementwise passes subtract the
 * double mean as a float hi + lo pair, which keeps x - mean accurate to float
 * precision even when the mean itself is not representable in float.
 *
 * Threads: work is split into blocks of whole channels; one thread computes all
 * of a channel's sums in a fixed order, so results are bit-identical for any
 * thread count. Kernels allocate per-thread scratch and return DLK_ENOMEM if
 * that fails (outputs are then unspecified and running stats untouched or
 * partially updated; the caller raises).
 *
 * Cost: training forward reads x once from memory (the second and third pass
 * over a channel block hit L2), writes y once; the training backward reads x
 * and grad_out, writes grad_x; eval forward and backward are one pass.
 */
#ifndef DLK_BATCH_NORM_H
#define DLK_BATCH_NORM_H

#include "dlk_common.h"

/* Training forward: y = (x - mean) / sqrt(var + eps) * weight + bias with the
 * biased batch variance; running stats (if given) updated in place as
 * r = (1 - momentum) * r + momentum * batch_stat, with the unbiased variance.
 * Needs N * S >= 2 (the caller checks). */
int dlk_batch_norm_train_f32(const float *x, dlk_idx N, dlk_idx C, dlk_idx S,
                             const float *weight, const float *bias,
                             float *running_mean, float *running_var,
                             double momentum, double eps, float *y, int nthreads);
int dlk_batch_norm_train_f64(const double *x, dlk_idx N, dlk_idx C, dlk_idx S,
                             const double *weight, const double *bias,
                             double *running_mean, double *running_var,
                             double momentum, double eps, double *y, int nthreads);

/* Eval forward: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias. */
int dlk_batch_norm_eval_f32(const float *x, dlk_idx N, dlk_idx C, dlk_idx S,
                            const float *weight, const float *bias,
                            const float *running_mean, const float *running_var,
                            double eps, float *y, int nthreads);
int dlk_batch_norm_eval_f64(const double *x, dlk_idx N, dlk_idx C, dlk_idx S,
                            const double *weight, const double *bias,
                            const double *running_mean, const double *running_var,
                            double eps, double *y, int nthreads);

/* Backward. training != 0: the batch statistics are recomputed from x and
 *   grad_x = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
 * otherwise (eval) grad_x = dy * w / sqrt(running_var + eps) and xhat uses the
 * running stats. Always grad_weight = sum(dy * xhat), grad_bias = sum(dy) over
 * (N, S) per channel. running_mean / running_var are read only in eval mode. */
int dlk_batch_norm_backward_f32(const float *grad_out, const float *x,
                                dlk_idx N, dlk_idx C, dlk_idx S, const float *weight,
                                const float *running_mean, const float *running_var,
                                int training, double eps, float *grad_x,
                                float *grad_weight, float *grad_bias, int nthreads);
int dlk_batch_norm_backward_f64(const double *grad_out, const double *x,
                                dlk_idx N, dlk_idx C, dlk_idx S, const double *weight,
                                const double *running_mean, const double *running_var,
                                int training, double eps, double *grad_x,
                                double *grad_weight, double *grad_bias, int nthreads);

#endif
