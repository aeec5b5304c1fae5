/* max_pool2d forward and backward, float32 and float64 from one template body
 * (max_pool2d_impl.h, included once per type).
 *
 * Layout: NCHW planes, see pooling.h. Complexity: forward O(P*OH*OW*kh*kw),
 * backward O(P*(H*W + OH*OW)) with saved indices, plus the forward's cost when it
 * recomputes the argmax. Matches torch.nn.functional.max_pool2d (CPU, contiguous
 * NCHW path): strict ">" in row-major window order so the first maximum wins,
 * NaN always replaces the running maximum, padding never wins (-inf start).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pooling.h"
#include "pool_geometry.h"

#define T float
#define SUF _f32
#include "max_pool2d_impl.h"
#undef T
#undef SUF

#define T double
#define SUF _f64
#include "max_pool2d_impl.h"
#undef T
#undef SUF
