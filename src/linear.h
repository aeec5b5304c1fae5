/* linear (fully connected) forward and backward over dlkern's GEMM (gemm.h).
 *
 * Layout (C-contiguous): x (M, n_in), weight (n_out, n_in), bias (n_out,),
 * out / grad_out (M, n_out);
 * M is the product of x's leading dimensions. out = x @ weight^T + bias, as
 * torch.nn.functional.linear and dlkern/reference/linear.py. Cost: 2*M*n_in*n_out flops per
 * GEMM (one forward, two backward).
 *
 * Threads: dlk_gemm parallelizes each GEMM over a fixed tiling of its output and
 * never splits a sum, and grad_bias sums in a fixed order, so results are
 * bit-identical for any nthreads. Return DLK_OK or DLK_ENOMEM.
 */
#ifndef DLK_LINEAR_H
#define DLK_LINEAR_H

#include "dlk_common.h"

/* bias may be NULL. */
int dlk_linear_forward_f32(const float *x, const float *weight, const float *bias, float *out,
                           dlk_idx M, dlk_idx n_in, dlk_idx n_out, int nthreads);
int dlk_linear_forward_f64(const double *x, const double *weight, const double *bias,
                           double *out, dlk_idx M, dlk_idx n_in, dlk_idx n_out, int nthreads);

/* grad_x (M, n_in), grad_weight (n_out, n_in), grad_bias (n_out,): all written. */
int dlk_linear_backward_f32(const float *grad_out, const float *x, const float *weight,
                            float *grad_x, float *grad_weight, float *grad_bias, dlk_idx M,
                            dlk_idx n_in, dlk_idx n_out, int nthreads);
int dlk_linear_backward_f64(const double *grad_out, const double *x, const double *weight,
                            double *grad_x, double *grad_weight, double *grad_bias, dlk_idx M,
                            dlk_idx n_in, dlk_idx n_out, int nthreads);

#endif
