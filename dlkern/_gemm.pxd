# Declarations of src/gemm.h (dlkern's own GEMM) for other bindings to cimport.
from dlkern._common cimport dlk_idx

cdef extern from "gemm.h":
    int dlk_gemm_f32(int trans_a, int trans_b, dlk_idx M, dlk_idx N, dlk_idx K, float alpha,
                     const float *A, dlk_idx lda, const float *B, dlk_idx ldb, float beta,
                     float *C, dlk_idx ldc, int nthreads) nogil
    int dlk_gemm_f64(int trans_a, int trans_b, dlk_idx M, dlk_idx N, dlk_idx K, double alpha,
                     const double *A, dlk_idx lda, const double *B, dlk_idx ldb, double beta,
                     double *C, dlk_idx ldc, int nthreads) nogil
    void dlk_gemm_blocking(int is_f64, dlk_idx sizes[5]) nogil
    void dlk_transpose_f32(dlk_idx rows, dlk_idx cols, const float *src, dlk_idx lds,
                           float *dst, dlk_idx ldd) nogil
    void dlk_transpose_f64(dlk_idx rows, dlk_idx cols, const double *src, dlk_idx lds,
                           double *dst, dlk_idx ldd) nogil
    int dlk_gemm_rows_f32(int trans_a, dlk_idx M, dlk_idx N, dlk_idx K, float alpha,
                          const float *A, dlk_idx lda, const float *B, const dlk_idx *boff,
                          dlk_idx cw, const dlk_idx *goff, const dlk_idx *lo,
                          const dlk_idx *hi, float beta, const float *bias, float *C,
                          dlk_idx ldc) nogil
    int dlk_gemm_rows_f64(int trans_a, dlk_idx M, dlk_idx N, dlk_idx K, double alpha,
                          const double *A, dlk_idx lda, const double *B, const dlk_idx *boff,
                          dlk_idx cw, const dlk_idx *goff, const dlk_idx *lo,
                          const dlk_idx *hi, double beta, const double *bias,
                          double *C, dlk_idx ldc) nogil
