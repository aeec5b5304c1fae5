# C-level argument tests shared by the bindings' fast paths (_softmax.pyx, _batch_norm.pyx).
# A fast path accepts only the plain common call, the arrays a functional wrapper would
# pass on uncopied; anything else returns None there and takes the full Python parse, so
# every check and error message stays in one place (dlkern/_args).
cimport numpy as cnp


cdef inline bint plain(object a, int typenum):
    """a is an exact ndarray of typenum, native byte order, aligned and C-contiguous."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_IS_C_CONTIGUOUS(arr))


cdef inline int plain_float(object a, int min_ndim):
    """NPY_FLOAT32 / NPY_FLOAT64 of a plain float array with at least min_ndim
    dimensions, else -1."""
    if type(a) is not cnp.ndarray:
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or cnp.PyArray_NDIM(<cnp.ndarray>a) < min_ndim:
        return -1
    return t if plain(a, t) else -1


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int d
    if cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(b):
        return False
    for d in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d):
            return False
    return True
