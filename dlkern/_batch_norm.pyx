# Thin binding of src/batch_norm.c: receives validated, C-contiguous arrays of one
# dtype (dlkern/functional/batch_norm.py makes sure), allocates the outputs,
# releases the GIL and calls the kernel. None for an optional array means NULL.
import numpy as np
cimport numpy as cnp
from dlkern._common cimport dlk_idx, DLK_OK
from dlkern._fast_args cimport plain, plain_float, same_shape

cnp.import_array()

cdef extern from "batch_norm.h":
    int dlk_batch_norm_train_f32(const float *x, dlk_idx N, dlk_idx C, dlk_idx S,
                                 const float *weight, const float *bias,
                                 float *running_mean, float *running_var,
                                 double momentum, double eps, float *y, int nthreads) nogil
    int dlk_batch_norm_train_f64(const double *x, dlk_idx N, dlk_idx C, dlk_idx S,
                                 const double *weight, const double *bias,
                                 double *running_mean, double *running_var,
                                 double momentum, double eps, double *y, int nthreads) nogil
    int dlk_batch_norm_eval_f32(const float *x, dlk_idx N, dlk_idx C, dlk_idx S,
                                const float *weight, const float *bias,
                                const float *running_mean, const float *running_var,
                                double eps, float *y, int nthreads) nogil
    int dlk_batch_norm_eval_f64(const double *x, dlk_idx N, dlk_idx C, dlk_idx S,
                                const double *weight, const double *bias,
                                const double *running_mean, const double *running_var,
                                double eps, double *y, int nthreads) nogil
    int dlk_batch_norm_backward_f32(const float *grad_out, const float *x,
                                    dlk_idx N, dlk_idx C, dlk_idx S, const float *weight,
                                    const float *running_mean, const float *running_var,
                                    int training, double eps, float *grad_x,
                                    float *grad_weight, float *grad_bias, int nthreads) nogil
    int dlk_batch_norm_backward_f64(const double *grad_out, const double *x,
                                    dlk_idx N, dlk_idx C, dlk_idx S, const double *weight,
                                    const double *running_mean, const double *running_var,
                                    int training, double eps, double *grad_x,
                                    double *grad_weight, double *grad_bias, int nthreads) nogil


cdef inline char *_ptr(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return <char *>(<cnp.ndarray>a).data


cdef _check(int status, str fn):
    if status != DLK_OK:
        raise MemoryError(f"{fn}: out of memory for the kernel's scratch buffers")


# ---- the fast path: the plain common call, accepted with C-level tests only ----
# A call is accepted here only when dlkern/_args/batch_norm.py would accept it AND
# dlkern/functional/batch_norm.py would pass the arrays on uncopied: exact ndarrays of one
# native float dtype, aligned and C-contiguous, the right shapes, Python bool/float
# flags. Anything else (including every call that raises) returns None and takes the
# full parse, so every check and error message stays in one place. Why: parsing in
# Python cost ~3.5 us of a ~5.6 us tiny forward call.
# The array tests shared with the other bindings are in dlkern/_fast_args.pxd.

cdef inline bint _channel(object a, int typenum, dlk_idx C, bint updated):
    """a is a plain (C,) array (writeable when updated in place), or None."""
    if a is None:
        return True
    if not plain(a, typenum):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_DIM(arr, 0) == C
            and (not updated or cnp.PyArray_ISWRITEABLE(arr)))


cdef inline bint _stats_ok(object rm, object rv, int typenum, dlk_idx C, bint training,
                           bint updated):
    """Both running statistics given (plain, writeable when updated in place), or both
    None in training."""
    if rm is None and rv is None:
        return training
    if rm is None or rv is None:
        return False
    return _channel(rm, typenum, C, updated) and _channel(rv, typenum, C, updated)


cdef inline bint _flag_ok(object training):
    return training is True or training is False


cdef inline bint _eps_ok(object eps):
    # a Python float, > 0 and finite (nan fails both comparisons)
    return type(eps) is float and 0.0 < <double>eps < float("inf")


cdef inline bint _x_ok(object x, int *typenum, dlk_idx *N, dlk_idx *C, dlk_idx *S):
    """x is a plain float32/float64 array of at least 2 dims; its (N, C, S)."""
    cdef int t = plain_float(x, 2)
    if t < 0:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>x
    cdef int d
    typenum[0] = t
    N[0] = cnp.PyArray_DIM(arr, 0)
    C[0] = cnp.PyArray_DIM(arr, 1)
    S[0] = 1
    for d in range(2, cnp.PyArray_NDIM(arr)):
        S[0] *= cnp.PyArray_DIM(arr, d)  # no overflow: the array exists in memory
    return True


