/* conv2d kernels: NCHW cross-correlation (torch.nn.functional.conv2d semantics).
 *
 * Layout: x (N, C, H, W), weight (OC, C/groups, KH, KW), y (N, OC, OH, OW), all
 * C-contiguous. Output pixel (oh, ow) reads input row ih = oh*stride_h - pad_h +
 * kh*dil_h and column iw = ow*stride_w - pad_w + kw*dil_w; taps outside [0, H) x
 * [0, W) read zero. pad_h / pad_w are the top / left padding; the bottom / right
 * padding is implied by OH / OW, which the caller computes, so asymmetric padding
 * (padding="same" with an even effective kernel) needs nothing special here.
 *
 * Two algorithms with identical semantics (reference: dlkern/reference/conv2d.py):
 *   direct  (conv2d_direct.c)  C loops; the forward copies each (sample, group)
 *           into zero-padded planes and accumulates register tiles of up to 8
 *           output channels x 32 columns, SIMD over output columns (depthwise
 *           3x3 at stride 1: row-sliding tiles, conv2d_depthwise_tmpl.h). Backward:
 *           grad_x as a stride-1 forward of grad_out with the flipped kernel
 *           (scatter-add otherwise), grad_weight vectorized dot products.
 *   im2col  (conv2d_im2col.c)  GEMMs over the column matrix on dlkern's own
 *           packed micro-kernel (tiles sized per ISA level), the column
 *           matrix packed straight from x (never stored whole); grad_x on the same engine (per input
 *           phase when strided); grad_weight as shifted dot products over
 *           phase-split padded planes.
 * dlkern.functional.conv2d's algo="auto" documents which one runs when.
 * Both cost O(N * OC * OH * OW * C/groups * KH * KW) multiply-adds forward and
 * twice that backward.
 *
 * Determinism: every output element (y, grad_x, grad_weight, grad_bias) is
 * produced by exactly one thread in a fixed order, so results do not depend on
 * the thread count. No conv2d kernel calls the BLAS.
 */
#ifndef DLK_CONV2D_H
#define DLK_CONV2D_H

#include <stddef.h>

#include "dlk_common.h"

typedef struct {
    dlk_idx N, C, H, W;      /* input */
    dlk_idx OC, KH, KW;      /* weight is (OC, C / groups, KH, KW) */
    dlk_idx OH, OW;          /* output */
    dlk_idx groups;
    dlk_idx stride_h, stride_w;
    dlk_idx pad_h, pad_w;    /* top, left */
    dlk_idx dil_h, dil_w;
} dlk_conv2d_geom;

/* Range [*lo, *hi) of output positions o in [0, n_out) whose input position
 * o * stride + off lies in [0, n_in), where off = k * dilation - pad. Used by
 * every kernel to keep reads and writes inside the unpadded input. */
static inline void dlk_conv2d_valid_range(dlk_idx n_out, dlk_idx n_in, dlk_idx stride,
                                          dlk_idx off, dlk_idx *lo, dlk_idx *hi) {
    dlk_idx l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    dlk_idx h = (n_in - 1 - off) < 0 ? 0 : (n_in - 1 - off) / stride + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Which gradients a backward call computes (bitmask): grad_x, grad_weight,
 * grad_bias (its own pass over grad_out, so asking for it alone costs no
 * grad_weight). Arrays not requested are left untouched, so a caller can take
 * each gradient from the algorithm that is fastest for it. */
enum {
    DLK_CONV2D_GRAD_X = 1,
    DLK_CONV2D_GRAD_W = 2,
    DLK_CONV2D_GRAD_B = 4,
    DLK_CONV2D_GRAD_ALL = 7
};

/* Direct algorithm. bias may be NULL. Forward returns DLK_OK or DLK_ENOMEM. */
int dlk_conv2d_direct_forward_f32(const dlk_conv2d_geom *g, const float *x,
                                   const float *weight, const float *bias, float *y,
                                   int nthreads);
int dlk_conv2d_direct_forward_f64(const dlk_conv2d_geom *g, const double *x,
                                   const double *weight, const double *bias, double *y,
                                   int nthreads);
/* grad_x (N,C,H,W), grad_weight (OC,C/groups,KH,KW), grad_bias (OC) are
 * overwritten. Returns DLK_OK or DLK_ENOMEM. */
int dlk_conv2d_direct_backward_f32(const dlk_conv2d_geom *g, const float *grad_out,
                                    const float *x, const float *weight, float *grad_x,
                                    float *grad_weight, float *grad_bias, int parts,
                                    int nthreads);
int dlk_conv2d_direct_backward_f64(const dlk_conv2d_geom *g, const double *grad_out,
                                    const double *x, const double *weight, double *grad_x,
                                    double *grad_weight, double *grad_bias, int parts,
                                    int nthreads);

/* im2col: GEMMs over the column matrix on dlkern's packed micro-kernel
 * (conv2d_im2col.c), the column matrix packed on the fly. bias may be NULL.
 * max_col_bytes bounds grad_weight's per-chunk copies of x (at least one group
 * of samples reduced together, 4 to 16 by the shape; results do not depend on
 * it). Return DLK_OK or DLK_ENOMEM. */
int dlk_conv2d_im2col_forward_f32(const dlk_conv2d_geom *g, const float *x,
                                  const float *weight, const float *bias, float *y,
                                  int nthreads);
int dlk_conv2d_im2col_forward_f64(const dlk_conv2d_geom *g, const double *x,
                                  const double *weight, const double *bias, double *y,
                                  int nthreads);
int dlk_conv2d_im2col_backward_f32(const dlk_conv2d_geom *g, const float *grad_out,
                                   const float *x, const float *weight, float *grad_x,
                                   float *grad_weight, float *grad_bias, int parts,
                                   size_t max_col_bytes, int nthreads);
int dlk_conv2d_im2col_backward_f64(const dlk_conv2d_geom *g, const double *grad_out,
                                   const double *x, const double *weight, double *grad_x,
                                   double *grad_weight, double *grad_bias, int parts,
                                   size_t max_col_bytes, int nthreads);

/* Shared by both algorithms (conv2d_bias.c): y[n, oc, :, :] += bias[oc], and
 * grad_bias[oc] = sum over n, oh, ow of grad_out, in a fixed order. */
void dlk_conv2d_add_bias_f32(const dlk_conv2d_geom *g, const float *bias, float *y,
                             int nthreads);
void dlk_conv2d_add_bias_f64(const dlk_conv2d_geom *g, const double *bias, double *y,
                             int nthreads);
void dlk_conv2d_bias_grad_f32(const dlk_conv2d_geom *g, const float *grad_out,
                              float *grad_bias, int nthreads);
void dlk_conv2d_bias_grad_f64(const dlk_conv2d_geom *g, const double *grad_out,
                              double *grad_bias, int nthreads);

#endif
