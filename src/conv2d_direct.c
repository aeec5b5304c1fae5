/* Direct conv2d (see conv2d.h for layout and semantics).
 *
 * Forward: one OpenMP task per (sample, group); its input planes are copied
 * into a zero-padded, column-phase-split per-thread buffer (zeroed once per
 * thread), then output tiles (with AVX-512: up to 8 channels x 16-32 columns x
 * 1-8 rows, 12-24 accumulators; with 16 registers: up to 6 channels x 1 vector
 * x 2-8 rows, 8-12 accumulators; see below) sum over one flat loop of (input
 * channel, tap) offsets: each input vector loaded feeds up to 8 FMAs, each
 * weight broadcast up to 16; the weights are packed once per call so that a
 * tile's weights for one (input channel, tap) are contiguous.
 * Depthwise 3x3 at stride 1 (one channel per group) has its own row-sliding
 * tile (conv2d_depthwise_tmpl.h).
 * If the padded planes of a group exceed DLK_DIRECT_PAD_BYTES, a plane-axpy
 * forward without copies runs instead (valid ranges computed per tap, so
 * border reads never leave x).
 * Backward: grad_x as the forward of grad_out with the flipped kernel when the
 * stride is 1, else one task per input plane (n, c) (scatter-add, owned plane);
 * grad_weight one task per (fixed chunk of samples, group), register tiles of
 * up to 4 output channels x 6 taps (2 x 8, 1 x 12; below AVX-512 3 x 4, 2 x 6,
 * 1 x 12) per pass over grad_out,
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

/* Register tiles, sized per ISA (as gemm.c's): vectors are one register below
 * AVX-512 (DLK_VW_F32 / DLK_VW_F64 in conv2d_template.h), and a tile's
 * accumulators plus the operands it holds must fit the target's vector
 * registers, 32 with AVX-512, 16 with AVX2 or SSE (whose FMA-less baseline also
 * needs a scratch register for each product).
 * Forward (direct_tile): DLK_DIRECT_OCB output channels at most per tile, the
 * block size the weights are packed in. With AVX-512, 8 channels x 2 vectors
 * (16 accumulators, 10 loads per 16 FMAs) when the row is wide enough to fill
 * them, else 8 x 1 vector x 2 rows. Below it, 6 channels x 1 vector x 2 rows
 * (12 accumulators + 2 input vectors + 1 broadcast weight): one vector per tile
 * row, since with 8 (or 4) lanes whole rows are few vectors and a second
 * vector per tile row would mostly waste lanes; fewer channels take more rows. */
#if defined(__AVX512F__)
#define DLK_DIRECT_OCB 8
#ifndef DLK_DW_ROWS
#define DLK_DW_ROWS 8
#endif
#else
#define DLK_DIRECT_OCB 6
/* rows of the 4-, 3- and 2-channel tiles: accumulators + input vectors + the
 * broadcast weight (+ the product's scratch register without FMA) <= 16 */
#if defined(__FMA__)
#define DLK_DIRECT_ROWS4 3
#else
#define DLK_DIRECT_ROWS4 2
#endif
#define DLK_DIRECT_ROWS3 3
#define DLK_DIRECT_ROWS2 4
#endif
/* Copies of each packed weight (direct_pack_weights): one, broadcast in the
 * tile, where a broadcast is one load (AVX, AVX-512); a whole vector's worth
 * without AVX, where SSE broadcasts with a load and a shuffle and the shuffle
 * competes with the multiplies and adds for the vector pipes. */
#if defined(__AVX__)
#define DLK_DIRECT_WREP 1
#else
#define DLK_DIRECT_WREP DLK_VW
#endif
/* grad_weight (gw_sample): output channels per tile at most, 4 x 6 taps with
 * AVX-512; with 16 registers 3 x 4 (12 accumulators, 3 grad_out vectors, the x
 * vector), which leaves no scratch register for an FMA-less product, so the
 * baseline stops at 2 x 6. */
#if defined(__AVX512F__)
#define DLK_GW_OCB 4
#elif defined(__FMA__)
#define DLK_GW_OCB 3
#else
#define DLK_GW_OCB 2
#endif

#define T float
#define TI uint32_t
#define SUF f32
#define DLK_VW DLK_VW_F32
#include "conv2d_direct_tmpl.h"
#undef T
#undef TI
#undef SUF
#undef DLK_VW

#define T double
#define TI uint64_t
#define SUF f64
#define DLK_VW DLK_VW_F64
#include "conv2d_direct_tmpl.h"
#undef T
#undef TI
#undef SUF
#undef DLK_VW
