# Thin bindings over src/activations.c. Arguments arrive validated and C-contiguous
# (dlkern/_args/activations.py, dlkern/_args/dropout.py); this allocates outputs,
# releases the GIL and calls the kernel for the array's dtype.
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint32_t
from dlkern._common cimport dlk_idx, DLK_OK, DLK_ENOMEM

cnp.import_array()

cdef extern from "activations.h":
    enum:
        DLK_ACT_RELU
        DLK_ACT_LEAKY_RELU
        DLK_ACT_ELU
        DLK_ACT_SIGMOID
        DLK_ACT_TANH
        DLK_ACT_SOFTPLUS
    int dlk_act_forward_f32(int op, const float *x, float *y, dlk_idx n, double a, double b,
                            int nthreads) nogil
    int dlk_act_forward_f64(int op, const double *x, double *y, dlk_idx n, double a, double b,
                            int nthreads) nogil
    int dlk_act_backward_f32(int op, const float *g, const float *xy, float *gx, dlk_idx n,
                             double a, double b, int nthreads) nogil
    int dlk_act_backward_f64(int op, const double *g, const double *xy, double *gx, dlk_idx n,
                             double a, double b, int nthreads) nogil
    void dlk_prelu_forward_f32(const float *x, const float *w, float *y, dlk_idx N, dlk_idx C,
                               dlk_idx S, int nthreads) nogil
    void dlk_prelu_forward_f64(const double *x, const double *w, double *y, dlk_idx N,
                               dlk_idx C, dlk_idx S, int nthreads) nogil
    int dlk_prelu_backward_f32(const float *g, const float *x, const float *w, float *gx,
                               float *gw, dlk_idx N, dlk_idx C, dlk_idx S, int nthreads) nogil
    int dlk_prelu_backward_f64(const double *g, const double *x, const double *w, double *gx,
                               double *gw, dlk_idx N, dlk_idx C, dlk_idx S, int nthreads) nogil
    void dlk_rrelu_train_f32(const float *x, const float *slope, float *y, float *noise,
                             dlk_idx n, int nthreads) nogil
    void dlk_rrelu_train_f64(const double *x, const double *slope, double *y, double *noise,
                             dlk_idx n, int nthreads) nogil
    void dlk_dropout_f32(const float *x, const uint32_t *bits, uint32_t threshold, float scale,
                         float *y, unsigned char *mask, dlk_idx n, int nthreads) nogil
    void dlk_dropout_f64(const double *x, const uint32_t *bits, uint32_t threshold,
                         double scale, double *y, unsigned char *mask, dlk_idx n,
                         int nthreads) nogil
    void dlk_dropout_backward_f32(const float *g, const unsigned char *mask, float scale,
                                  float *gx, dlk_idx n, int nthreads) nogil
    void dlk_dropout_backward_f64(const double *g, const unsigned char *mask, double scale,
                                  double *gx, dlk_idx n, int nthreads) nogil

OPS = {"relu": DLK_ACT_RELU, "leaky_relu": DLK_ACT_LEAKY_RELU, "elu": DLK_ACT_ELU,
       "sigmoid": DLK_ACT_SIGMOID, "tanh": DLK_ACT_TANH, "softplus": DLK_ACT_SOFTPLUS}


def forward(str name, cnp.ndarray x, double a, double b, int nthreads):
    """The elementwise op `name` of contiguous x (params a, b as in activations.h)."""
    cdef int op = OPS[name]
    cdef cnp.ndarray y = np.empty_like(x)
    cdef dlk_idx n = x.size
    cdef int status
    cdef bint f32 = x.dtype == np.float32
    cdef void *p_x = cnp.PyArray_DATA(x)
    cdef void *p_y = cnp.PyArray_DATA(y)
    with nogil:
        if f32:
            status = dlk_act_forward_f32(op, <float *>p_x, <float *>p_y, n, a, b, nthreads)
        else:
            status = dlk_act_forward_f64(op, <double *>p_x, <double *>p_y, n, a, b, nthreads)
    if status != DLK_OK:
        raise ValueError(f"unknown activation {name!r}")
    return y


def backward(str name, cnp.ndarray g, cnp.ndarray xy, double a, double b, int nthreads):
    """Gradient of op `name`; xy is x, or the forward output for sigmoid and tanh."""
    cdef int op = OPS[name]
    cdef cnp.ndarray gx = np.empty_like(g)
    cdef dlk_idx n = g.size
    cdef int status
    cdef bint f32 = g.dtype == np.float32
    cdef void *p_g = cnp.PyArray_DATA(g)
    cdef void *p_gx = cnp.PyArray_DATA(gx)
    cdef void *p_xy = cnp.PyArray_DATA(xy)
    with nogil:
        if f32:
            status = dlk_act_backward_f32(op, <float *>p_g, <float *>p_xy,
                                          <float *>p_gx, n, a, b, nthreads)
        else:
            status = dlk_act_backward_f64(op, <double *>p_g, <double *>p_xy,
                                          <double *>p_gx, n, a, b, nthreads)
    if status != DLK_OK:
        raise ValueError(f"unknown activation {name!r}")
    return gx


