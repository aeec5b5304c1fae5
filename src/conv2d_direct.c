/* Direct conv2d (see conv2d.h for layout and semantics).
 *
 * Forward: one OpenMP task per output plane (n, oc); for each input channel of
 * its group and each tap (kh, kw), the valid output rectangle gets a scaled,
 * shifted input plane added (an axpy over output width, SIMD over ow). No
 * padded copy of x is made: the valid range of each tap is computed instead,
 * so border reads never leave the input.
 * Backward: grad_x one task per input plane (n, c) (scatter-add, owned plane),
 * grad_weight one task per (oc, c) (dot products over n, oh, ow in fixed order),
 * grad_bias one task per oc.
 * Complexity O(N*OC*OH*OW*(C/groups)*KH*KW) forward, twice that backward; no
 * allocation. Matches dlkern/reference/conv2d.py.
 */
#include "conv2d.h"
#include "conv2d_template.h"

#define T float
#define SUF f32
#include "conv2d_direct_tmpl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "conv2d_direct_tmpl.h"
#undef T
#undef SUF
