/* im2col + GEMM conv2d (see conv2d.h for layout and semantics).
 *
 * Forward, per chunk of samples and per group: the column matrix
 * col (K = C/groups*KH*KW rows, chunk*OH*OW columns) is filled in parallel
 * (OpenMP), then the BLAS computes y_n,g = W_g @ col_n for each sample, straight
 * into the NCHW output. BLAS threads itself and is never called inside an
 * OpenMP region. A 1x1 stride-1 unpadded convolution skips im2col: x already is
 * the column matrix.
 * Backward reuses one buffer: col of x gives grad_W_g += grad_out_n,g @ col_n^T
 * (samples in a fixed order, so deterministic), then the same buffer receives
 * W_g^T @ grad_out_n,g and is scattered back by col2im, one task per input plane.
 *
 * Memory: the column buffer holds at most max_col_bytes (chosen by the caller,
 * dlkern.functional.conv2d's IM2COL_MAX_BYTES), and never less than one sample
 * of one group. Time O(N*OC*OH*OW*(C/groups)*KH*KW) forward, twice that
 * backward, plus O(N*C*KH*KW*OH*OW) for the column fills.
 * Matches dlkern/reference/conv2d.py.
 */
#include <stdlib.h>

#include "conv2d.h"
#include "conv2d_template.h"

#define T float
#define SUF f32
#include "conv2d_im2col_tmpl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "conv2d_im2col_tmpl.h"
#undef T
#undef SUF
