/* im2col conv2d: the convolution as GEMMs over the column matrix (see conv2d.h
 * for layout and semantics), on dlkern's own packed micro-kernel (sized per ISA level).
 *
 * Forward, per (sample, group): y_n,g = W_g @ col_n,g, K = C/groups*KH*KW
 * reduction rows, with the column matrix packed panel by panel straight from x
 * (im2col fused into the GEMM's B packing: it is never written whole), bias
 * folded into the first reduction block.
 * grad_x: stride 1, the forward of grad_out with the flipped, channel-swapped
 * kernel (same engine); otherwise the same per input phase (stride_h *
 * stride_w stride-1 forwards with the taps that reach that phase), all phases
 * of a (sample, group) in one task from one grad_out window into per-thread
 * planes that are then interleaved into grad_x (conv2d_gradx_phases_tmpl.h;
 * strided 3x3 layer: 1.75 -> 1.52 ms against one parallel region and window
 * per phase, which stays the fallback beyond max_col_bytes).
 * grad_weight: shifted dot products over zero-padded phase planes of x
 * (conv2d_wgrad_tmpl.h), reduced per sample in a fixed order; a plain 1x1
 * (stride 1, no padding), whose column matrix is x itself, on the forward's
 * micro-kernel, one task per (group, chunk of samples) and the chunks' sums
 * added in chunk order.
 *
 * Threads: every output element is computed by one task in a fixed order
 * (tasks are (sample, group, pixel block) forward and grad_x, (sample, group,
 * channel block) for the merged strided grad_x, (sample, channel) for the
 * fallback's phase interleave, (channel block, tap block) for grad_weight,
 * (group, chunk of samples fixed by N) for the 1x1 grad_weight),
 * and no blocking parameter
 * depends on the thread count: results are bit-identical for any nthreads.
 * No BLAS is called, so no second thread pool competes for the cores.
 * Time O(N*OC*OH*OW*(C/groups)*KH*KW) forward, twice that backward; memory:
 * the packed weights plus one packing buffer per thread (<= ~0.5 MiB; kept
 * per thread between calls, conv2d_scratch.h), for the 1x1 grad_weight up to
 * GW1_TASKS - 1 copies of grad_weight (<= GW1_PARTIAL_BYTES), for
 * the strided grad_x a window and phase planes per thread within max_col_bytes
 * (or one plane per thread in the fallback), and for grad_weight the phase
 * planes of up to max_col_bytes worth of samples (at least one group of
 * WG_NS to WG_NS_MAX samples). The merged grad_x's per-thread buffers and
 * grad_weight's planes are kept between calls too (strided 3x3 layer, 2
 * threads: grad_x ~1.69 -> ~1.57 ms, grad_weight ~2.08 -> ~1.98 ms, medians of
 * three runs each). Kernels return DLK_ENOMEM when an allocation fails.
 * Matches dlkern/reference/conv2d.py.
 */
#include <stdlib.h>
#include <string.h>

#include "conv2d.h"
#include "conv2d_scratch.h"
#include "conv2d_template.h"
#include "gemm.h"

/* Vector width and register tiles per ISA level: a portable build compiles this
 * file once per level (CMakeLists.txt), and the tiles must fit the level's
 * register file, or GCC splits every 64-byte vector into two or four registers
 * and spills the accumulators (a v3 ResNet 3x3 forward ran 245 ms instead of
 * 3.3 ms on AVX-512, 82% of it in pk_block_window). As in gemm.c:
 * - AVX-512 (32 registers of 64 bytes): forward tile PK_MR = 8 output channels
 *   x PK_NV = 2 vectors of output pixels, 16 accumulators; each k step loads
 *   two B vectors and 8 broadcasts for 16 FMAs. grad_weight tile WG_MO = 4
 *   output channels x WG_NK = 6 taps, 24 accumulators, 4 + 6 loads per 24 FMAs.
 * - 16 registers (AVX/AVX2: 32 bytes; SSE: 16 bytes): 12 accumulators, so that
 *   a step's operands fit beside them. Forward 6 x 2 vectors: 2 B vectors and a
 *   broadcast (15 registers; SSE, without FMA, needs one more for the product).
 *   grad_weight on AVX2 3 x 4 (3 + 1 pinned tap vector, 16 registers; measured
 *   on ResNet 3x3 against 2 x 4: 186 vs 114 GFLOP/s), on SSE 2 x 6 (2 + 1 + the
 *   product, 16).
 * Measured on ResNet 3x3 (16x64x32x32, 64 out), 2 threads, against the same
 * run's dlk_gemm at 1536^3: AVX2 forward ~205, grad_x ~205, grad_weight ~190
 * GFLOP/s (dlk_gemm ~210-225); SSE ~80, ~80, ~90 (dlk_gemm ~68). */
