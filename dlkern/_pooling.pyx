# Thin bindings of the pooling kernels (src/pooling.h). Arguments arrive validated
# and C-contiguous from dlkern.functional.pooling as 4-D NCHW arrays; these allocate
# the outputs, release the GIL and call C.
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t

from dlkern._common cimport dlk_idx, DLK_OK, DLK_ENOMEM

cnp.import_array()

cdef extern from "pooling.h" nogil:
    ctypedef struct dlk_pool2d_shape:
        dlk_idx planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw
    int dlk_max_pool2d_f32(const dlk_pool2d_shape *s, const float *x, float *out,
                           int64_t *indices, int nthreads)
    int dlk_max_pool2d_f64(const dlk_pool2d_shape *s, const double *x, double *out,
                           int64_t *indices, int nthreads)
    int dlk_max_pool2d_backward_indices_f32(const dlk_pool2d_shape *s, const float *g,
                                            const int64_t *indices, float *gx, int nthreads)
    int dlk_max_pool2d_backward_indices_f64(const dlk_pool2d_shape *s, const double *g,
                                            const int64_t *indices, double *gx, int nthreads)
    int dlk_max_pool2d_backward_f32(const dlk_pool2d_shape *s, const float *g,
                                    const float *x, float *gx, int nthreads)
    int dlk_max_pool2d_backward_f64(const dlk_pool2d_shape *s, const double *g,
                                    const double *x, double *gx, int nthreads)
    int dlk_avg_pool2d_f32(const dlk_pool2d_shape *s, const float *x, float *out,
                           int cip, dlk_idx divisor_override, int nthreads)
    int dlk_avg_pool2d_f64(const dlk_pool2d_shape *s, const double *x, double *out,
                           int cip, dlk_idx divisor_override, int nthreads)
    int dlk_avg_pool2d_backward_f32(const dlk_pool2d_shape *s, const float *g, float *gx,
                                    int cip, dlk_idx divisor_override, int nthreads)
    int dlk_avg_pool2d_backward_f64(const dlk_pool2d_shape *s, const double *g, double *gx,
                                    int cip, dlk_idx divisor_override, int nthreads)
    void dlk_adaptive_avg_pool2d_f32(const dlk_pool2d_shape *s, const float *x, float *out,
                                     int nthreads)
    void dlk_adaptive_avg_pool2d_f64(const dlk_pool2d_shape *s, const double *x,
                                     double *out, int nthreads)
    void dlk_adaptive_avg_pool2d_backward_f32(const dlk_pool2d_shape *s, const float *g,
                                              float *gx, int nthreads)
    void dlk_adaptive_avg_pool2d_backward_f64(const dlk_pool2d_shape *s, const double *g,
                                              double *gx, int nthreads)


cdef dlk_pool2d_shape _shape(geom):
    cdef dlk_pool2d_shape s
    s.planes = geom.n * geom.c
    s.h = geom.h
    s.w = geom.w
    s.oh = geom.oh
    s.ow = geom.ow
    s.kh = geom.kh
    s.kw = geom.kw
    s.sh = geom.sh
    s.sw = geom.sw
    s.ph = geom.ph
    s.pw = geom.pw
    s.dh = geom.dh
    s.dw = geom.dw
    return s


cdef _check(int status):
    if status == DLK_ENOMEM:
        raise MemoryError("pooling: out of memory for the kernel's scratch rows")


def max_pool2d(cnp.ndarray x, geom, bint with_indices, int nthreads):
    cdef dlk_pool2d_shape s = _shape(geom)
    cdef cnp.ndarray out = np.empty((geom.n, geom.c, geom.oh, geom.ow), dtype=x.dtype)
    cdef cnp.ndarray ind = None
    cdef int64_t *ip = NULL
    cdef int st
    if with_indices:
        ind = np.empty((geom.n, geom.c, geom.oh, geom.ow), dtype=np.int64)
        ip = <int64_t *>ind.data
    if x.dtype == np.float32:
        with nogil:
            st = dlk_max_pool2d_f32(&s, <float *>x.data, <float *>out.data, ip, nthreads)
    else:
        with nogil:
            st = dlk_max_pool2d_f64(&s, <double *>x.data, <double *>out.data, ip, nthreads)
    _check(st)
    return out, ind


