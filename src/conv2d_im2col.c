/* im2col + GEMM conv2d (see conv2d.h for layout and semantics).
 *
 * Forward, per chunk of samples and per group: the column matrix
 * col (K = C/groups*KH*KW rows, chunk*OH*OW columns) is filled (on the calling
 * thread, see FILL_THREADS), then the BLAS computes y_n,g = W_g @ col_n for each sample, straight
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

/* The column fill, col2im and bias passes run on the calling thread only.
 * Measured on the 2-core target: alternating OpenMP regions with multithreaded
 * BLAS calls costs far more than the parallel fill saves, because each pool's
 * idle workers keep spinning on the cores the other pool needs (ResNet 3x3
 * forward: ~38 GFLOP/s with a 2-thread fill vs ~150 with a serial fill into a
 * cache-sized chunk). The BLAS still uses every thread for the GEMMs, which
 * carry almost all the work; nthreads reaches the BLAS through
 * dlkern.set_num_threads (threadpoolctl). */
#define FILL_THREADS 1

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
