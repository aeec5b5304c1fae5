# What the OpenMP runtime this build links says about threads (see dlkern/_threads.py).
from dlkern._common cimport dlk_omp_max_threads, dlk_have_openmp


def omp_max_threads():
    """omp_get_max_threads() of dlkern's runtime (honours OMP_NUM_THREADS, threadpoolctl); 1 without OpenMP."""
    return dlk_omp_max_threads()


def have_openmp():
    """True if the C kernels were compiled with OpenMP."""
    return bool(dlk_have_openmp())
