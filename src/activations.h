/* Elementwise activations and dropout: forward and backward over flat C-contiguous arrays.
 *
 * Layout: every array is a flat run of n elements (the binding flattens any rank);
 * prelu additionally sees x as (N, C, S) with the weight along C (S = product of the
 * trailing dims; C = 1 for a shared weight). Complexity O(n), one pass, memory-bound
 * except for the exp/log1p-based ones (sigmoid, tanh, elu, softplus), which use the
 * branch-free vectorizable exp/expm1/log1p in activations.c (a few ulp, verified by
 * tests/test_activations.py against NumPy/glibc).
 *
 * Matches dlkern/reference/activations.py and dropout.py (and torch.nn.functional):
 * gradients at exactly 0 and at NaN follow torch's autograd (see each op below).
 * Threads: fixed-size blocks, elementwise, so results never depend on the thread
 * count; prelu's weight gradient reduces per (n, c) row, then per channel in a fixed
 * order.
 */
#ifndef DLK_ACTIVATIONS_H
#define DLK_ACTIVATIONS_H

#include <stdint.h>

#include "dlk_common.h"

/* Elementwise ops selected by dlk_act_forward / dlk_act_backward. a and b are the
 * op's parameters (converted to the array dtype, as torch does). */
enum {
    DLK_ACT_RELU = 0,       /* y = x < 0 ? 0 : x (NaN passes)   dy = x <= 0 ? 0 : g   */
    DLK_ACT_LEAKY_RELU = 1, /* a = negative_slope: y = x > 0 ? x : a*x; dy = x > 0 ? g : a*g */
    DLK_ACT_ELU = 2,        /* a = alpha: y = x > 0 ? x : a*expm1(x); dy = x > 0 ? g : g*a*exp(x) */
    DLK_ACT_SIGMOID = 3,    /* backward takes the forward OUTPUT y: dy = g*(1-y)*y */
    DLK_ACT_TANH = 4,       /* backward takes the forward OUTPUT y: dy = g*(1-y*y) */
    DLK_ACT_SOFTPLUS = 5    /* a = beta, b = threshold: y = beta*x > b ? x : log1p(exp(beta*x))/beta;
                               dy = beta*x > b ? g : g*sigmoid(beta*x) */
};

/* Return DLK_OK, or -1 for an unknown op (the binding never passes one). */
int dlk_act_forward_f32(int op, const float *x, float *y, dlk_idx n, double a, double b,
                        int nthreads);
int dlk_act_forward_f64(int op, const double *x, double *y, dlk_idx n, double a, double b,
                        int nthreads);
/* xy is x for every op except sigmoid and tanh, where it is the forward output. */
int dlk_act_backward_f32(int op, const float *g, const float *xy, float *gx, dlk_idx n,
                         double a, double b, int nthreads);
int dlk_act_backward_f64(int op, const double *g, const double *xy, double *gx, dlk_idx n,
                         double a, double b, int nthreads);

/* prelu on x viewed as (N, C, S), w of length C: y = x > 0 ? x : w[c]*x. */
void dlk_prelu_forward_f32(const float *x, const float *w, float *y, dlk_idx N, dlk_idx C,
                           dlk_idx S, int nthreads);
void dlk_prelu_forward_f64(const double *x, const double *w, double *y, dlk_idx N, dlk_idx C,
                           dlk_idx S, int nthreads);
/* gx = x > 0 ? g : w[c]*g;  gw[c] = sum over n, s of (x > 0 ? 0 : x*g), accumulated in
 * double per (n, c) row, then rows summed in order n = 0..N-1. Returns DLK_ENOMEM if the
 * N*C row buffer cannot be allocated. */
int dlk_prelu_backward_f32(const float *g, const float *x, const float *w, float *gx, float *gw,
                           dlk_idx N, dlk_idx C, dlk_idx S, int nthreads);
int dlk_prelu_backward_f64(const double *g, const double *x, const double *w, double *gx,
                           double *gw, dlk_idx N, dlk_idx C, dlk_idx S, int nthreads);

/* rrelu in training: slope holds per-element slopes already drawn in [lower, upper]
 * (by NumPy, so the C path and the reference share them). x <= 0 (torch's test) takes
 * the slope: y = x*slope, noise = slope; otherwise y = x, noise = 1. */
void dlk_rrelu_train_f32(const float *x, const float *slope, float *y, float *noise, dlk_idx n,
                         int nthreads);
void dlk_rrelu_train_f64(const double *x, const double *slope, double *y, double *noise,
                         dlk_idx n, int nthreads);

/* Inverted dropout from uniform 32-bit integers drawn by NumPy (the raw output of its
 * bit generator): keep = bits >= threshold (threshold = round(p * 2^32)),
 * y = keep ? x*scale : 0, mask = keep (0/1 bytes, NumPy bool). */
void dlk_dropout_f32(const float *x, const uint32_t *bits, uint32_t threshold, float scale,
                     float *y, unsigned char *mask, dlk_idx n, int nthreads);
void dlk_dropout_f64(const double *x, const uint32_t *bits, uint32_t threshold, double scale,
                     double *y, unsigned char *mask, dlk_idx n, int nthreads);
/* gx = mask ? g*scale : 0 */
void dlk_dropout_backward_f32(const float *g, const unsigned char *mask, float scale, float *gx,
                              dlk_idx n, int nthreads);
void dlk_dropout_backward_f64(const double *g, const unsigned char *mask, double scale,
                              double *gx, dlk_idx n, int nthreads);

#endif