def prelu_forward(cnp.ndarray x, cnp.ndarray w, dlk_idx N, dlk_idx C, dlk_idx S, int nthreads):
    cdef cnp.ndarray y = np.empty_like(x)
    cdef bint f32 = x.dtype == np.float32
    cdef void *p_w = cnp.PyArray_DATA(w)
    cdef void *p_x = cnp.PyArray_DATA(x)
    cdef void *p_y = cnp.PyArray_DATA(y)
    with nogil:
        if f32:
            dlk_prelu_forward_f32(<float *>p_x, <float *>p_w, <float *>p_y,
                                  N, C, S, nthreads)
        else:
            dlk_prelu_forward_f64(<double *>p_x, <double *>p_w, <double *>p_y,
                                  N, C, S, nthreads)
    return y


def prelu_backward(cnp.ndarray g, cnp.ndarray x, cnp.ndarray w, dlk_idx N, dlk_idx C,
                   dlk_idx S, int nthreads):
    cdef cnp.ndarray gx = np.empty_like(x)
    cdef cnp.ndarray gw = np.empty_like(w)
    cdef int status
    cdef bint f32 = x.dtype == np.float32
    cdef void *p_g = cnp.PyArray_DATA(g)
    cdef void *p_gw = cnp.PyArray_DATA(gw)
    cdef void *p_gx = cnp.PyArray_DATA(gx)
    cdef void *p_w = cnp.PyArray_DATA(w)
    cdef void *p_x = cnp.PyArray_DATA(x)
    with nogil:
        if f32:
            status = dlk_prelu_backward_f32(<float *>p_g, <float *>p_x, <float *>p_w,
                                            <float *>p_gx, <float *>p_gw, N, C, S, nthreads)
        else:
            status = dlk_prelu_backward_f64(<double *>p_g, <double *>p_x,
                                            <double *>p_w, <double *>p_gx,
                                            <double *>p_gw, N, C, S, nthreads)
    if status == DLK_ENOMEM:
        raise MemoryError("prelu_backward: out of memory for the weight-gradient rows")
    return gx, gw


def rrelu_train(cnp.ndarray x, cnp.ndarray slope, int nthreads):
    cdef cnp.ndarray y = np.empty_like(x)
    cdef cnp.ndarray noise = np.empty_like(x)
    cdef dlk_idx n = x.size
    cdef bint f32 = x.dtype == np.float32
    cdef void *p_noise = cnp.PyArray_DATA(noise)
    cdef void *p_slope = cnp.PyArray_DATA(slope)
    cdef void *p_x = cnp.PyArray_DATA(x)
    cdef void *p_y = cnp.PyArray_DATA(y)
    with nogil:
        if f32:
            dlk_rrelu_train_f32(<float *>p_x, <float *>p_slope, <float *>p_y,
                                <float *>p_noise, n, nthreads)
        else:
            dlk_rrelu_train_f64(<double *>p_x, <double *>p_slope, <double *>p_y,
                                <double *>p_noise, n, nthreads)
    return y, noise


def dropout(cnp.ndarray x, cnp.ndarray bits, uint32_t threshold, double scale, int nthreads):
    cdef cnp.ndarray y = np.empty_like(x)
    cdef cnp.ndarray mask = np.empty_like(x, dtype=np.bool_)
    cdef dlk_idx n = x.size
    cdef bint f32 = x.dtype == np.float32
    cdef void *p_mask = cnp.PyArray_DATA(mask)
    cdef void *p_bits = cnp.PyArray_DATA(bits)
    cdef void *p_x = cnp.PyArray_DATA(x)
    cdef void *p_y = cnp.PyArray_DATA(y)
    with nogil:
        if f32:
            dlk_dropout_f32(<float *>p_x, <uint32_t *>p_bits, threshold, <float>scale,
                            <float *>p_y, <unsigned char *>p_mask, n, nthreads)
        else:
            dlk_dropout_f64(<double *>p_x, <uint32_t *>p_bits, threshold, scale,
                            <double *>p_y, <unsigned char *>p_mask, n, nthreads)
    return y, mask


def dropout_backward(cnp.ndarray g, cnp.ndarray mask, double scale, int nthreads):
    cdef cnp.ndarray gx = np.empty_like(g)
    cdef dlk_idx n = g.size
    cdef bint f32 = g.dtype == np.float32
    cdef void *p_g = cnp.PyArray_DATA(g)
    cdef void *p_gx = cnp.PyArray_DATA(gx)
    cdef void *p_mask = cnp.PyArray_DATA(mask)
    with nogil:
        if f32:
            dlk_dropout_backward_f32(<float *>p_g, <unsigned char *>p_mask, <float>scale,
                                     <float *>p_gx, n, nthreads)
        else:
            dlk_dropout_backward_f64(<double *>p_g, <unsigned char *>p_mask, scale,
                                     <double *>p_gx, n, nthreads)
    return gx
