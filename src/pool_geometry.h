/* Window geometry shared by the pooling kernels (private to src/). */
#ifndef DLK_POOL_GEOMETRY_H
#define DLK_POOL_GEOMETRY_H

#include "dlk_common.h"

#define DLK_CAT_(a, b) a##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)

/* Taps a in [*lo, *hi) of a window starting at `start` with k taps spaced d apart
 * that land inside [0, n). Empty when *lo >= *hi. *lo is also what PyTorch's
 * "while (i0 < 0) i0 += d" produces, which fixes the default argmax index. */
static inline void dlk_pool_taps(dlk_idx start, dlk_idx k, dlk_idx d, dlk_idx n,
                                 dlk_idx *lo, dlk_idx *hi)
{
    dlk_idx a = start < 0 ? (-start + d - 1) / d : 0;
    dlk_idx b = start >= n ? 0 : DLK_MIN(k, (n - 1 - start) / d + 1);
    *lo = a;
    *hi = b;
}

/* Output columns [*lo, *hi) whose whole window lies inside the input row, so
 * the interior loops need no bounds checks; the rest are border columns. */
static inline void dlk_pool_interior(dlk_idx n, dlk_idx on, dlk_idx k, dlk_idx s, dlk_idx p,
                                     dlk_idx d, dlk_idx *lo, dlk_idx *hi)
{
    dlk_idx a = DLK_MIN(on, (p + s - 1) / s);
    dlk_idx last = n - 1 - (k - 1) * d + p;  /* window start + p must be <= last */
    dlk_idx b = last < 0 ? 0 : DLK_MIN(on, last / s + 1);
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

#endif
