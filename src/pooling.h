/* 2-D pooling kernels: max, average and adaptive average, forward and backward.
 *
 * Layout: NCHW, C-contiguous; a batch is treated as P = N*C independent H x W
 * planes, which is also the unit of parallelism (OpenMP over planes), so every
 * output element is computed by exactly one thread in a fixed order and results
 * are bit-identical for any thread count.
 *
 * Semantics match PyTorch's CPU kernels (torch.nn.functional.max_pool2d,
 * avg_pool2d, adaptive_avg_pool2d and their backward); the geometry (output size
 * with ceil_mode, argument checks) is computed in Python (dlkern/_args/pooling.py)
 * and passed in the shape struct.
 */
#ifndef DLK_POOLING_H
#define DLK_POOLING_H

#include <stdint.h>

#include "dlk_common.h"

/* Geometry of one pooling call. oh/ow come from the Python side (ceil_mode is
 * folded into them). Window (i, j) covers input rows i*sh - ph + a*dh for
 * a in [0, kh) and columns j*sw - pw + b*dw for b in [0, kw). */
typedef struct {
    dlk_idx planes;      /* N * C */
    dlk_idx h, w;        /* input plane */
    dlk_idx oh, ow;      /* output plane */
    dlk_idx kh, kw;      /* kernel */
    dlk_idx sh, sw;      /* stride */
    dlk_idx ph, pw;      /* padding (implicit -inf for max, zeros for avg) */
    dlk_idx dh, dw;      /* dilation (always 1 for avg) */
} dlk_pool2d_shape;

/* max_pool2d forward. indices (nullable): int64 flat index into the H*W plane of
 * the maximum, as PyTorch returns it. Padding is -inf; the first maximum in
 * row-major window order wins; a NaN in the window is the maximum (the last NaN
 * wins, as in PyTorch). Uses one padded copy of a plane per thread as scratch
 * (none when no padding is needed; two rows for 3x3/2 padding 1 on even planes,
 * which are read in place): returns DLK_ENOMEM if it cannot be allocated. */
int dlk_max_pool2d_f32(const dlk_pool2d_shape *s, const float *x, float *out,
                       int64_t *indices, int nthreads);
int dlk_max_pool2d_f64(const dlk_pool2d_shape *s, const double *x, double *out,
                       int64_t *indices, int nthreads);

/* max_pool2d backward through saved indices: grad_x = scatter-add of grad_out.
 * Indices outside [0, H*W) (PyTorch's marker for a window lying wholly in the
 * padding, whose output is -inf) contribute nothing. O(P*H*W + P*OH*OW). On 3x3/2
 * padding 1 even planes and tiling 2x2/2 rows of whole vectors, planes whose
 * indices all name a tap of their own window are written once from registers;
 * the former take a row of scratch per thread (DLK_ENOMEM if it cannot be
 * allocated). */
int dlk_max_pool2d_backward_indices_f32(const dlk_pool2d_shape *s, const float *grad_out,
                                        const int64_t *indices, float *grad_x, int nthreads);
int dlk_max_pool2d_backward_indices_f64(const dlk_pool2d_shape *s, const double *grad_out,
                                        const int64_t *indices, double *grad_x, int nthreads);

/* max_pool2d backward recomputing the argmax from x (same ties as the forward).
 * Same scratch as the forward: returns DLK_ENOMEM if it cannot be allocated. */
int dlk_max_pool2d_backward_f32(const dlk_pool2d_shape *s, const float *grad_out,
                                const float *x, float *grad_x, int nthreads);
int dlk_max_pool2d_backward_f64(const dlk_pool2d_shape *s, const double *grad_out,
                                const double *x, double *grad_x, int nthreads);

/* avg_pool2d forward and backward. divisor_override <= 0 means none. The divisor
 * is PyTorch's: with count_include_pad, the window clipped to the padded extent
 * [-p, H + p) (so cells that only ceil_mode added are not counted); without it,
 * the window clipped to the input. Forward uses a zero-padded copy of a plane per
 * thread, backward a row (DLK_ENOMEM if the scratch cannot be allocated); 3x3/2
 * padding 1 on even planes reads x in place and writes grad_x once, with two rows
 * of scratch for the backward. */
int dlk_avg_pool2d_f32(const dlk_pool2d_shape *s, const float *x, float *out,
                       int count_include_pad, dlk_idx divisor_override, int nthreads);
int dlk_avg_pool2d_f64(const dlk_pool2d_shape *s, const double *x, double *out,
                       int count_include_pad, dlk_idx divisor_override, int nthreads);
int dlk_avg_pool2d_backward_f32(const dlk_pool2d_shape *s, const float *grad_out,
                                float *grad_x, int count_include_pad,
                                dlk_idx divisor_override, int nthreads);
int dlk_avg_pool2d_backward_f64(const dlk_pool2d_shape *s, const double *grad_out,
                                double *grad_x, int count_include_pad,
                                dlk_idx divisor_override, int nthreads);

/* adaptive_avg_pool2d: output cell (i, j) averages rows [floor(i*H/OH),
 * ceil((i+1)*H/OH)) and the analogous columns (PyTorch's windows; they overlap
 * when OH does not divide H). Only s->planes, h, w, oh, ow are read. */
void dlk_adaptive_avg_pool2d_f32(const dlk_pool2d_shape *s, const float *x, float *out,
                                 int nthreads);
void dlk_adaptive_avg_pool2d_f64(const dlk_pool2d_shape *s, const double *x, double *out,
                                 int nthreads);
void dlk_adaptive_avg_pool2d_backward_f32(const dlk_pool2d_shape *s, const float *grad_out,
                                          float *grad_x, int nthreads);
void dlk_adaptive_avg_pool2d_backward_f64(const dlk_pool2d_shape *s, const double *grad_out,
                                          double *grad_x, int nthreads);

#endif
