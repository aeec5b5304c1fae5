/* linear over dlkern's GEMM: see linear.h for layouts, math and threads.
 *
 *   forward     out    (M, n_out)    = x (M, n_in) @ weight^T  (+ bias: prefilled, beta 1)
 *   backward    grad_x (M, n_in)     = grad_out (M, n_out) @ weight (n_out, n_in)
 *               grad_w (n_out, n_in) = grad_out^T (n_out, M) @ x (M, n_in)
 *               grad_b (n_out)    = column sums of grad_out
 * dlk_gemm packs the transposed operands itself, so each product is one call; it
 * spreads the call over threads (or not, below its own work threshold) without
 * changing a bit of the result.
 *
 * The bias: prefilling the output rows and running the GEMM with beta = 1 costs one
 * write of the output before the GEMM, where NumPy's `out += bias` after it is an
 * extra read and write. grad_b sums rows in a double accumulator, column block by
 * column block: fixed order, any thread count, and more accurate than a float32
 * running sum.
 *
 * float and double come from one body: this file includes itself twice.
 */
#ifndef DLK_LIN_BODY
#include <stdlib.h>

#include "gemm.h"
#include "linear.h"

#define DLK_LIN_BODY
/* Columns per grad_bias task (the double accumulator lives on the stack). */
#define DLK_LIN_BIAS_COLS 512
/* Below this many elements the bias fill and grad_bias stay on one thread: a parallel
 * region costs a few us on an idle machine and much more on a busy one. Serial or
 * parallel, every sum has the same order: results do not change. */
#define DLK_LIN_PARALLEL_ELEMS 262144.0
#define DLK_CAT_(a, b) a##_##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)
#define SFX(name) DLK_CAT(name, SUFFIX)

#define T float
#define SUFFIX f32
#define GEMM dlk_gemm_f32
#include "linear.c"
#undef T
#undef SUFFIX
#undef GEMM

#define T double
#define SUFFIX f64
#define GEMM dlk_gemm_f64
#include "linear.c"
#undef T
#undef SUFFIX
#undef GEMM

#else /* DLK_LIN_BODY: the templated body */

int SFX(dlk_linear_forward)(const T *x, const T *weight, const T *bias, T *out, dlk_idx M,
                            dlk_idx n_in, dlk_idx n_out, int nthreads) {
    if (bias) {
        dlk_idx i;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) \
    if (M > 1 && (double)M * n_out >= DLK_LIN_PARALLEL_ELEMS)
#endif
        for (i = 0; i < M; i++)
            for (dlk_idx j = 0; j < n_out; j++) out[i * n_out + j] = bias[j];
    }
    return GEMM(0, 1, M, n_out, n_in, 1, x, n_in, weight, n_in, bias ? 1 : 0, out, n_out,
                nthreads);
}

int SFX(dlk_linear_backward)(const T *grad_out, const T *x, const T *weight, T *grad_x,
                             T *grad_weight, T *grad_bias, dlk_idx M, dlk_idx n_in,
                             dlk_idx n_out, int nthreads) {
    int status = GEMM(0, 0, M, n_in, n_out, 1, grad_out, n_out, weight, n_in, 0, grad_x, n_in,
                      nthreads);
    if (status != DLK_OK) return status;
    status = GEMM(1, 0, n_out, n_in, M, 1, grad_out, n_out, x, n_in, 0, grad_weight, n_in,
                  nthreads);
    if (status != DLK_OK) return status;
    dlk_idx blocks = (n_out + DLK_LIN_BIAS_COLS - 1) / DLK_LIN_BIAS_COLS, blk;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) \
    if (blocks > 1 && (double)M * n_out >= DLK_LIN_PARALLEL_ELEMS)
#endif
    for (blk = 0; blk < blocks; blk++) {
        double acc[DLK_LIN_BIAS_COLS];
        dlk_idx j0 = blk * DLK_LIN_BIAS_COLS, nj = DLK_MIN(DLK_LIN_BIAS_COLS, n_out - j0);
        for (dlk_idx j = 0; j < nj; j++) acc[j] = 0;
        for (dlk_idx i = 0; i < M; i++) { /* row by row: contiguous, vectorizable */
            const T *row = grad_out + i * n_out + j0;
            for (dlk_idx j = 0; j < nj; j++) acc[j] += row[j];
        }
        for (dlk_idx j = 0; j < nj; j++) grad_bias[j0 + j] = (T)acc[j];
    }
    return DLK_OK;
}

#endif /* DLK_LIN_BODY */
