# Binding of dlkern's own GEMM (src/gemm.h), for the tests and the benchmarks; the
# kernels call dlk_gemm_* from C. Rows may be strided (a column slice of a wider
# matrix is passed as is, with its row stride as the leading dimension); anything
# else is copied once.
import numpy as np
cimport numpy as cnp
from dlkern._common cimport dlk_idx, DLK_OK
from dlkern._gemm cimport (dlk_gemm_f32, dlk_gemm_f64, dlk_gemm_blocking,
                           dlk_transpose_f32, dlk_transpose_f64, dlk_gemm_rows_f32,
                           dlk_gemm_rows_f64)
from dlkern._threads import get_num_threads

cnp.import_array()


def _rows_strided(x):
    """x itself if its elements are unit-strided within rows and its row stride is a
    positive whole number of elements (at least one row long), else a C-contiguous copy."""
    item = x.itemsize
    s0, s1 = x.strides
    if x.size == 0:
        return np.ascontiguousarray(x), max(1, x.shape[1])
    if (s1 == item or x.shape[1] == 1) and s0 > 0 and s0 % item == 0 \
            and (s0 // item >= x.shape[1] or x.shape[0] == 1):
        return x, max(x.shape[1], s0 // item)
    x = np.ascontiguousarray(x)
    return x, max(1, x.shape[1])


def gemm(a, b, trans_a=False, trans_b=False, nthreads=None, alpha=1.0, beta=0.0, out=None):
    """Return op(a) @ op(b) for 2-D float32/float64 arrays of one dtype.

    With out (M, N) of the same dtype (rows may be strided, elements contiguous),
    compute out = alpha * op(a) @ op(b) + beta * out in place and return out;
    without it, beta must be 0."""
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError(f"gemm: a and b must be NumPy arrays, got {type(a).__name__} and {type(b).__name__}")
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: a and b must both be float32 or float64, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    if nthreads is None:
        nthreads = get_num_threads()
    if isinstance(nthreads, bool) or not isinstance(nthreads, int) or nthreads < 1:
        raise ValueError(f"gemm: nthreads must be a positive int or None, got {nthreads!r}")
    ta, tb = bool(trans_a), bool(trans_b)
    cdef dlk_idx M = a.shape[1] if ta else a.shape[0]
    cdef dlk_idx K = a.shape[0] if ta else a.shape[1]
    cdef dlk_idx Kb = b.shape[1] if tb else b.shape[0]
    cdef dlk_idx N = b.shape[0] if tb else b.shape[1]
    if K != Kb:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {M}x{K}, op(b) is {Kb}x{N}")
    if out is None:
        if beta != 0:
            raise ValueError(f"gemm: beta={beta} needs out (the C to accumulate into)")
        out = np.empty((M, N), dtype=a.dtype)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != a.dtype:
            raise TypeError(f"gemm: out must be a {a.dtype} array")
        if out.shape != (M, N):
            raise ValueError(f"gemm: out must have shape {(M, N)}, got {out.shape}")
        if M > 1 and N > 0 and (out.strides[0] <= 0 or out.strides[0] % out.itemsize
                                or out.strides[0] // out.itemsize < N) \
                or N > 1 and out.strides[1] != out.itemsize or not out.flags.writeable:
            raise ValueError("gemm: out must be writeable with contiguous rows")
    a, lda_ = _rows_strided(a)
    b, ldb_ = _rows_strided(b)
    cdef dlk_idx lda = lda_, ldb = ldb_
    cdef dlk_idx ldc = max(N, 1) if M <= 1 else max(out.strides[0] // out.itemsize, 1)
    cdef int nt = nthreads, ita = ta, itb = tb, status
    cdef char *ap = cnp.PyArray_BYTES(a)
    cdef char *bp = cnp.PyArray_BYTES(b)
    cdef char *cp = cnp.PyArray_BYTES(out)
    cdef double al = alpha, be = beta
    if a.dtype == np.float32:
        with nogil:
            status = dlk_gemm_f32(ita, itb, M, N, K, <float>al, <float *>ap, lda,
                                  <float *>bp, ldb, <float>be, <float *>cp, ldc, nt)
    else:
        with nogil:
            status = dlk_gemm_f64(ita, itb, M, N, K, al, <double *>ap, lda,
                                  <double *>bp, ldb, be, <double *>cp, ldc, nt)
    if status != DLK_OK:
        raise MemoryError("gemm: out of memory")
    return out


def blocking(dtype):
    """(MR, NR, KC, MC, NC): the register tile and cache blocks used for dtype."""
    cdef dlk_idx s[5]
    dlk_gemm_blocking(np.dtype(dtype) == np.float64, s)
    return tuple(int(s[i]) for i in range(5))


def transpose(a):
    """a.T as a new C-contiguous array through dlk_transpose (for the tests); a is a 2-D
    float32/float64 array whose rows may be strided."""
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64) or a.ndim != 2:
        raise TypeError("transpose: a must be a 2-D float32 or float64 array")
    a, lda_ = _rows_strided(a)
    cdef dlk_idx rows = a.shape[0], cols = a.shape[1], lds = lda_
    out = np.empty((cols, rows), dtype=a.dtype)
    cdef char *sp = cnp.PyArray_BYTES(a)
    cdef char *dp = cnp.PyArray_BYTES(out)
    cdef dlk_idx ldd = max(rows, 1)
    if a.dtype == np.float32:
        with nogil:
            dlk_transpose_f32(rows, cols, <float *>sp, lds, <float *>dp, ldd)
    else:
        with nogil:
            dlk_transpose_f64(rows, cols, <double *>sp, lds, <double *>dp, ldd)
    return out


def rows_matrix(b, boff, n, cw=0, goff=None, lo=None, hi=None):
    """The K x n matrix that dlk_gemm_rows reads from the flat array b: row k is
    b[boff[k] + col(j)] on lo[k] <= j < hi[k], zero elsewhere, col(j) = goff[j // cw] +
    j % cw (j without goff). IndexError if a valid element lies outside b."""
    K = len(boff)
    out = np.zeros((K, n), dtype=b.dtype)
    j = np.arange(n)
    col = j if goff is None else np.asarray(goff)[j // cw] + j % cw
    for k in range(K):
        a = 0 if lo is None else max(0, lo[k])
        e = n if hi is None else min(n, hi[k])
        if e > a:
            idx = boff[k] + col[a:e]
            if idx.min() < 0 or idx.max() >= b.size:
                raise IndexError(f"rows_matrix: row {k} reads outside b")
            out[k, a:e] = b[idx]
    return out


def gemm_rows(a, b, boff, n, cw=0, goff=None, lo=None, hi=None, trans_a=False, alpha=1.0,
              beta=0.0, out=None, bias=None):
    """alpha * op(a) @ B + beta * out (+ bias[:, None]) through dlk_gemm_rows (for the
    tests), B described by the flat array b and boff, cw, goff, lo, hi as rows_matrix
    says (which checks that every element read lies in b)."""
    if a.dtype not in (np.float32, np.float64) or b.dtype != a.dtype or a.ndim != 2:
        raise TypeError("gemm_rows: a 2-D float32/float64 a and a flat b of its dtype")
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b).ravel()
    rows_matrix(b, boff, n, cw, goff, lo, hi)  # bounds check
    cdef dlk_idx M = a.shape[1] if trans_a else a.shape[0]
    cdef dlk_idx K = a.shape[0] if trans_a else a.shape[1]
    if len(boff) != K:
        raise ValueError("gemm_rows: boff needs one offset per row of B")
    if out is None:
        out = np.zeros((M, n), dtype=a.dtype)
    cdef dlk_idx N = n, lda = max(a.shape[1], 1), ldc = max(n, 1), cwi = cw
    bo = np.ascontiguousarray(boff, dtype=np.intp)
    go = None if goff is None else np.ascontiguousarray(goff, dtype=np.intp)
    lo_ = None if lo is None else np.ascontiguousarray(lo, dtype=np.intp)
    hi_ = None if hi is None else np.ascontiguousarray(hi, dtype=np.intp)
    cdef const dlk_idx *bop = <const dlk_idx *>cnp.PyArray_DATA(bo)
    cdef const dlk_idx *gop = NULL if go is None else <const dlk_idx *>cnp.PyArray_DATA(go)
    cdef const dlk_idx *lop = NULL if lo_ is None else <const dlk_idx *>cnp.PyArray_DATA(lo_)
    cdef const dlk_idx *hip = NULL if hi_ is None else <const dlk_idx *>cnp.PyArray_DATA(hi_)
    cdef char *ap = cnp.PyArray_BYTES(a)
    cdef char *bp = cnp.PyArray_BYTES(b)
    cdef char *cp = cnp.PyArray_BYTES(out)
    cdef char *biasp = NULL
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=a.dtype)
        if bias.shape != (M,):
            raise ValueError("gemm_rows: bias needs one value per row of C")
        biasp = cnp.PyArray_BYTES(bias)
    cdef int ta = trans_a, status
    cdef double al = alpha, be = beta
    if a.dtype == np.float32:
        with nogil:
            status = dlk_gemm_rows_f32(ta, M, N, K, <float>al, <float *>ap, lda, <float *>bp,
                                       bop, cwi, gop, lop, hip, <float>be, <float *>biasp,
                                       <float *>cp, ldc)
    else:
        with nogil:
            status = dlk_gemm_rows_f64(ta, M, N, K, al, <double *>ap, lda, <double *>bp,
                                       bop, cwi, gop, lop, hip, be, <double *>biasp,
                                       <double *>cp, ldc)
    if status != DLK_OK:
        raise MemoryError("gemm_rows: out of memory")
    return out
