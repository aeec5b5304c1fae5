# Thin binding over src/softmax.h: receives validated C-contiguous arrays, allocates the
# outputs, releases the GIL and calls the C kernels. Checks live in dlkern/_args/softmax.py.
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t
from dlkern._common cimport dlk_idx, DLK_OK, DLK_ENOMEM

cnp.import_array()

cdef extern from "softmax.h":
    int dlk_softmax_forward_f32(const float *x, float *y, dlk_idx outer, dlk_idx D,
                                dlk_idx inner, int is_log, int nthreads) nogil
    int dlk_softmax_forward_f64(const double *x, double *y, dlk_idx outer, dlk_idx D,
                                dlk_idx inner, int is_log, int nthreads) nogil
    void dlk_softmax_backward_f32(const float *g, const float *out, float *gx, dlk_idx outer,
                                  dlk_idx D, dlk_idx inner, int is_log, int nthreads) nogil
    void dlk_softmax_backward_f64(const double *g, const double *out, double *gx,
                                  dlk_idx outer, dlk_idx D, dlk_idx inner, int is_log,
                                  int nthreads) nogil
    int dlk_cross_entropy_forward_f32(const float *logits, const int64_t *target,
                                      const float *weight, dlk_idx rows, dlk_idx C,
                                      int64_t ignore_index, double label_smoothing,
                                      int reduction, float *loss, dlk_idx *bad,
                                      int nthreads) nogil
    int dlk_cross_entropy_forward_f64(const double *logits, const int64_t *target,
                                      const double *weight, dlk_idx rows, dlk_idx C,
                                      int64_t ignore_index, double label_smoothing,
                                      int reduction, double *loss, dlk_idx *bad,
                                      int nthreads) nogil
    int dlk_cross_entropy_backward_f32(const float *logits, const int64_t *target,
                                       const float *weight, dlk_idx rows, dlk_idx C,
                                       int64_t ignore_index, double label_smoothing,
                                       int reduction, const float *grad_out,
                                       double grad_out_scalar, float *grad, dlk_idx *bad,
                                       int nthreads) nogil
    int dlk_cross_entropy_backward_f64(const double *logits, const int64_t *target,
                                       const double *weight, dlk_idx rows, dlk_idx C,
                                       int64_t ignore_index, double label_smoothing,
                                       int reduction, const double *grad_out,
                                       double grad_out_scalar, double *grad, dlk_idx *bad,
                                       int nthreads) nogil


cdef inline void _check(int status):
    if status == DLK_ENOMEM:
        raise MemoryError("dlkern softmax kernel: out of memory")


def softmax_forward(cnp.ndarray x, dlk_idx outer, dlk_idx D, dlk_idx inner, bint is_log,
                    int nthreads):
    """y = (log_)softmax of C-contiguous x viewed as (outer, D, inner), over D."""
    cdef cnp.ndarray y = cnp.PyArray_EMPTY(x.ndim, x.shape, cnp.PyArray_TYPE(x), 0)
    cdef int status
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            status = dlk_softmax_forward_f32(<float *>x.data, <float *>y.data, outer, D,
                                             inner, is_log, nthreads)
    else:
        with nogil:
            status = dlk_softmax_forward_f64(<double *>x.data, <double *>y.data, outer, D,
                                             inner, is_log, nthreads)
    _check(status)
    return y


def softmax_backward(cnp.ndarray g, cnp.ndarray out, dlk_idx outer, dlk_idx D, dlk_idx inner,
                     bint is_log, int nthreads):
    """Gradient of (log_)softmax from grad_out g and the forward output out."""
    cdef cnp.ndarray gx = cnp.PyArray_EMPTY(g.ndim, g.shape, cnp.PyArray_TYPE(g), 0)
    if cnp.PyArray_TYPE(g) == cnp.NPY_FLOAT32:
        with nogil:
            dlk_softmax_backward_f32(<float *>g.data, <float *>out.data, <float *>gx.data,
                                     outer, D, inner, is_log, nthreads)
    else:
        with nogil:
            dlk_softmax_backward_f64(<double *>g.data, <double *>out.data, <double *>gx.data,
                                     outer, D, inner, is_log, nthreads)
    return gx


def cross_entropy_forward(cnp.ndarray logits, cnp.ndarray target, weight, int64_t ignore_index,
                          double label_smoothing, int reduction, int nthreads):
    """Loss of (rows, C) logits and int64 (rows,) target; returns (loss, bad_index).

    loss is (rows,) for reduction 0 (none), else shape (1,); bad_index >= 0 means the
    target at that flat index is out of range and nothing was computed."""
    cdef dlk_idx rows = logits.shape[0], C = logits.shape[1]
    cdef dlk_idx bad = -1
    cdef cnp.npy_intp n = rows if reduction == 0 else 1
    cdef cnp.ndarray loss = cnp.PyArray_EMPTY(1, &n, cnp.PyArray_TYPE(logits), 0)
    cdef cnp.ndarray w
    cdef void *wp = NULL
    cdef int status
    if weight is not None:
        w = weight
        wp = w.data
    if cnp.PyArray_TYPE(logits) == cnp.NPY_FLOAT32:
        with nogil:
            status = dlk_cross_entropy_forward_f32(
                <float *>logits.data, <int64_t *>target.data, <float *>wp, rows, C,
                ignore_index, label_smoothing, reduction, <float *>loss.data, &bad, nthreads)
    else:
        with nogil:
            status = dlk_cross_entropy_forward_f64(
                <double *>logits.data, <int64_t *>target.data, <double *>wp, rows, C,
                ignore_index, label_smoothing, reduction, <double *>loss.data, &bad, nthreads)
    _check(status)
    return loss, bad


def cross_entropy_backward(cnp.ndarray logits, cnp.ndarray target, weight, int64_t ignore_index,
                           double label_smoothing, int reduction, grad_out,
                           double grad_out_scalar, int nthreads):
    """grad of the loss wrt (rows, C) logits; returns (grad, bad_index).

    grad_out is a (rows,) array of the logits' dtype for reduction 0, else None and
    grad_out_scalar is used."""
    cdef dlk_idx rows = logits.shape[0], C = logits.shape[1]
    cdef dlk_idx bad = -1
    cdef cnp.ndarray grad = cnp.PyArray_EMPTY(2, logits.shape, cnp.PyArray_TYPE(logits), 0)
    cdef cnp.ndarray w, g
    cdef void *wp = NULL
    cdef void *gp = NULL
    cdef int status
    if weight is not None:
        w = weight
        wp = w.data
    if grad_out is not None:
        g = grad_out
        gp = g.data
    if cnp.PyArray_TYPE(logits) == cnp.NPY_FLOAT32:
        with nogil:
            status = dlk_cross_entropy_backward_f32(
                <float *>logits.data, <int64_t *>target.data, <float *>wp, rows, C,
                ignore_index, label_smoothing, reduction, <float *>gp, grad_out_scalar,
                <float *>grad.data, &bad, nthreads)
    else:
        with nogil:
            status = dlk_cross_entropy_backward_f64(
                <double *>logits.data, <int64_t *>target.data, <double *>wp, rows, C,
                ignore_index, label_smoothing, reduction, <double *>gp, grad_out_scalar,
                <double *>grad.data, &bad, nthreads)
    _check(status)
    return grad, bad
