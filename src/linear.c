/* linear over BLAS GEMM: see linear.h for layouts, math and the threading contract.
 *
 *   forward     out    (M, n_out)    = x (M, n_in) @ weight^T  (+ bias: prefilled, beta 1)
 *   backward    grad_x (M, n_in)     = grad_out (M, n_out) @ weight (n_out, n_in)
 *               grad_w (n_out, n_in) = grad_out^T (n_out, M) @ x (M, n_in)
 *               grad_b (n_out)    = column sums of grad_out
 * Every GEMM output is cut into fixed DLK_LIN_TILE_M x DLK_LIN_TILE_N tiles; a tile
 * is one single-threaded GEMM over the full inner dimension, so no reduction is ever
 * split and the tiles can run on any thread in any order.
 *
 * The bias: prefilling the output rows and running GEMM with beta = 1 costs one write
 * of the output, which is what beta = 0 costs OpenBLAS anyway (it zeroes C first),
 * where NumPy's `out += bias` after the GEMM is an extra read and write of the output.
 * grad_b sums rows in a double accumulator, column block by column block: fixed order,
 * any thread count, and more accurate than a float32 running sum.
 *
 * float and double come from one body: this file includes itself twice.
 */
#ifndef DLK_LIN_BODY
#include <stdlib.h>

#include "linear.h"

#define DLK_LIN_BODY
/* Tile sizes (constants, never derived from the thread count: the cut decides each
 * GEMM's shape, hence its rounding). Each tile re-packs its rows of op(A) and columns
 * of op(B), so tiles should be large; 128 x 512 still gives (256, 512) -> 1000 two
 * tiles per thread on two cores, and was ~5% faster than 128 x 256 there (one
 * thread, CPU time: 2.64 vs 2.77 ms forward). */
#define DLK_LIN_TILE_M 128
#define DLK_LIN_TILE_N 512
/* Columns per grad_bias task (the double accumulator lives on the stack). */
#define DLK_LIN_BIAS_COLS 512
/* Below this many multiply-adds a call stays on one thread: a parallel region costs a
 * few us on an idle machine and up to a scheduler time slice (ms) on a busy one,
 * while 2^20 multiply-adds take ~10-20 us on one core. Serial or parallel, every
 * GEMM has the same shape and every sum the same order: results do not change. */
#define DLK_LIN_PARALLEL_WORK 1048576.0
#define DLK_CAT_(a, b) a##_##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)
#define SFX(name) DLK_CAT(name, SUFFIX)

#define T float
#define SUFFIX f32
#define GEMM dlk_blas_gemm_f32
#include "linear.c"
#undef T
#undef SUFFIX
#undef GEMM

#define T double
#define SUFFIX f64
#define GEMM dlk_blas_gemm_f64
#include "linear.c"
#undef T
#undef SUFFIX
#undef GEMM

#else /* DLK_LIN_BODY: the templated body */

/* C (M, N) = op(A) (M, K) @ op(B) (K, N) + beta*C in fixed tiles over nthreads threads.
 * If bias is given, each tile's rows are first set to bias[column] (then use beta = 1). */
static void SFX(lin_tiled_gemm)(const dlk_blas *blas, int ta, int tb, dlk_idx M, dlk_idx N,
                                dlk_idx K, const T *A, dlk_idx lda, const T *B, dlk_idx ldb,
                                const T *bias, T beta, T *C, dlk_idx ldc, int nthreads) {
    if (M <= 0 || N <= 0) return;
    dlk_idx tiles_m = (M + DLK_LIN_TILE_M - 1) / DLK_LIN_TILE_M;
    dlk_idx tiles_n = (N + DLK_LIN_TILE_N - 1) / DLK_LIN_TILE_N;
    dlk_idx tile;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) \
    if (tiles_m * tiles_n > 1 && (double)M * N * K >= DLK_LIN_PARALLEL_WORK)
#endif
    for (tile = 0; tile < tiles_m * tiles_n; tile++) {
        dlk_idx i0 = (tile / tiles_n) * DLK_LIN_TILE_M;
        dlk_idx j0 = (tile % tiles_n) * DLK_LIN_TILE_N;
        dlk_idx mt = DLK_MIN(DLK_LIN_TILE_M, M - i0);
        dlk_idx nt = DLK_MIN(DLK_LIN_TILE_N, N - j0);
        T *Ct = C + i0 * ldc + j0;
        if (bias)
            for (dlk_idx i = 0; i < mt; i++)
                for (dlk_idx j = 0; j < nt; j++) Ct[i * ldc + j] = bias[j0 + j];
        /* Rows i0.. of op(A): row i0 of A, or column i0 of A when A is stored transposed. */
        const T *At = ta ? A + i0 : A + i0 * lda;
        const T *Bt = tb ? B + j0 * ldb : B + j0;
        GEMM(blas, ta, tb, (int)mt, (int)nt, (int)K, 1, At, (int)lda, Bt, (int)ldb, beta, Ct,
             (int)ldc);
    }
}

int SFX(dlk_linear_forward)(const dlk_blas *blas, const T *x, const T *weight, const T *bias,
                            T *out, dlk_idx M, dlk_idx n_in, dlk_idx n_out, int nthreads) {
    SFX(lin_tiled_gemm)(blas, 0, 1, M, n_out, n_in, x, n_in, weight, n_in, bias, bias ? 1 : 0,
                        out, n_out, nthreads);
    return DLK_OK;
}

int SFX(dlk_linear_backward)(const dlk_blas *blas, const T *grad_out, const T *x,
                             const T *weight, T *grad_x, T *grad_weight, T *grad_bias,
                             dlk_idx M, dlk_idx n_in, dlk_idx n_out, int nthreads) {
    SFX(lin_tiled_gemm)(blas, 0, 0, M, n_in, n_out, grad_out, n_out, weight, n_in, NULL, 0,
                        grad_x, n_in, nthreads);
    SFX(lin_tiled_gemm)(blas, 1, 0, n_out, n_in, M, grad_out, n_out, x, n_in, NULL, 0,
                        grad_weight, n_in, nthreads);
    dlk_idx blocks = (n_out + DLK_LIN_BIAS_COLS - 1) / DLK_LIN_BIAS_COLS, blk;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) \
    if (blocks > 1 && (double)M * n_out >= DLK_LIN_PARALLEL_WORK)
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
