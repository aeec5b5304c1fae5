/* linear (fully connected) forward and backward over BLAS GEMM.
 *
 * Layout (C-contiguous): x (M, n_in), weight (n_out, n_in), bias (n_out,),
 * out / grad_out (M, n_out);
 * M is the product of x's leading dimensions. out = x @ weight^T + bias, as
 * torch.nn.functional.linear and dlkern/reference/linear.py. Cost: 2*M*n_in*n_out flops per
 * GEMM (one forward, two backward).
 *
 * Threads: each GEMM is cut into fixed tiles of its output (independent of nthreads)
 * and the tiles are spread over nthreads OpenMP threads, each calling BLAS. The CALLER
 * MUST LIMIT BLAS TO ONE THREAD for the call (the binding does, with threadpoolctl):
 * OpenBLAS rounds differently depending on how its own threads split a matrix, so
 * only one-thread GEMMs of thread-count-independent shapes give results that are
 * bit-identical for any nthreads. Return DLK_OK or DLK_ENOMEM. M, n_in, n_out must fit in int.
 */
#ifndef DLK_LINEAR_H
#define DLK_LINEAR_H

#include "dlk_blas.h"
#include "dlk_common.h"

/* bias may be NULL. */
int dlk_linear_forward_f32(const dlk_blas *blas, const float *x, const float *weight,
                           const float *bias, float *out, dlk_idx M, dlk_idx n_in, dlk_idx n_out,
                           int nthreads);
int dlk_linear_forward_f64(const dlk_blas *blas, const double *x, const double *weight,
                           const double *bias, double *out, dlk_idx M, dlk_idx n_in, dlk_idx n_out,
                           int nthreads);

/* grad_x (M, n_in), grad_weight (n_out, n_in), grad_bias (n_out,): all written. */
int dlk_linear_backward_f32(const dlk_blas *blas, const float *grad_out, const float *x,
                            const float *weight, float *grad_x, float *grad_weight,
                            float *grad_bias, dlk_idx M, dlk_idx n_in, dlk_idx n_out,
                            int nthreads);
int dlk_linear_backward_f64(const dlk_blas *blas, const double *grad_out, const double *x,
                            const double *weight, double *grad_x, double *grad_weight,
                            double *grad_bias, dlk_idx M, dlk_idx n_in, dlk_idx n_out,
                            int nthreads);

#endif
