# Declarations of src/dlk_common.h for the Cython bindings.
cdef extern from "dlk_common.h":
    ctypedef Py_ssize_t dlk_idx
    enum:
        DLK_OK
        DLK_ENOMEM
    int dlk_omp_max_threads() nogil
    int dlk_have_openmp() nogil
