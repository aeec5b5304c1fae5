/* dlkern's GEMM (see gemm.h). First, simple version: one row of C per task,
 * K accumulated in order, so every element has the same operation order for any
 * thread count. The packed, register-blocked version replaces this body. */
#include "gemm.h"

#define DLK_GEMM_DEFINE(SUF, T)                                                          \
    int dlk_gemm_##SUF(int trans_a, int trans_b, dlk_idx M, dlk_idx N, dlk_idx K, T alpha, \
                       const T *A, dlk_idx lda, const T *B, dlk_idx ldb, T beta, T *C,     \
                       dlk_idx ldc, int nthreads) {                                        \
        dlk_idx i;                                                                         \
        if (M <= 0 || N <= 0) return DLK_OK;                                               \
        _Pragma("omp parallel for num_threads(nthreads) schedule(static)")                 \
        for (i = 0; i < M; i++) {                                                          \
            T *c = C + i * ldc;                                                            \
            for (dlk_idx j = 0; j < N; j++) c[j] = beta == 0 ? (T)0 : beta * c[j];         \
            for (dlk_idx k = 0; k < K; k++) {                                              \
                T a = alpha * (trans_a ? A[k * lda + i] : A[i * lda + k]);                 \
                if (trans_b)                                                               \
                    for (dlk_idx j = 0; j < N; j++) c[j] += a * B[j * ldb + k];            \
                else                                                                       \
                    for (dlk_idx j = 0; j < N; j++) c[j] += a * B[k * ldb + j];            \
            }                                                                              \
        }                                                                                  \
        return DLK_OK;                                                                     \
    }

DLK_GEMM_DEFINE(f32, float)
DLK_GEMM_DEFINE(f64, double)

void dlk_gemm_blocking(int is_f64, dlk_idx sizes[5]) {
    sizes[0] = 8; sizes[1] = 16; sizes[2] = 64; sizes[3] = 64; sizes[4] = 256;
}
