/* avg_pool2d forward and backward, float32 and float64 from one template body
 * (avg_pool2d_impl.h, included once per type).
 *
 * Layout: NCHW planes, see pooling.h. Complexity: O(P*OH*OW*kh*kw) both ways
 * (plus O(P*H*W) to clear grad_x). Matches torch.nn.functional.avg_pool2d (CPU,
 * contiguous NCHW path): each window is summed row-major from zero and divided
 * once by the divisor; with count_include_pad the divisor is the window clipped
 * to the padded extent [-p, H + p), so the cells that only ceil_mode appended
 * past the right padding are not counted (where frameworks disagree).
 * 3x3 windows at stride 2 with padding 1 on even planes have a path of their own
 * that reads x in place and writes grad_x once (avg_pool2d_k3s2_impl.h).
 */
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

/* Clipped extents of one window along one axis: [*v0, *v1) inside the input and
 * *padded, the window's length within the padded extent [-p, n + p). */
static inline void avg_extent(dlk_idx start, dlk_idx k, dlk_idx n, dlk_idx p,
                              dlk_idx *v0, dlk_idx *v1, dlk_idx *padded)
{
    dlk_idx end = DLK_MIN(start + k, n + p);
    *padded = end - start;
    *v0 = DLK_MAX(start, 0);
    *v1 = DLK_MIN(end, n);
}

#define T float
#define TI int32_t  /* same-width integer: vector shuffle masks */
#define SUF _f32
#include "avg_pool2d_impl.h"
#undef T
#undef TI
#undef SUF

#define T double
#define TI int64_t
#define SUF _f64
#include "avg_pool2d_impl.h"
#undef T
#undef TI
#undef SUF
