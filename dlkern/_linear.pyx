# Thin binding of src/linear.c: receives validated arrays (dlkern/_args/linear.py),
# flattens x's leading dimensions, allocates outputs and calls C without the GIL. The
# kernel runs on dlkern's own GEMM, which is bit-identical for any thread count, so no
# BLAS thread limit is needed.
import numpy as np
cimport numpy as cnp
from dlkern._common cimport dlk_idx, DLK_OK

cnp.import_array()

cdef extern from "linear.h":
    int dlk_linear_forward_f32(const float *x, const float *weight,
                               const float *bias, float *out, dlk_idx M, dlk_idx n_in,
                               dlk_idx n_out, int nthreads) nogil
    int dlk_linear_forward_f64(const double *x, const double *weight,
                               const double *bias, double *out, dlk_idx M, dlk_idx n_in,
                               dlk_idx n_out, int nthreads) nogil
    int dlk_linear_backward_f32(const float *grad_out, const float *x,
                                const float *weight, float *grad_x, float *grad_weight,
                                float *grad_bias, dlk_idx M, dlk_idx n_in, dlk_idx n_out,
                                int nthreads) nogil
    int dlk_linear_backward_f64(const double *grad_out, const double *x,
                                const double *weight, double *grad_x, double *grad_weight,
                                double *grad_bias, dlk_idx M, dlk_idx n_in, dlk_idx n_out,
                                int nthreads) nogil

def _rows(lead):
    # Explicit row count: reshape(-1, 0) is ambiguous for empty arrays.
    rows = 1
    for d in lead:
        rows *= d
    return rows


def forward(x, weight, bias, int nthreads):
    """x (*, n_in), weight (n_out, n_in), bias (n_out,) or None -> (*, n_out)."""
    lead = x.shape[:-1]
    cdef dlk_idx M = _rows(lead), n_in = weight.shape[1], n_out = weight.shape[0]
    x2 = np.ascontiguousarray(x.reshape(M, n_in))
    weight = np.ascontiguousarray(weight)
    out = np.empty((M, n_out), dtype=x.dtype)
    cdef cnp.ndarray xa = x2, wa = weight, oa = out
    cdef char *bp = NULL
    if bias is not None:
        bias = np.ascontiguousarray(bias)
        bp = (<cnp.ndarray>bias).data
    cdef int status
    if x.dtype == np.float32:
        with nogil:
            status = dlk_linear_forward_f32(<float *>xa.data, <float *>wa.data,
                                            <float *>bp, <float *>oa.data, M, n_in, n_out, nthreads)
    else:
        with nogil:
            status = dlk_linear_forward_f64(<double *>xa.data, <double *>wa.data,
                                            <double *>bp, <double *>oa.data, M, n_in, n_out,
                                            nthreads)
    if status != DLK_OK:
        raise MemoryError("linear: out of memory")
    return out.reshape(lead + (n_out,))


def backward(grad_out, x, weight, int nthreads):
    """grad_out (*, O), x (*, I), weight (O, I) -> (grad_x, grad_weight, grad_bias)."""
    cdef dlk_idx M = _rows(x.shape[:-1]), n_in = weight.shape[1], n_out = weight.shape[0]
    x2 = np.ascontiguousarray(x.reshape(M, n_in))
    g2 = np.ascontiguousarray(grad_out.reshape(M, n_out))
    weight = np.ascontiguousarray(weight)
    grad_x = np.empty((M, n_in), dtype=x.dtype)
    grad_weight = np.empty((n_out, n_in), dtype=x.dtype)
    grad_bias = np.empty(n_out, dtype=x.dtype)
    cdef cnp.ndarray ga = g2, xa = x2, wa = weight
    cdef cnp.ndarray gxa = grad_x, gwa = grad_weight, gba = grad_bias
    cdef int status
    if x.dtype == np.float32:
        with nogil:
            status = dlk_linear_backward_f32(<float *>ga.data, <float *>xa.data,
                                             <float *>wa.data, <float *>gxa.data,
                                             <float *>gwa.data, <float *>gba.data, M, n_in, n_out,
                                             nthreads)
    else:
        with nogil:
            status = dlk_linear_backward_f64(<double *>ga.data, <double *>xa.data,
                                             <double *>wa.data, <double *>gxa.data,
                                             <double *>gwa.data, <double *>gba.data, M, n_in, n_out,
                                             nthreads)
    if status != DLK_OK:
        raise MemoryError("linear_backward: out of memory")
    return grad_x.reshape(x.shape), grad_weight, grad_bias
