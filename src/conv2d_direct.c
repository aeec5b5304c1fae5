/* Direct conv2d (see conv2d.h for layout and semantics).
 *
 * Forward: one OpenMP task per (sample, group); its input planes are copied
 * into a zero-padded, column-phase-split per-thread buffer (zeroed once per
 * thread), then output tiles of up to 8 channels x 16-32 columns x 1-8 rows
 * (12-24 accumulators) sum over one flat loop of (input channel, tap) offsets:
 * each input vector loaded feeds up to 8 FMAs, each weight broadcast up to 16;
 * the weights are packed once per call so that a tile's weights for one
 * (input channel, tap) are contiguous.
 * Depthwise 3x3 at stride 1 (one channel per group) has its own row-sliding
 * tile (conv2d_depthwise_tmpl.h).
 * If the padded planes of a group exceed DLK_DIRECT_PAD_BYTES, a plane-axpy
 * forward without copies runs instead (valid ranges computed per tap, so
 * border reads never leave x).
 * Backward: grad_x as the forward of grad_out with the flipped kernel when the
 * stride is 1, else one task per input plane (n, c) (scatter-add, owned plane);
 * grad_weight one task per (fixed chunk of samples, group), register tiles of
 * up to 4 output channels x 6 taps (2 x 8, 1 x 12) per pass over grad_out,
 * partial sums per chunk added in chunk order; grad_bias one task per oc.
 * Complexity O(N*OC*OH*OW*(C/groups)*KH*KW) forward, twice that backward;
 * work buffers are per thread or per call (DLK_ENOMEM on failure). Matches
 * dlkern/reference/conv2d.py.
 */
#include "conv2d.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv2d_template.h"

/* Per-thread budget for the zero-padded input planes of one (sample, group) in
 * the register-blocked forward; beyond it the unpadded plane-axpy forward runs
 * instead (slower, but allocates nothing). */
#ifndef DLK_DIRECT_PAD_BYTES
#define DLK_DIRECT_PAD_BYTES ((size_t)16 << 20)
#endif

/* Vectors of DLK_VW columns per register tile of the blocked forward: two (8
 * channels x 2 vectors = 16 accumulators, 10 loads per 16 FMAs) when the row
 * is wide enough to fill them, else one (narrow rows would waste lanes). */
#ifndef DLK_DW_ROWS
#define DLK_DW_ROWS 8
#endif
static int direct_tile_cols(dlk_idx OW) { return OW >= 2 * DLK_VW - DLK_VW / 2 ? 2 : 1; }

#define T float
#define TI uint32_t
#define SUF f32
#include "conv2d_direct_tmpl.h"
#undef T
#undef TI
#undef SUF

#define T double
#define TI uint64_t
#define SUF f64
#include "conv2d_direct_tmpl.h"
#undef T
#undef TI
#undef SUF
