"""One thread policy for every kernel: dlkern.set_num_threads(n) / DLKERN_NUM_THREADS.

The count is resolved here, in Python, and passed down to each C kernel as an int
(as scikit-learn does). Without a setting, dlkern follows the OpenMP runtime's
omp_get_max_threads(), which honours OMP_NUM_THREADS and threadpoolctl limits.
The kernels call no BLAS (GEMMs run on dlkern's own, src/gemm.c, in the same
OpenMP pool); set_num_threads also limits the BLAS pool of NumPy, so the NumPy
reference backend and NumPy code between the kernels use the same number of cores.
"""
import os

from dlkern import _openmp

_num_threads = None  # set by set_num_threads or DLKERN_NUM_THREADS; None = follow OpenMP
_blas_limiter = None  # threadpoolctl limiter kept alive while a limit is in force


def _check_count(n, where):
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"{where}: expected a positive int, got {n!r}")
    n = int(n.__index__()) if not isinstance(n, int) else n
    if n < 1:
        raise ValueError(f"{where}: expected a positive int, got {n}")
    return n


def set_num_threads(n):
    """Use n threads in every dlkern kernel (OpenMP) and in the BLAS it calls.

    set_num_threads(None) returns to the default (OpenMP's omp_get_max_threads()).
    """
    global _num_threads, _blas_limiter
    if n is None:
        _num_threads = None
        if _blas_limiter is not None:
            _blas_limiter.restore_original_limits()
            _blas_limiter = None
        return
    n = _check_count(n, "set_num_threads: n")
    from threadpoolctl import threadpool_limits

    if _blas_limiter is not None:
        _blas_limiter.restore_original_limits()
    _blas_limiter = threadpool_limits(limits=n, user_api="blas")
    _num_threads = n


def get_num_threads():
    """The number of threads dlkern's kernels will use for the next call."""
    if _num_threads is not None:
        return _num_threads
    return max(1, _openmp.omp_max_threads())


def _init_from_environment():
    value = os.environ.get("DLKERN_NUM_THREADS", "").strip()
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"DLKERN_NUM_THREADS must be a positive int, got {value!r}") from None
    set_num_threads(n)


def have_openmp():
    """True if the C kernels were built with OpenMP (otherwise they run on one thread)."""
    return _openmp.have_openmp()
