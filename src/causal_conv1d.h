/* Dilated causal conv1d (the TCN building block), forward and backward, over
 * dlkern's GEMM (gemm.h).
 *
 * Layout (all C-contiguous): x (N, C_in, L), weight (C_out, C_in, k), bias (C_out,),
 * out / grad_out (N, C_out, L). Tap j reads x shifted right by s_j = (k-1-j)*dilation:
 *   out[n, o, t] = bias[o] + sum_{c, j : t >= s_j} weight[o, c, j] * x[n, c, t - s_j]
 * which is torch.nn.functional.conv1d on x left-padded by (k-1)*dilation, and
 * dlkern/reference/causal_conv1d.py. Cost: 2*N*C_out*C_in*k*L flops per pass
 * (forward; grad_x and grad_weight each cost the same), one implicit GEMM with all k
 * taps stacked in its inner dimension per (sample, 1024-step time block) and pass.
 *
 * Threads: (sample, time block) tasks (and, for grad_weight and grad_bias, a fixed
 * number of task chunks with their own partial sums, added in order) are spread over
 * nthreads OpenMP threads, each running one-thread GEMMs, so results are bit-identical
 * for any nthreads.
 * Return DLK_OK or DLK_ENOMEM.
 */
#ifndef DLK_CAUSAL_CONV1D_H
#define DLK_CAUSAL_CONV1D_H

#include "dlk_common.h"

/* bias may be NULL. */
int dlk_causal_conv1d_forward_f32(const float *x, const float *weight,
                                  const float *bias, float *out, dlk_idx N, dlk_idx C_in,
                                  dlk_idx L, dlk_idx C_out, dlk_idx k, dlk_idx dilation,
                                  int nthreads);
int dlk_causal_conv1d_forward_f64(const double *x, const double *weight,
                                  const double *bias, double *out, dlk_idx N, dlk_idx C_in,
                                  dlk_idx L, dlk_idx C_out, dlk_idx k, dlk_idx dilation,
                                  int nthreads);

/* Bits of the backward's parts argument (torch's convolution_backward output_mask):
 * which gradients to compute. A gradient whose bit is clear is not computed (its work
 * is skipped, not thrown away) and its pointer may be NULL. */
#define DLK_CC1D_GRAD_X 1
#define DLK_CC1D_GRAD_W 2
#define DLK_CC1D_GRAD_B 4
#define DLK_CC1D_GRAD_ALL 7

/* grad_x (N, C_in, L), grad_weight (C_out, C_in, k), grad_bias (C_out,): each written
 * in full when its bit is set in parts. */
int dlk_causal_conv1d_backward_f32(const float *grad_out, const float *x,
                                   const float *weight, float *grad_x, float *grad_weight,
                                   float *grad_bias, dlk_idx N, dlk_idx C_in, dlk_idx L,
                                   dlk_idx C_out, dlk_idx k, dlk_idx dilation, int parts,
                                   int nthreads);
int dlk_causal_conv1d_backward_f64(const double *grad_out,
                                   const double *x, const double *weight, double *grad_x,
                                   double *grad_weight, double *grad_bias, dlk_idx N,
                                   dlk_idx C_in, dlk_idx L, dlk_idx C_out, dlk_idx k,
                                   dlk_idx dilation, int parts, int nthreads);

#endif
