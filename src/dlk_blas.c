/* Row-major GEMM over the column-major Fortran BLAS (see dlk_blas.h). */
#include "dlk_blas.h"

/* A row-major matrix is its transpose in column-major order, so
 * row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: call the
 * Fortran routine with the operands swapped and M and N exchanged. */
#define DLK_DEFINE_GEMM(SUFFIX, T, FIELD)                                             \
    void dlk_blas_gemm_##SUFFIX(const dlk_blas *blas, int trans_a, int trans_b, int M,     \
                           int N, int K, T alpha, const T *A, int lda, const T *B,    \
                           int ldb, T beta, T *C, int ldc) {                          \
        if (M <= 0 || N <= 0) return;                                                 \
        char ta = trans_b ? 'T' : 'N';                                                \
        char tb = trans_a ? 'T' : 'N';                                                \
        if (K <= 0) { /* BLAS would still scale C by beta: do it here, defined. */    \
            for (int i = 0; i < M; i++)                                               \
                for (int j = 0; j < N; j++)                                           \
                    C[(dlk_idx)i * ldc + j] = beta == 0 ? 0 : beta * C[(dlk_idx)i * ldc + j]; \
            return;                                                                   \
        }                                                                             \
        blas->FIELD(&ta, &tb, &N, &M, &K, &alpha, (T *)B, &ldb, (T *)A, &lda, &beta,  \
                    C, &ldc);                                                         \
    }

DLK_DEFINE_GEMM(f32, float, sgemm)
DLK_DEFINE_GEMM(f64, double, dgemm)
