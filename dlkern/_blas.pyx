# A direct row-major GEMM binding over the kernels' own BLAS path. It exists so the
# tests can check dlk_blas_gemm_* (operand swapping, transposes, strides) and so the
# benchmarks can time the machine's practical FLOP ceiling through the same BLAS
# the kernels use.
import numpy as np
cimport numpy as cnp
from dlkern._blas cimport dlk_blas, dlk_blas_table, dlk_blas_gemm_f32, dlk_blas_gemm_f64

cnp.import_array()


def gemm(a, b, bint trans_a=False, bint trans_b=False):
    """Return op(a) @ op(b) for C-contiguous float32/float64 matrices of one dtype."""
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: a and b must both be float32 or float64, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    cdef int M = a.shape[1] if trans_a else a.shape[0]
    cdef int K = a.shape[0] if trans_a else a.shape[1]
    cdef int Kb = b.shape[1] if trans_b else b.shape[0]
    cdef int N = b.shape[0] if trans_b else b.shape[1]
    if K != Kb:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {M}x{K}, op(b) is {Kb}x{N}")
    out = np.empty((M, N), dtype=a.dtype)
    cdef dlk_blas blas = dlk_blas_table()
    cdef cnp.ndarray aa = a, bb = b, cc = out
    cdef int lda = a.shape[1], ldb = b.shape[1]
    if a.dtype == np.float32:
        with nogil:
            dlk_blas_gemm_f32(&blas, trans_a, trans_b, M, N, K, 1.0, <float *>aa.data, lda,
                         <float *>bb.data, ldb, 0.0, <float *>cc.data, N)
    else:
        with nogil:
            dlk_blas_gemm_f64(&blas, trans_a, trans_b, M, N, K, 1.0, <double *>aa.data, lda,
                         <double *>bb.data, ldb, 0.0, <double *>cc.data, N)
    return out
