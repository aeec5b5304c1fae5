/* BLAS GEMM for the C kernels, without linking a BLAS.
 *
 * The Cython binding fills a dlk_blas table with the Fortran sgemm/dgemm that
 * scipy.linalg.cython_blas exports (dlkern/_blas.pxd: dlk_blas_table()), and
 * passes it to the kernel. dlk_blas_gemm_* take row-major operands, as the kernels
 * store them, and swap the operands to call the column-major Fortran routine
 * (C^T = B^T A^T), as scikit-learn's _cython_blas does.
 *
 * Threads: OpenBLAS rounds differently for different splits of a GEMM over its
 * threads, so a multithreaded BLAS would make results depend on the thread count.
 * The bindings therefore run the BLAS on one thread around every kernel that calls
 * it (dlkern._threads.one_thread_blas); kernels that want both cores spread
 * one-thread GEMMs over fixed tiles with OpenMP (linear.c, causal_conv1d.c), so the
 * two pools never compete and results are identical for any thread count.
 */
#ifndef DLK_BLAS_H
#define DLK_BLAS_H

#include "dlk_common.h"

typedef void (*dlk_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                             float *alpha, float *a, int *lda, float *b, int *ldb,
                             float *beta, float *c, int *ldc);
typedef void (*dlk_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                             double *alpha, double *a, int *lda, double *b, int *ldb,
                             double *beta, double *c, int *ldc);

typedef struct {
    dlk_sgemm_fn sgemm;
    dlk_dgemm_fn dgemm;
} dlk_blas;

/* Row-major C[M,N] = alpha * op(A) @ op(B) + beta * C, where op(A) is M x K and
 * op(B) is K x N; trans_a / trans_b nonzero mean A / B are stored transposed.
 * lda, ldb, ldc are row strides (elements). Dimensions must fit in int. */
void dlk_blas_gemm_f32(const dlk_blas *blas, int trans_a, int trans_b, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc);
void dlk_blas_gemm_f64(const dlk_blas *blas, int trans_a, int trans_b, int M, int N, int K,
                  double alpha, const double *A, int lda, const double *B, int ldb,
                  double beta, double *C, int ldc);

#endif
