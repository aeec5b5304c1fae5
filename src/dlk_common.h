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

/* Bytes of one vector register of the ISA a kernel is compiled for (a portable build
 * compiles every kernel once per level): 64 with AVX-512, 32 with AVX/AVX2, 16
 * otherwise (SSE2, the x86-64 baseline). The GEMM, conv2d and pooling kernels size
 * their vectors and register tiles from it: a GCC vector wider than the registers is
 * split, its tiles spill and its shuffles become long sequences. */
#if defined(__AVX512F__)
#define DLK_VEC_BYTES 64
#elif defined(__AVX__)
#define DLK_VEC_BYTES 32
#else
#define DLK_VEC_BYTES 16
#endif

#define DLK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DLK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Number of OpenMP threads in this build's runtime (1 without OpenMP); what
 * dlkern uses when neither set_num_threads nor DLKERN_NUM_THREADS says otherwise. */
int dlk_omp_max_threads(void);
/* 1 if the library was compiled with OpenMP. */
int dlk_have_openmp(void);

#endif
