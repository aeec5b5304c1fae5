/* Window geometry and scratch shared by the pooling kernels (private to src/). */
#ifndef DLK_POOL_GEOMETRY_H
#define DLK_POOL_GEOMETRY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlk_common.h"
#include "pooling.h"

/* Output rows are computed in blocks of this many columns (one 64-byte vector of
 * float, a whole number of narrower vectors), into scratch rows rounded up to a
 * whole number of blocks, so the inner loops have no scalar remainder (whose
 * data-dependent branches cost more than the whole vector loop on random data). */
#define DLK_POOL_BLOCK 16

/* Forces inlining of the small loop bodies specialized on constant geometry. */
#if defined(__GNUC__)
#define DLK_INLINE inline __attribute__((always_inline))
#else
#define DLK_INLINE inline
#endif

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

/* Per-call column geometry, read by all threads. */
typedef struct {
    dlk_idx owr;      /* ow rounded up to DLK_POOL_BLOCK */
    dlk_idx len;      /* padded input row pw + W + right pad, long enough for every block */
    dlk_idx half;     /* len / 2 rounded up: length of the even/odd split rows */
    dlk_idx rows;     /* prepared plane's rows: ph + H + bottom pad, so that every
                       * window row of every output row lies inside it */
    int64_t *iw0;     /* [owr] first in-range column of window j (max: default argmax) */
    dlk_idx *wv;      /* [owr] window width clipped to [0, W) (avg) */
    dlk_idx *wp;      /* [owr] window width clipped to [-pw, W + pw) (avg) */
} dlk_pool_scratch;

static inline int dlk_pool_scratch_init(dlk_pool_scratch *g, const dlk_pool2d_shape *s,
                                        dlk_idx dw)
{
    g->owr = (s->ow + DLK_POOL_BLOCK - 1) / DLK_POOL_BLOCK * DLK_POOL_BLOCK;
    g->len = DLK_MAX(s->pw + s->w, (g->owr - 1) * s->sw + (s->kw - 1) * dw + 1);
    g->len += g->len & 1;  /* even, so the even/odd split reads inside the row */
    g->half = g->len / 2;
    g->rows = DLK_MAX(s->ph + s->h, (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1);
    g->iw0 = malloc((size_t)g->owr * sizeof(int64_t));
    g->wv = malloc((size_t)g->owr * sizeof(dlk_idx));
    g->wp = malloc((size_t)g->owr * sizeof(dlk_idx));
    if (!g->iw0 || !g->wv || !g->wp) {
        free(g->iw0);
        free(g->wv);
        free(g->wp);
        return DLK_ENOMEM;
    }
    for (dlk_idx j = 0; j < g->owr; j++) {
        const dlk_idx ws = j * s->sw - s->pw;
        dlk_idx lo, hi;
        dlk_pool_taps(ws, s->kw, dw, s->w, &lo, &hi);
        g->iw0[j] = ws + lo * dw;
        /* avg: PyTorch's window end is clipped to the padded extent first */
        const dlk_idx end = DLK_MIN(ws + s->kw, s->w + s->pw);
        g->wp[j] = j < s->ow ? end - ws : 1;
        g->wv[j] = j < s->ow ? DLK_MIN(end, s->w) - DLK_MAX(ws, 0) : 1;
    }
    return DLK_OK;
}

/* Row xr of W values into the split padded row (even padded columns at ev, odd at
 * od; padded column q = iw + pw): the cells outside keep their padding. The split
 * and merge themselves are templates (pool_vec_impl.h). */
#define DLK_POOL_SPLIT_ROW(SUF, xr, W, pw, ev, od)                                   \
    do {                                                                             \
        if ((pw) % 2 == 0)                                                           \
            DLK_CAT(dlk_pool_split, SUF)(xr, W, (ev) + (pw) / 2, (od) + (pw) / 2);   \
        else                                                                         \
            DLK_CAT(dlk_pool_split, SUF)(xr, W, (od) + ((pw) - 1) / 2,               \
                                         (ev) + ((pw) + 1) / 2);                     \
    } while (0)

/* Split padded row (ev, od) back into the W values of row xr (inverse of
 * DLK_POOL_SPLIT_ROW). */
#define DLK_POOL_MERGE_ROW(SUF, ev, od, W, pw, xr)                                   \
    do {                                                                             \
        if ((pw) % 2 == 0)                                                           \
            DLK_CAT(dlk_pool_merge, SUF)((ev) + (pw) / 2, (od) + (pw) / 2, W, xr);   \
        else                                                                         \
            DLK_CAT(dlk_pool_merge, SUF)((od) + ((pw) - 1) / 2,                      \
                                         (ev) + ((pw) + 1) / 2, W, xr);              \
    } while (0)

/* How rows reach the tap loops: read in place (no padding needed and the
 * rounded-up blocks stay inside the row), or prepared once per plane in a scratch
 * plane with padding (-inf for max, zeros for avg), split into even/odd columns
 * for stride 2 with kw = 3 (see dlk_pool_prep in pool_vec_impl.h). */
enum { DLK_POOL_DIRECT = 0, DLK_POOL_PADDED = 1, DLK_POOL_SPLIT = 2 };

static inline int dlk_pool_mode(const dlk_pool2d_shape *s, const dlk_pool_scratch *g)
{
    if (s->dw == 1 && s->sw == 2 && s->kw == 3)
        return DLK_POOL_SPLIT;
    if (s->pw == 0 && (g->owr - 1) * s->sw + (s->kw - 1) * s->dw < s->w &&
        g->rows == s->h)
        return DLK_POOL_DIRECT;
    return DLK_POOL_PADDED;
}

/* Geometries with a fused, explicit-vector plane loop (dilation 1): 1 = 3x3
 * stride 2 (split rows), 2 = 2x2 stride 2, 3 = 3x3 stride 1, 4 = 2x2 stride 1;
 * 0 if none. */
static inline int dlk_pool_fused_kind(const dlk_pool2d_shape *s)
{
    if (s->dh != 1 || s->dw != 1)
        return 0;
    if (s->kh == 3 && s->kw == 3 && s->sw == 2)
        return 1;
    if (s->kh == 2 && s->kw == 2 && s->sw == 2)
        return 2;
    if (s->kh == 3 && s->kw == 3 && s->sw == 1)
        return 3;
    if (s->kh == 2 && s->kw == 2 && s->sw == 1)
        return 4;
    return 0;
}

static inline void dlk_pool_scratch_free(dlk_pool_scratch *g)
{
    free(g->iw0);
    free(g->wv);
    free(g->wp);
}

#endif
