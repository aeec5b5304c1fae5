# Thin binding over src/softmax.h: receives validated C-contiguous arrays, allocates the
# outputs, releases the GIL and calls the C kernels. Checks live in dlkern/_args/softmax.py.
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t
from dlkern._common cimport dlk_idx, DLK_OK, DLK_ENOMEM
from dlkern._fast_args cimport plain, plain_float, same_shape

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

    loss is (rows,) for reduction 0 (none), else 0-d (the final shape: no reshape, which
    was ~5% of a (4096, 10) call); bad_index >= 0 means the target at that flat index is
    out of range and nothing was computed."""
    cdef dlk_idx rows = logits.shape[0], C = logits.shape[1]
    cdef dlk_idx bad = -1
    cdef cnp.npy_intp n = rows
    cdef cnp.ndarray loss = cnp.PyArray_EMPTY(1 if reduction == 0 else 0, &n,
                                              cnp.PyArray_TYPE(logits), 0)
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


# ---- fast paths: plain common calls accepted with C-level tests only ----
# Accepted only when dlkern/_args/softmax.py would accept the call AND
# dlkern/functional/softmax.py would pass the arrays on uncopied (exact ndarrays of one
# native float dtype, aligned, C-contiguous; exact int dim in range; for cross_entropy
# 2-D logits, an int64 (N,) target, no weight, a known reduction string, float or int
# scalars in range). Anything else returns None and takes the full parse, so every check
# and error message stays in one place. Why: ~1.5 us of a 2.3 us tiny softmax call and
# ~2.8 us of a 3.7 us cross_entropy call were Python argument handling.
# The array tests shared with the other bindings are in dlkern/_fast_args.pxd.

cdef inline bint _split(cnp.ndarray x, object dim, dlk_idx *outer, dlk_idx *D, dlk_idx *inner):
    """(outer, D, inner) around an exact int dim in range, else False."""
    if type(dim) is not int:
        return False
    cdef int nd = cnp.PyArray_NDIM(x)
    cdef long d = dim
    if d < -nd or d >= nd:
        return False
    if d < 0:
        d += nd
    cdef int i
    outer[0] = 1
    inner[0] = 1
    for i in range(d):
        outer[0] *= cnp.PyArray_DIM(x, i)
    D[0] = cnp.PyArray_DIM(x, d)
    for i in range(d + 1, nd):
        inner[0] *= cnp.PyArray_DIM(x, i)
    return True


def softmax_fast(x, dim, bint is_log, int nthreads):
    """(log_)softmax of a plain array along an int dim, or None (full parse)."""
    cdef dlk_idx outer, D, inner
    if plain_float(x, 1) < 0 or not _split(<cnp.ndarray>x, dim, &outer, &D, &inner):
        return None
    return softmax_forward(x, outer, D, inner, is_log, nthreads)


def softmax_backward_fast(grad_out, output, dim, bint is_log, int nthreads):
    """(log_)softmax backward of plain arrays of one dtype and shape, or None."""
    cdef dlk_idx outer, D, inner
    cdef int t = plain_float(grad_out, 1)
    if t < 0 or not plain(output, t):
        return None
    cdef cnp.ndarray g = <cnp.ndarray>grad_out, y = <cnp.ndarray>output
    if not same_shape(g, y) or not _split(g, dim, &outer, &D, &inner):
        return None
    return softmax_backward(g, y, outer, D, inner, is_log, nthreads)


cdef inline int _reduction(object reduction):
    if type(reduction) is not str:
        return -1
    if reduction == "mean":
        return 1
    if reduction == "sum":
        return 2
    if reduction == "none":
        return 0
    return -1


cdef inline bint _ce_plain(object logits, object target, object weight, object ignore_index,
                           object label_smoothing):
    """2-D plain float logits, plain int64 (N,) target, no weight, int ignore_index in
    int64, label_smoothing an exact float in [0, 1]."""
    if plain_float(logits, 2) < 0 or cnp.PyArray_NDIM(<cnp.ndarray>logits) != 2:
        return False
    if weight is not None or not plain(target, cnp.NPY_INT64):
        return False
    if (cnp.PyArray_NDIM(<cnp.ndarray>target) != 1
            or cnp.PyArray_DIM(<cnp.ndarray>target, 0) != cnp.PyArray_DIM(<cnp.ndarray>logits, 0)):
        return False
    if type(ignore_index) is not int or not (-2**63 <= ignore_index < 2**63):
        return False
    return type(label_smoothing) is float and 0.0 <= <double>label_smoothing <= 1.0


def cross_entropy_fast(logits, target, weight, ignore_index, reduction, label_smoothing,
                       int nthreads):
    """cross_entropy's plain common call: (loss, bad_index), loss of the final shape
    ((N,) for none, 0-d otherwise), or None (full parse)."""
    cdef int red = _reduction(reduction)
    if red < 0 or not _ce_plain(logits, target, weight, ignore_index, label_smoothing):
        return None
    return cross_entropy_forward(logits, target, None, ignore_index, label_smoothing, red,
                                 nthreads)


def cross_entropy_backward_fast(grad_out, logits, target, weight, ignore_index, reduction,
                                label_smoothing, int nthreads):
    """cross_entropy_backward's plain common call: (grad, bad_index), or None."""
    cdef int red = _reduction(reduction)
    cdef int t
    cdef double g
    if red < 0 or not _ce_plain(logits, target, weight, ignore_index, label_smoothing):
        return None
    t = cnp.PyArray_TYPE(<cnp.ndarray>logits)
    if red == 0:
        if not plain(grad_out, t) or cnp.PyArray_NDIM(<cnp.ndarray>grad_out) != 1 or (
                cnp.PyArray_DIM(<cnp.ndarray>grad_out, 0) != cnp.PyArray_DIM(<cnp.ndarray>logits, 0)):
            return None
        return cross_entropy_backward(logits, target, None, ignore_index, label_smoothing, 0,
                                      grad_out, 0.0, nthreads)
    if type(grad_out) is float:
        g = grad_out
    elif (type(grad_out) is cnp.ndarray and cnp.PyArray_NDIM(<cnp.ndarray>grad_out) == 0
          and (cnp.PyArray_TYPE(<cnp.ndarray>grad_out) == cnp.NPY_FLOAT32
               or cnp.PyArray_TYPE(<cnp.ndarray>grad_out) == cnp.NPY_FLOAT64)
          and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>grad_out)):
        g = float(grad_out)
    else:
        return None
    return cross_entropy_backward(logits, target, None, ignore_index, label_smoothing, red,
                                  None, g, nthreads)
