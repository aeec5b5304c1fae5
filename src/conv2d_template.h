/* Name mangling for the conv2d template bodies (conv2d_*_tmpl.h), which are
 * included once with T=float, SUF=f32 and once with T=double, SUF=f64 so that
 * float32 and float64 come from one source. */
#ifndef DLK_CONV2D_TEMPLATE_H
#define DLK_CONV2D_TEMPLATE_H
#include "dlk_common.h" /* DLK_VEC_BYTES */
#define DLK_CAT_(a, b) a##_##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)
#define FN(name) DLK_CAT(name, SUF)
/* Reductions keep DLK_LANES partial sums: the compiler turns the fixed-width
 * inner loop into one SIMD register without -ffast-math, and the summation order
 * is fixed by the code, not by threads. */
#define DLK_LANES 16
/* Lanes per vector of the direct kernels (conv2d_direct_tmpl.h and
 * conv2d_depthwise_tmpl.h; conv2d_direct.c sets DLK_VW to one of these around
 * each type's include). Below AVX-512 a vector is one register of the target,
 * for either type: GCC lowers a wider vector-extension type to several
 * registers, which with 16 of them spilled the register tiles and made the
 * file take 4-6x longer to compile. With AVX-512 both types keep 16 lanes, so
 * float64 vectors are two registers: that is what the kernels were tuned with
 * and the lane count fixes grad_weight's summation order (its bits). */
#define DLK_VW_F32 (DLK_VEC_BYTES / 4) /* dlk_common.h */
#if DLK_VEC_BYTES == 64
#define DLK_VW_F64 16
#else
#define DLK_VW_F64 (DLK_VEC_BYTES / 8)
#endif
#endif
