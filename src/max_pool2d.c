/* max_pool2d forward and backward, float32 and float64 from one template body
 * (max_pool2d_impl.h, included once per type).
 *
 * Layout: NCHW planes, see pooling.h. Complexity: forward O(P*OH*OW*kh*kw),
 * backward O(P*(H*W + OH*OW)) with saved indices, plus the forward's cost when it
 * recomputes the argmax. Matches torch.nn.functional.max_pool2d (CPU, contiguous
 * NCHW path): strict ">" in row-major window order so the first maximum wins,
 * NaN always replaces the running maximum, padding never wins (-inf start).
 * 3x3 windows at stride 2 with padding 1 on even planes have a path of their own
 * that reads x in place and writes grad_x once (max_pool2d_k3s2_impl.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pooling.h"
#include "pool_geometry.h"

/* The vector helpers pass vectors by value, some wider than the ISA's registers
 * (int64 lanes for a float vector); they are static and always inlined, so no ABI
 * boundary is crossed. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define T float
#define TI int32_t  /* same-width integer: vector compare masks */
#define SUF _f32
#include "max_pool2d_impl.h"
#undef T
#undef TI
#undef SUF

#define T double
#define TI int64_t
#define SUF _f64
#include "max_pool2d_impl.h"
#undef T
#undef TI
#undef SUF