def batch_norm_fast(x, running_mean, running_var, weight, bias, training, momentum, eps,
                    int nthreads):
    """batch_norm's plain common call, or None when the full parse must run."""
    cdef int t
    cdef dlk_idx N, C, S
    if not (_x_ok(x, &t, &N, &C, &S) and _flag_ok(training) and _eps_ok(eps)
            and type(momentum) is float and 0.0 <= <double>momentum <= 1.0
            and _channel(weight, t, C, False) and _channel(bias, t, C, False)
            and _stats_ok(running_mean, running_var, t, C, training, training)
            and not (training and N * S < 2)):
        return None
    return batch_norm(x, N, C, S, weight, bias, running_mean, running_var, training,
                      momentum, eps, nthreads)


def batch_norm_backward_fast(grad_out, x, weight, running_mean, running_var, training, eps,
                             int nthreads):
    """batch_norm_backward's plain common call, or None when the full parse must run."""
    cdef int t
    cdef dlk_idx N, C, S
    if not (_x_ok(x, &t, &N, &C, &S) and plain(grad_out, t) and _flag_ok(training)
            and _eps_ok(eps) and _channel(weight, t, C, False)
            and _stats_ok(running_mean, running_var, t, C, training, False)
            and not (training and N * S < 2)):
        return None
    cdef cnp.ndarray g = <cnp.ndarray>grad_out, xa = <cnp.ndarray>x
    if not same_shape(g, xa):
        return None
    if training:  # the statistics come from x: running ones are checked, not passed
        running_mean = running_var = None
    return batch_norm_backward(g, xa, N, C, S, weight, running_mean, running_var, training,
                               eps, nthreads)


def batch_norm(cnp.ndarray x, dlk_idx N, dlk_idx C, dlk_idx S, weight, bias,
               running_mean, running_var, bint training, double momentum, double eps,
               int nthreads):
    """y for x seen as (N, C, S); running stats (if given) updated in place in training."""
    cdef cnp.ndarray y = cnp.PyArray_EMPTY(x.ndim, x.shape, cnp.PyArray_TYPE(x), 0)
    cdef char *px = x.data
    cdef char *py = y.data
    cdef char *pw = _ptr(weight)
    cdef char *pb = _ptr(bias)
    cdef char *pm = _ptr(running_mean)
    cdef char *pv = _ptr(running_var)
    cdef int status
    cdef bint single = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    with nogil:
        if training and single:
            status = dlk_batch_norm_train_f32(<float *>px, N, C, S, <float *>pw, <float *>pb,
                                              <float *>pm, <float *>pv, momentum, eps,
                                              <float *>py, nthreads)
        elif training:
            status = dlk_batch_norm_train_f64(<double *>px, N, C, S, <double *>pw,
                                              <double *>pb, <double *>pm, <double *>pv,
                                              momentum, eps, <double *>py, nthreads)
        elif single:
            status = dlk_batch_norm_eval_f32(<float *>px, N, C, S, <float *>pw, <float *>pb,
                                             <float *>pm, <float *>pv, eps, <float *>py,
                                             nthreads)
        else:
            status = dlk_batch_norm_eval_f64(<double *>px, N, C, S, <double *>pw,
                                             <double *>pb, <double *>pm, <double *>pv, eps,
                                             <double *>py, nthreads)
    _check(status, "batch_norm")
    return y


def batch_norm_backward(cnp.ndarray grad_out, cnp.ndarray x, dlk_idx N, dlk_idx C,
                        dlk_idx S, weight, running_mean, running_var, bint training,
                        double eps, int nthreads):
    """(grad_x, grad_weight, grad_bias) for x seen as (N, C, S)."""
    cdef cnp.npy_intp nc = C
    cdef cnp.ndarray gx = cnp.PyArray_EMPTY(x.ndim, x.shape, cnp.PyArray_TYPE(x), 0)
    cdef cnp.ndarray gw = cnp.PyArray_EMPTY(1, &nc, cnp.PyArray_TYPE(x), 0)
    cdef cnp.ndarray gb = cnp.PyArray_EMPTY(1, &nc, cnp.PyArray_TYPE(x), 0)
    cdef char *pg = grad_out.data
    cdef char *px = x.data
    cdef char *pgx = gx.data
    cdef char *pgw = gw.data
    cdef char *pgb = gb.data
    cdef char *pw = _ptr(weight)
    cdef char *pm = _ptr(running_mean)
    cdef char *pv = _ptr(running_var)
    cdef int status
    cdef bint single = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    with nogil:
        if single:
            status = dlk_batch_norm_backward_f32(<float *>pg, <float *>px, N, C, S,
                                                 <float *>pw, <float *>pm, <float *>pv,
                                                 training, eps, <float *>pgx, <float *>pgw,
                                                 <float *>pgb, nthreads)
        else:
            status = dlk_batch_norm_backward_f64(<double *>pg, <double *>px, N, C, S,
                                                 <double *>pw, <double *>pm, <double *>pv,
                                                 training, eps, <double *>pgx,
                                                 <double *>pgw, <double *>pgb, nthreads)
    _check(status, "batch_norm_backward")
    return gx, gw, gb
