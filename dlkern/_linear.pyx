# linear over BLAS GEMM (dlk_gemm_*), forward and backward, with the bias work in
# small nogil loops here. No src/linear.c: the GEMMs are the whole cost and the bias
# loops are a few lines, so a C file would add nothing.
#
# Bias (measured on (256, 512)->1000, float32, 2 threads): forward prefills the output
# rows with the bias and runs GEMM with beta = 1; that costs one write of the output,
# as beta = 0 costs OpenBLAS a zeroing pass, so the bias add is ~free (NumPy's
# `out += bias` after the GEMM is an extra read+write pass). grad_bias is a column
# sum over rows in a double accumulator: fixed order (identical for any thread
# count), more accurate than NumPy's float32 row-by-row sum, and ~1% of the backward.
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from dlkern._blas cimport dlk_blas, dlk_blas_table, dlk_gemm_f32, dlk_gemm_f64

cnp.import_array()

ctypedef fused real:
    float
    double

cdef Py_ssize_t INT_LIMIT = 2**31 - 1


cdef inline void _gemm(const dlk_blas *blas, int ta, int tb, int M, int N, int K,
                       const real *A, int lda, const real *B, int ldb, real beta,
                       real *C, int ldc) noexcept nogil:
    if real is float:
        dlk_gemm_f32(blas, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc)
    else:
        dlk_gemm_f64(blas, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc)


cdef void _fill_rows(real *out, const real *bias, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(rows):
        memcpy(out + i * cols, bias, cols * sizeof(real))


cdef int _column_sums(const real *g, real *out, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double *acc = <double *>malloc((cols if cols > 0 else 1) * sizeof(double))
    if acc == NULL:
        return 1
    for j in range(cols):
        acc[j] = 0
    for i in range(rows):  # row by row: contiguous, vectorizable, fixed order
        for j in range(cols):
            acc[j] += g[i * cols + j]
    for j in range(cols):
        out[j] = <real>acc[j]
    free(acc)
    return 0


cdef void _check_int_dims(str fn, tuple dims) except *:
    for d in dims:
        if d > INT_LIMIT:
            raise ValueError(f"{fn}: dimension {d} is too large for BLAS (limit {INT_LIMIT})")


cdef void _forward(real[:, ::1] x, real[:, ::1] w, real[::1] b, real[:, ::1] out, bint has_bias):
    cdef int M = x.shape[0], I = x.shape[1], O = w.shape[0]
    cdef dlk_blas blas = dlk_blas_table()
    cdef real beta = 0
    cdef real *xp = &x[0, 0] if x.size else NULL
    cdef real *wp = &w[0, 0] if w.size else NULL
    cdef real *op = &out[0, 0] if out.size else NULL
    with nogil:
        if has_bias and op != NULL:
            _fill_rows(op, &b[0], M, O)
            beta = 1
        if op != NULL:
            _gemm(&blas, 0, 1, M, O, I, xp, I, wp, I, beta, op, O)


def _rows(lead):
    # Explicit row count: reshape(-1, 0) is ambiguous for empty arrays.
    rows = 1
    for d in lead:
        rows *= d
    return rows


def forward(x, weight, bias):
    """x (*, I), weight (O, I), bias (O,) or None -> (*, O)."""
    lead = x.shape[:-1]
    in_f = weight.shape[1]
    out_f = weight.shape[0]
    x2 = np.ascontiguousarray(x.reshape(_rows(lead), in_f))
    weight = np.ascontiguousarray(weight)
    _check_int_dims("linear", (x2.shape[0], in_f, out_f))
    out = np.empty((x2.shape[0], out_f), dtype=x.dtype)
    has_bias = bias is not None
    b = np.ascontiguousarray(bias) if has_bias else np.zeros(1, dtype=x.dtype)
    if x.dtype == np.float32:
        _forward[float](x2, weight, b, out, has_bias)
    else:
        _forward[double](x2, weight, b, out, has_bias)
    return out.reshape(lead + (out_f,))


cdef int _backward(real[:, ::1] g, real[:, ::1] x, real[:, ::1] w, real[:, ::1] gx,
                   real[:, ::1] gw, real[::1] gb):
    cdef int M = x.shape[0], I = x.shape[1], O = w.shape[0]
    cdef dlk_blas blas = dlk_blas_table()
    cdef real *gp = &g[0, 0] if g.size else NULL
    cdef real *xp = &x[0, 0] if x.size else NULL
    cdef real *wp = &w[0, 0] if w.size else NULL
    cdef real *gxp = &gx[0, 0] if gx.size else NULL
    cdef real *gwp = &gw[0, 0] if gw.size else NULL
    cdef real *gbp = &gb[0] if gb.size else NULL
    cdef int status = 0
    with nogil:
        if gxp != NULL:  # grad_x (M, I) = g (M, O) @ w (O, I)
            _gemm(&blas, 0, 0, M, I, O, gp, O, wp, I, 0, gxp, I)
        if gwp != NULL:  # grad_w (O, I) = g^T (O, M) @ x (M, I)
            _gemm(&blas, 1, 0, O, I, M, gp, O, xp, I, 0, gwp, I)
        if gbp != NULL:
            status = _column_sums(gp, gbp, M, O)
    return status


def backward(grad_out, x, weight):
    """grad_out (*, O), x (*, I), weight (O, I) -> (grad_x, grad_weight, grad_bias)."""
    in_f = weight.shape[1]
    out_f = weight.shape[0]
    rows = _rows(x.shape[:-1])
    x2 = np.ascontiguousarray(x.reshape(rows, in_f))
    g2 = np.ascontiguousarray(grad_out.reshape(rows, out_f))
    weight = np.ascontiguousarray(weight)
    _check_int_dims("linear_backward", (x2.shape[0], in_f, out_f))
    gx = np.empty(x2.shape, dtype=x.dtype)
    gw = np.empty(weight.shape, dtype=x.dtype)
    gb = np.empty(out_f, dtype=x.dtype)
    if x.dtype == np.float32:
        status = _backward[float](g2, x2, weight, gx, gw, gb)
    else:
        status = _backward[double](g2, x2, weight, gx, gw, gb)
    if status:
        raise MemoryError("linear_backward: out of memory")
    return gx.reshape(x.shape), gw, gb