#define PK_VBYTES DLK_VEC_BYTES /* dlk_common.h */
#if DLK_VEC_BYTES == 64
#define PK_MR 8
#define PK_NV 2
#define PK_NB_PANELS 8
#define WG_MO 4
#define WG_NK 6
#elif DLK_VEC_BYTES == 32
#define PK_MR 6
#define PK_NV 2
#define PK_NB_PANELS 16
#define WG_MO 3
#define WG_NK 4
#else
#define PK_MR 6
#define PK_NV 2
#define PK_NB_PANELS 32
#define WG_MO 2
#define WG_NK 6
#endif
#define PK_VL ((dlk_idx)(PK_VBYTES / sizeof(T)))
#define PK_NR (PK_NV * PK_VL)
/* Reduction block: a B panel of DLK_PK_KC x PK_NR is 32 KiB in float32 on
 * AVX-512, L1-sized (16 KiB with 32-byte vectors, 8 with 16). */
#define DLK_PK_KC 256
/* Output pixels per forward task and per grad_x block: PK_NB_PANELS panels,
 * 256 float32 pixels at every level (a task's window holds the input rows of
 * its pixels plus the kernel's halo: fewer pixels would rebuild more halo). */
#define PK_NB (PK_NB_PANELS * PK_NR)
/* The 1x1 grad_weight (conv2d_im2col_tmpl.h): at most this many chunks of
 * samples, each summed by one task into its own copy of grad_weight, the
 * copies taking at most GW1_PARTIAL_BYTES. */
#define GW1_TASKS 8
#define GW1_PARTIAL_BYTES ((size_t)8 << 20)
/* Tasks the merged strided grad_x wants at least: below it, a (sample, group)
 * is split into channel blocks (conv2d_gradx_phases_tmpl.h). */
#define GX_MIN_TASKS 8
/* grad_weight register tile: WG_MO output channels x WG_NK taps (above). */
/* Samples whose grad_weight partial sums share the SIMD lanes before the
 * (comparatively costly) horizontal reduction: WG_NS, or a multiple of it up
 * to WG_NS_MAX (and at most N rounded up to WG_NS) when a sample's stream is
 * short, so that a group streams about WG_STREAM elements (ResNet 3x3 at
 * 32x32: 4 x 1088; strided 3x3 at 16x16 outputs: 16 x 272, measured 4% faster
 * than 4 x 272 on 2 threads, the fewer reductions outweighing the tap rows
 * that no longer stay in L1 across tiles). */
#define WG_NS 4
#define WG_NS_MAX 16
#define WG_STREAM 4352
/* Budget of the streamed operand's super-blocks (conv2d_wgrad_tmpl.h): half
 * the 1 MiB L2 of a core, the other half for the rest of the group's stream. */
#define WG_L2_BYTES ((dlk_idx)512 * 1024)
/* GCC folds a vector load into every FMA that uses it when registers are
 * tight (24 accumulators), turning 10 loads per 24 FMAs into 28; an empty asm
 * that claims to modify v pins it in a register (any of the 32 on AVX-512,
 * one of the 16 below: grad_weight of the strided 3x3 layer on AVX2 149 -> 203
 * GFLOP/s, SSE 86 -> 94). */
#if defined(__GNUC__) && defined(__AVX512F__)
#define DLK_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif defined(__GNUC__) && defined(__SSE__)
#define DLK_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define DLK_IN_REGISTER(v) ((void)0)
#endif

#define T float
#define SUF f32
typedef int pmask_f32 __attribute__((vector_size(PK_VBYTES)));  /* shuffle masks, one per lane */
#include "conv2d_packed_tmpl.h"
#include "conv2d_wgrad_tmpl.h"
#include "conv2d_gradx_phases_tmpl.h"
#include "conv2d_im2col_tmpl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
typedef long long pmask_f64 __attribute__((vector_size(PK_VBYTES)));
#include "conv2d_packed_tmpl.h"
#include "conv2d_wgrad_tmpl.h"
#include "conv2d_gradx_phases_tmpl.h"
#include "conv2d_im2col_tmpl.h"
#undef T
#undef SUF
