/* Name mangling for the conv2d template bodies (conv2d_*_tmpl.h), which are
 * included once with T=float, SUF=f32 and once with T=double, SUF=f64 so that
 * float32 and float64 come from one source. */
#ifndef DLK_CONV2D_TEMPLATE_H
#define DLK_CONV2D_TEMPLATE_H
#define DLK_CAT_(a, b) a##_##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)
#define FN(name) DLK_CAT(name, SUF)
/* Reductions keep DLK_LANES partial sums: the compiler turns the fixed-width
 * inner loop into one SIMD register without -ffast-math, and the summation order
 * is fixed by the code, not by threads. */
#define DLK_LANES 16
/* Output columns per register tile of the direct forward. */
#define DLK_VW 16
#endif
