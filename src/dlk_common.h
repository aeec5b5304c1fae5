/* Shared definitions for the dlkern C kernels.
 *
 * Kernels are pure C99 functions over raw pointers: no Python headers. Inputs are
 * C-contiguous (the Cython bindings copy when needed). Sizes are ptrdiff_t so
 * products like N*C*H*W never overflow int on large tensors. Every kernel takes
 * the thread count as an int resolved once in Python (dlkern.get_num_threads()),
 * never reading the environment itself.
 */
#ifndef DLK_COMMON_H
#define DLK_COMMON_H

#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef ptrdiff_t dlk_idx;

/* Status codes returned by kernels that can fail (allocation). The binding turns
 * them into Python exceptions; kernels never print or abort. */
enum { DLK_OK = 0, DLK_ENOMEM = 1 };

#define DLK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DLK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Number of OpenMP threads in this build's runtime (1 without OpenMP); what
 * dlkern uses when neither set_num_threads nor DLKERN_NUM_THREADS says otherwise. */
int dlk_omp_max_threads(void);
/* 1 if the library was compiled with OpenMP. */
int dlk_have_openmp(void);

#endif
