/* adaptive_avg_pool2d forward and backward, float32 and float64 from one template
 * body (adaptive_avg_pool2d_impl.h, included once per type).
 *
 * Layout: NCHW planes, see pooling.h. Complexity: O(P*H*W) when the windows do
 * not overlap (OH divides H), at most O(P*H*W*2*2) otherwise. Matches
 * torch.nn.functional.adaptive_avg_pool2d: windows [floor(i*H/OH),
 * ceil((i+1)*H/OH)), each summed row-major and divided by its height, then its
 * width. Output 1x1 (global average pooling) takes a contiguous fast path.
 */
#include <string.h>

#include "pooling.h"
#include "pool_geometry.h"

static inline dlk_idx ada_start(dlk_idx i, dlk_idx on, dlk_idx n) { return (i * n) / on; }
static inline dlk_idx ada_end(dlk_idx i, dlk_idx on, dlk_idx n)
{
    return ((i + 1) * n + on - 1) / on;
}

#define T float
#define SUF _f32
#include "adaptive_avg_pool2d_impl.h"
#undef T
#undef SUF

#define T double
#define SUF _f64
#include "adaptive_avg_pool2d_impl.h"
#undef T
#undef SUF
