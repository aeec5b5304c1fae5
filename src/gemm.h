/* dlkern's own GEMM: packed, register-blocked, parallel and deterministic.
 *
 * Row-major C[M,N] = alpha * op(A) @ op(B) + beta * C. op(A) is M x K (A is stored
 * K x M when trans_a), op(B) is K x N (B is stored N x K when trans_b); lda, ldb,
 * ldc are row strides in elements. beta == 0: C is not read (NaN or garbage in C
 * does not propagate). K == 0 or alpha == 0: C = beta * C (or 0 when beta == 0), and
 * A and B are not read.
 *
 * Threads: runs its own OpenMP region on nthreads threads, so call it outside a
 * parallel region, or with nthreads = 1 from inside one. Deterministic: every element
 * of C is computed by one thread with the same order of operations whatever
 * nthreads is (K is never split across threads; the blocking does not depend on
 * nthreads), so results are bit-identical for any thread count.
 *
 * Cost: 2*M*N*K flops, matched against NumPy's matmul in tests/test_gemm.py. On the
 * project's Zen 5 (AVX-512), 1536^3 float32 runs at ~450 GFLOP/s on 2 threads, about
 * 1.9x the OpenBLAS in NumPy's and SciPy's wheels, which runs
 * its AVX2 kernels on this CPU (bench/bench_blas.py). Blocking and register tile: gemm.c.
 *
 * Returns DLK_OK, or DLK_ENOMEM if a packing buffer cannot be allocated (C is then
 * left unspecified).
 */
#ifndef DLK_GEMM_H
#define DLK_GEMM_H

#include "dlk_common.h"

int dlk_gemm_f32(int trans_a, int trans_b, dlk_idx M, dlk_idx N, dlk_idx K, float alpha,
                 const float *A, dlk_idx lda, const float *B, dlk_idx ldb, float beta,
                 float *C, dlk_idx ldc, int nthreads);
int dlk_gemm_f64(int trans_a, int trans_b, dlk_idx M, dlk_idx N, dlk_idx K, double alpha,
                 const double *A, dlk_idx lda, const double *B, dlk_idx ldb, double beta,
                 double *C, dlk_idx ldc, int nthreads);

/* C[M,N] = alpha * op(A) @ B + beta * C (+ bias[i] on row i when bias is not NULL: as
 * if C were prefilled with it and beta were 1, without the pass) with B described,
 * not stored, for implicit
 * GEMMs (causal_conv1d reads shifted rows of x, grad_out or a time-major x this way
 * instead of stacking copies):
 *   B(k, j) = B[boff[k] + col(j)] for lo[k] <= j < hi[k], zero elsewhere (k < K, j < N)
 *   col(j)  = goff[j / cw] + j % cw   (columns in groups of cw; col(j) = j if goff NULL)
 * lo and hi may be NULL (every j < N valid). boff may point anywhere where a row is
 * zero: only valid elements are read. Same tile, K blocks and micro-kernel as
 * dlk_gemm, hence the same bits as dlk_gemm on the materialized B. Slivers of B that
 * lie inside every row's valid range, with each vector inside one column group (cw a
 * multiple of the vector width), are read in place; the others are packed with their
 * zeros. Single-threaded: for callers that parallelize over independent calls.
 * Returns DLK_OK or DLK_ENOMEM. */
int dlk_gemm_rows_f32(int trans_a, dlk_idx M, dlk_idx N, dlk_idx K, float alpha,
                      const float *A, dlk_idx lda, const float *B, const dlk_idx *boff,
                      dlk_idx cw, const dlk_idx *goff, const dlk_idx *lo, const dlk_idx *hi,
                      float beta, const float *bias, float *C, dlk_idx ldc);
int dlk_gemm_rows_f64(int trans_a, dlk_idx M, dlk_idx N, dlk_idx K, double alpha,
                      const double *A, dlk_idx lda, const double *B, const dlk_idx *boff,
                      dlk_idx cw, const dlk_idx *goff, const dlk_idx *lo, const dlk_idx *hi,
                      double beta, const double *bias, double *C, dlk_idx ldc);

/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: a transpose in
 * VL x VL register blocks (the GEMM's own packing routine), for kernels that need an
 * operand time-major (causal_conv1d's grad_weight). Single-threaded; src and dst
 * must not overlap. */
void dlk_transpose_f32(dlk_idx rows, dlk_idx cols, const float *src, dlk_idx lds, float *dst,
                       dlk_idx ldd);
void dlk_transpose_f64(dlk_idx rows, dlk_idx cols, const double *src, dlk_idx lds,
                       double *dst, dlk_idx ldd);

/* The blocking this build uses, for tests that straddle every edge:
 * sizes = {MR, NR, KC, MC, NC} for float64 (is_f64) or float32. */
void dlk_gemm_blocking(int is_f64, dlk_idx sizes[5]);

#endif
