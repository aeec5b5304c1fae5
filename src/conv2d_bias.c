/* conv2d bias add (forward) and bias gradient (backward), shared by the direct
 * and im2col algorithms. Layout as in conv2d.h; O(N*OC*OH*OW).
 * Matches dlkern/reference/conv2d.py: y + bias[None, :, None, None] and
 * grad_out.sum((0, 2, 3)). */
#include "conv2d.h"
#include "conv2d_template.h"

#define T float
#define SUF f32
#include "conv2d_bias_tmpl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "conv2d_bias_tmpl.h"
#undef T
#undef SUF
