"""One thread policy for every kernel: dlkern.set_num_threads(n) / DLKERN_NUM_THREADS.

The count is resolved here, in Python, and passed down to each C kernel as an int
(as scikit-learn does). Without a setting, dlkern follows the OpenMP runtime's
omp_get_max_threads(), which honours OMP_NUM_THREADS and threadpoolctl limits.
set_num_threads also limits the BLAS pool behind the GEMM-based kernels, so
dlkern's two pools (OpenMP and BLAS) use the same number of cores.
"""
import os
from contextlib import contextmanager

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


_blas_libs = None  # threadpoolctl's controllers of the loaded BLAS libraries


def _one_blas_thread():
    """Set every loaded BLAS to one thread; returns what _restore_blas_threads needs.

    Kernels that spread one-thread GEMMs over their own OpenMP threads call this
    around the C call: OpenBLAS rounds differently for different thread splits, so
    one-thread GEMMs on fixed tiles are what makes results identical for any thread
    count, and the two pools never compete for the cores. It talks to threadpoolctl's
    per-library controllers directly (a few us; ThreadpoolController.limit() costs
    ~4x more, which matters for small GEMMs). The library list is taken once, on the
    first call; scipy's BLAS, the one the kernels call, is loaded by then (the calling
    binding cimports scipy.linalg.cython_blas)."""
    global _blas_libs
    if _blas_libs is None:
        from threadpoolctl import ThreadpoolController

        _blas_libs = ThreadpoolController().select(user_api="blas").lib_controllers
    saved = [lib.get_num_threads() for lib in _blas_libs]
    for lib in _blas_libs:
        lib.set_num_threads(1)
    return saved


def _restore_blas_threads(saved):
    for lib, n in zip(_blas_libs, saved):
        lib.set_num_threads(n)


@contextmanager
def one_thread_blas():
    """BLAS on one thread inside the block (see _one_blas_thread), restored after."""
    saved = _one_blas_thread()
    try:
        yield
    finally:
        _restore_blas_threads(saved)
