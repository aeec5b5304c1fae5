# Thin binding of src/causal_conv1d.c: receives validated arrays (dlkern/_args),
# makes them contiguous, allocates outputs, releases the GIL and calls C (which runs on
# dlkern's own GEMM, bit-identical for any thread count: no BLAS thread limit needed).
import numpy as np
cimport numpy as cnp
from dlkern._common cimport dlk_idx, DLK_OK

cnp.import_array()

cdef extern from "causal_conv1d.h":
    int dlk_causal_conv1d_forward_f32(const float *x, const float *weight,
                                      const float *bias, float *out, dlk_idx N, dlk_idx C_in,
                                      dlk_idx L, dlk_idx C_out, dlk_idx k, dlk_idx dilation,
                                      int nthreads) nogil
    int dlk_causal_conv1d_forward_f64(const double *x,
                                      const double *weight, const double *bias, double *out,
                                      dlk_idx N, dlk_idx C_in, dlk_idx L, dlk_idx C_out,
                                      dlk_idx k, dlk_idx dilation, int nthreads) nogil
    int dlk_causal_conv1d_backward_f32(const float *grad_out,
                                       const float *x, const float *weight, float *grad_x,
                                       float *grad_weight, float *grad_bias, dlk_idx N,
                                       dlk_idx C_in, dlk_idx L, dlk_idx C_out, dlk_idx k,
                                       dlk_idx dilation, int parts, int nthreads) nogil
    int dlk_causal_conv1d_backward_f64(const double *grad_out,
                                       const double *x, const double *weight, double *grad_x,
                                       double *grad_weight, double *grad_bias, dlk_idx N,
                                       dlk_idx C_in, dlk_idx L, dlk_idx C_out, dlk_idx k,
                                       dlk_idx dilation, int parts, int nthreads) nogil

def forward(x, weight, bias, dilation, int nthreads):
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight)
    if bias is not None:
        bias = np.ascontiguousarray(bias)
    cdef dlk_idx N = x.shape[0], C_in = x.shape[1], L = x.shape[2]
    cdef dlk_idx C_out = weight.shape[0], k = weight.shape[2]
    # Any Python int is valid; shifts of L or more only read padding, so clamp first.
    cdef dlk_idx d = min(dilation, max(L, 1))
    out = np.empty((N, C_out, L), dtype=x.dtype)
    cdef cnp.ndarray xa = x, wa = weight, oa = out
    cdef char *bp = NULL
    if bias is not None:
        bp = (<cnp.ndarray>bias).data
    cdef int status
    if x.dtype == np.float32:
        with nogil:
            status = dlk_causal_conv1d_forward_f32(<float *>xa.data, <float *>wa.data,
                                                   <float *>bp, <float *>oa.data, N, C_in, L,
                                                   C_out, k, d, nthreads)
    else:
        with nogil:
            status = dlk_causal_conv1d_forward_f64(<double *>xa.data, <double *>wa.data,
                                                   <double *>bp, <double *>oa.data, N, C_in, L,
                                                   C_out, k, d, nthreads)
    if status != DLK_OK:
        raise MemoryError("causal_conv1d: out of memory")
    return out


cdef char *_data(a):
    return NULL if a is None else (<cnp.ndarray>a).data


def backward(grad_out, x, weight, dilation, int nthreads, output_mask=(True, True, True)):
    """(grad_x, grad_weight, grad_bias); an entry whose output_mask is False is not
    computed (the C kernel skips its work) and comes back as None."""
    grad_out = np.ascontiguousarray(grad_out)
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight)
    cdef dlk_idx N = x.shape[0], C_in = x.shape[1], L = x.shape[2]
    cdef dlk_idx C_out = weight.shape[0], k = weight.shape[2]
    # Any Python int is valid; shifts of L or more only read padding, so clamp first.
    cdef dlk_idx d = min(dilation, max(L, 1))
    want_x, want_w, want_b = output_mask
    grad_x = np.empty_like(x) if want_x else None
    grad_weight = np.empty_like(weight) if want_w else None
    grad_bias = np.empty(C_out, dtype=x.dtype) if want_b else None
    cdef int parts = (1 if want_x else 0) | (2 if want_w else 0) | (4 if want_b else 0)
    cdef cnp.ndarray ga = grad_out, xa = x, wa = weight
    cdef char *gxp = _data(grad_x)
    cdef char *gwp = _data(grad_weight)
    cdef char *gbp = _data(grad_bias)
    cdef int status
    if x.dtype == np.float32:
        with nogil:
            status = dlk_causal_conv1d_backward_f32(
                <float *>ga.data, <float *>xa.data, <float *>wa.data,
                <float *>gxp, <float *>gwp, <float *>gbp,
                N, C_in, L, C_out, k, d, parts, nthreads)
    else:
        with nogil:
            status = dlk_causal_conv1d_backward_f64(
                <double *>ga.data, <double *>xa.data, <double *>wa.data,
                <double *>gxp, <double *>gwp, <double *>gbp,
                N, C_in, L, C_out, k, d, parts, nthreads)
    if status != DLK_OK:
        raise MemoryError("causal_conv1d_backward: out of memory")
    return grad_x, grad_weight, grad_bias
