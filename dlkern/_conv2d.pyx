# Thin binding of the conv2d C kernels (src/conv2d.h). Arguments arrive already
# validated and C-contiguous from dlkern.functional.conv2d; this file allocates
# the outputs, releases the GIL and calls C.
import numpy as np
cimport numpy as cnp
from dlkern._common cimport dlk_idx, DLK_OK

cnp.import_array()

cdef extern from "conv2d.h":
    ctypedef struct dlk_conv2d_geom:
        dlk_idx N, C, H, W, OC, KH, KW, OH, OW, groups
        dlk_idx stride_h, stride_w, pad_h, pad_w, dil_h, dil_w
    int dlk_conv2d_direct_forward_f32(const dlk_conv2d_geom *g, const float *x,
                                       const float *w, const float *b, float *y,
                                       int nthreads) nogil
    int dlk_conv2d_direct_forward_f64(const dlk_conv2d_geom *g, const double *x,
                                       const double *w, const double *b, double *y,
                                       int nthreads) nogil
    int dlk_conv2d_direct_backward_f32(const dlk_conv2d_geom *g, const float *gy,
                                        const float *x, const float *w, float *gx,
                                        float *gw, float *gb, int parts, int nthreads) nogil
    int dlk_conv2d_direct_backward_f64(const dlk_conv2d_geom *g, const double *gy,
                                        const double *x, const double *w, double *gx,
                                        double *gw, double *gb, int parts, int nthreads) nogil
    int dlk_conv2d_im2col_forward_f32(const dlk_conv2d_geom *g, const float *x,
                                      const float *w, const float *b, float *y,
                                      int nthreads) nogil
    int dlk_conv2d_im2col_forward_f64(const dlk_conv2d_geom *g, const double *x,
                                      const double *w, const double *b, double *y,
                                      int nthreads) nogil
    int dlk_conv2d_im2col_backward_f32(const dlk_conv2d_geom *g, const float *gy,
                                       const float *x, const float *w, float *gx, float *gw,
                                       float *gb, int parts, size_t max_col_bytes,
                                       int nthreads) nogil
    int dlk_conv2d_im2col_backward_f64(const dlk_conv2d_geom *g, const double *gy,
                                       const double *x, const double *w, double *gx,
                                       double *gw, double *gb, int parts,
                                       size_t max_col_bytes, int nthreads) nogil

cdef dlk_conv2d_geom _geom(tuple xs, tuple ws, dlk_idx OH, dlk_idx OW, tuple stride,
                           tuple pad, tuple dil, int groups):
    cdef dlk_conv2d_geom g
    g.N, g.C, g.H, g.W = xs
    g.OC, _, g.KH, g.KW = ws
    g.OH = OH
    g.OW = OW
    g.groups = groups
    g.stride_h, g.stride_w = stride
    g.pad_h, g.pad_w = pad
    g.dil_h, g.dil_w = dil
    return g


def forward(cnp.ndarray x, cnp.ndarray weight, object bias, dlk_idx OH, dlk_idx OW,
            tuple stride, tuple pad, tuple dil, int groups, bint im2col, int nthreads):
    """y = conv2d(x, weight, bias); pad is (top, left). Inputs C-contiguous, one dtype."""
    cdef dlk_conv2d_geom g = _geom((<object>x).shape, (<object>weight).shape, OH, OW,
                                   stride, pad, dil, groups)
    cdef cnp.ndarray y = np.empty((g.N, g.OC, OH, OW), dtype=x.dtype)
    cdef void *b = NULL
    if bias is not None:
        b = (<cnp.ndarray>bias).data
    cdef int status = DLK_OK
    if x.dtype == np.float32:
        with nogil:
            if im2col:
                status = dlk_conv2d_im2col_forward_f32(&g, <float *>x.data,
                                                       <float *>weight.data, <float *>b,
                                                       <float *>y.data, nthreads)
            else:
                status = dlk_conv2d_direct_forward_f32(&g, <float *>x.data, <float *>weight.data,
                                              <float *>b, <float *>y.data, nthreads)
    else:
        with nogil:
            if im2col:
                status = dlk_conv2d_im2col_forward_f64(&g, <double *>x.data,
                                                       <double *>weight.data, <double *>b,
                                                       <double *>y.data, nthreads)
            else:
                status = dlk_conv2d_direct_forward_f64(&g, <double *>x.data, <double *>weight.data,
                                              <double *>b, <double *>y.data, nthreads)
    if status != DLK_OK:
        raise MemoryError("conv2d: could not allocate a work buffer")
    return y


def backward(cnp.ndarray grad_out, cnp.ndarray x, cnp.ndarray weight, tuple stride,
             tuple pad, tuple dil, int groups, bint im2col, size_t max_col_bytes,
             int nthreads, int parts=7):
    """(grad_x, grad_weight, grad_bias) of conv2d; inputs C-contiguous, one dtype.

    parts: a bitmask, 1 = grad_x, 2 = grad_weight, 4 = grad_bias (7 = all); the
    arrays not computed are returned as None."""
    cdef dlk_conv2d_geom g = _geom((<object>x).shape, (<object>weight).shape,
                                   grad_out.shape[2], grad_out.shape[3], stride, pad, dil,
                                   groups)
    cdef cnp.ndarray gx = np.empty_like(x)
    cdef cnp.ndarray gw = np.empty_like(weight)
    cdef cnp.ndarray gb = np.empty(g.OC, dtype=x.dtype)
    cdef int status = DLK_OK
    if x.dtype == np.float32:
        with nogil:
            if im2col:
                status = dlk_conv2d_im2col_backward_f32(
                    &g, <float *>grad_out.data, <float *>x.data, <float *>weight.data,
                    <float *>gx.data, <float *>gw.data, <float *>gb.data, parts,
                    max_col_bytes, nthreads)
            else:
                status = dlk_conv2d_direct_backward_f32(
                    &g, <float *>grad_out.data, <float *>x.data, <float *>weight.data,
                    <float *>gx.data, <float *>gw.data, <float *>gb.data, parts, nthreads)
    else:
        with nogil:
            if im2col:
                status = dlk_conv2d_im2col_backward_f64(
                    &g, <double *>grad_out.data, <double *>x.data,
                    <double *>weight.data, <double *>gx.data, <double *>gw.data,
                    <double *>gb.data, parts, max_col_bytes, nthreads)
            else:
                status = dlk_conv2d_direct_backward_f64(
                    &g, <double *>grad_out.data, <double *>x.data, <double *>weight.data,
                    <double *>gx.data, <double *>gw.data, <double *>gb.data, parts, nthreads)
    if status != DLK_OK:
        raise MemoryError("conv2d: could not allocate a work buffer")
    return (gx if parts & 1 else None, gw if parts & 2 else None,
            gb if parts & 4 else None)
