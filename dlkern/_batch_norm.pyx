# Thin binding of src/batch_norm.c: receives validated, C-contiguous arrays of one
# dtype (dlkern/functional/batch_norm.py makes sure), allocates the outputs,
# releases the GIL and calls the kernel. None for an optional array means NULL.
import numpy as np
cimport numpy as cnp
from dlkern._common cimport dlk_idx, DLK_OK

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


def batch_norm(cnp.ndarray x, dlk_idx N, dlk_idx C, dlk_idx S, weight, bias,
               running_mean, running_var, bint training, double momentum, double eps,
               int nthreads):
    """y for x seen as (N, C, S); running stats (if given) updated in place in training."""
    cdef cnp.ndarray y = np.empty_like(x)
    cdef char *px = x.data
    cdef char *py = y.data
    cdef char *pw = _ptr(weight)
    cdef char *pb = _ptr(bias)
    cdef char *pm = _ptr(running_mean)
    cdef char *pv = _ptr(running_var)
    cdef int status
    cdef bint single = x.dtype == np.float32
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
    cdef cnp.ndarray gx = np.empty_like(x)
    cdef cnp.ndarray gw = np.empty(C, dtype=x.dtype)
    cdef cnp.ndarray gb = np.empty(C, dtype=x.dtype)
    cdef char *pg = grad_out.data
    cdef char *px = x.data
    cdef char *pgx = gx.data
    cdef char *pgw = gw.data
    cdef char *pgb = gb.data
    cdef char *pw = _ptr(weight)
    cdef char *pm = _ptr(running_mean)
    cdef char *pv = _ptr(running_var)
    cdef int status
    cdef bint single = x.dtype == np.float32
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
