# BLAS for the C kernels: dlk_blas_table() returns scipy's Fortran sgemm/dgemm
# (scipy.linalg.cython_blas) as function pointers the C code calls through
# src/dlk_blas.h. Nothing links a BLAS at build time.
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "dlk_blas.h":
    ctypedef void (*dlk_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *,
                                  int *, float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*dlk_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *,
                                  int *, double *, int *, double *, double *, int *) noexcept nogil
    ctypedef struct dlk_blas:
        dlk_sgemm_fn sgemm
        dlk_dgemm_fn dgemm
    void dlk_blas_gemm_f32(const dlk_blas *blas, int trans_a, int trans_b, int M, int N, int K,
                      float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc) noexcept nogil
    void dlk_blas_gemm_f64(const dlk_blas *blas, int trans_a, int trans_b, int M, int N, int K,
                      double alpha, const double *A, int lda, const double *B, int ldb,
                      double beta, double *C, int ldc) noexcept nogil

cdef inline dlk_blas dlk_blas_table() noexcept nogil:
    cdef dlk_blas table
    table.sgemm = <dlk_sgemm_fn>sgemm
    table.dgemm = <dlk_dgemm_fn>dgemm
    return table