def max_pool2d_backward(cnp.ndarray grad_out, cnp.ndarray x, cnp.ndarray indices, geom,
                        int nthreads):
    """indices may be None: the argmax is then recomputed from x."""
    cdef dlk_pool2d_shape s = _shape(geom)
    cdef cnp.ndarray gx = np.empty((geom.n, geom.c, geom.h, geom.w), dtype=x.dtype)
    cdef int st = DLK_OK
    if indices is not None:
        if x.dtype == np.float32:
            with nogil:
                st = dlk_max_pool2d_backward_indices_f32(&s, <float *>grad_out.data,
                                                         <int64_t *>indices.data,
                                                         <float *>gx.data, nthreads)
        else:
            with nogil:
                st = dlk_max_pool2d_backward_indices_f64(&s, <double *>grad_out.data,
                                                         <int64_t *>indices.data,
                                                         <double *>gx.data, nthreads)
    elif x.dtype == np.float32:
        with nogil:
            st = dlk_max_pool2d_backward_f32(&s, <float *>grad_out.data, <float *>x.data,
                                             <float *>gx.data, nthreads)
    else:
        with nogil:
            st = dlk_max_pool2d_backward_f64(&s, <double *>grad_out.data, <double *>x.data,
                                             <double *>gx.data, nthreads)
    _check(st)
    return gx


def avg_pool2d(cnp.ndarray x, geom, bint count_include_pad, divisor_override, int nthreads):
    cdef dlk_pool2d_shape s = _shape(geom)
    cdef dlk_idx div = 0 if divisor_override is None else divisor_override
    cdef cnp.ndarray out = np.empty((geom.n, geom.c, geom.oh, geom.ow), dtype=x.dtype)
    cdef int st
    if x.dtype == np.float32:
        with nogil:
            st = dlk_avg_pool2d_f32(&s, <float *>x.data, <float *>out.data,
                                    count_include_pad, div, nthreads)
    else:
        with nogil:
            st = dlk_avg_pool2d_f64(&s, <double *>x.data, <double *>out.data,
                                    count_include_pad, div, nthreads)
    _check(st)
    return out


def avg_pool2d_backward(cnp.ndarray grad_out, geom, bint count_include_pad,
                        divisor_override, int nthreads):
    cdef dlk_pool2d_shape s = _shape(geom)
    cdef dlk_idx div = 0 if divisor_override is None else divisor_override
    cdef cnp.ndarray gx = np.empty((geom.n, geom.c, geom.h, geom.w), dtype=grad_out.dtype)
    cdef int st
    if grad_out.dtype == np.float32:
        with nogil:
            st = dlk_avg_pool2d_backward_f32(&s, <float *>grad_out.data, <float *>gx.data,
                                             count_include_pad, div, nthreads)
    else:
        with nogil:
            st = dlk_avg_pool2d_backward_f64(&s, <double *>grad_out.data, <double *>gx.data,
                                             count_include_pad, div, nthreads)
    _check(st)
    return gx


def adaptive_avg_pool2d(cnp.ndarray x, geom, int nthreads):
    cdef dlk_pool2d_shape s = _shape(geom)
    cdef cnp.ndarray out = np.empty((geom.n, geom.c, geom.oh, geom.ow), dtype=x.dtype)
    if x.dtype == np.float32:
        with nogil:
            dlk_adaptive_avg_pool2d_f32(&s, <float *>x.data, <float *>out.data, nthreads)
    else:
        with nogil:
            dlk_adaptive_avg_pool2d_f64(&s, <double *>x.data, <double *>out.data, nthreads)
    return out


def adaptive_avg_pool2d_backward(cnp.ndarray grad_out, geom, int nthreads):
    cdef dlk_pool2d_shape s = _shape(geom)
    cdef cnp.ndarray gx = np.empty((geom.n, geom.c, geom.h, geom.w), dtype=grad_out.dtype)
    if grad_out.dtype == np.float32:
        with nogil:
            dlk_adaptive_avg_pool2d_backward_f32(&s, <float *>grad_out.data,
                                                 <float *>gx.data, nthreads)
    else:
        with nogil:
            dlk_adaptive_avg_pool2d_backward_f64(&s, <double *>grad_out.data,
                                                 <double *>gx.data, nthreads)
    return gx
