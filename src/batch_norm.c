/* Batch normalization kernels (see batch_norm.h for the contract).
 *
 * Work unit: a block of B whole channels. In one sample n a unit's data is the
 * contiguous span x[n, c0:c0+B, :] of P = B*S values, so every pass is a loop
 * over the N rows of a contiguous inner loop over the span. A channel is always
 * reduced by one thread in one fixed order, so results do not depend on the
 * thread count; B depends only on C and S.
 *
 * - S >= BN_SPAN (or C == 1): one channel per unit (B == 1). Its sums are kept
 *   in BN_LANES register lanes (lane t takes the elements j = t mod BN_LANES of
 *   every row) and the coefficients are scalars: the common conv-net case.
 * - S == 1 and C > 1, (N, C) input, in training (forward and backward): strips of
 *   up to BN_STRIP channels with per-channel sums in local arrays (no heap scratch);
 *   for float32 the statistics come from float32 row blocks merged in double
 *   (batch_norm_blocked_f32.h), which reads x (and dy) once for them.
 * - S small otherwise, where a channel is strided: B channels per unit,
 *   P = B*S < 2*BN_SPAN <= BN_WIDTH positions accumulated side by side in
 *   double arrays (position j belongs to channel j / S), i.e. vectorized across
 *   channels; each channel's positions are then summed in order.
 *
 * Passes per unit: training forward = sum, centered sums, normalize; training
 * backward = sum, centered sums together with sum(dy) and sum(dy * d), grad_x.
 * A unit's data (N*P values) is usually small enough to stay in L2 between the
 * passes, so x is read from memory about once per kernel.
 *
 * The dtype-specific bodies live in batch_norm_impl.h, included once for float
 * and once for double.
 */
#include <math.h>
#include <stdlib.h>

#include "batch_norm.h"

/* Longest run of positions accumulated side by side (doubles: 4 KB each);
 * multi-channel spans are shorter, single-channel units use register lanes. */
#define BN_WIDTH 512
/* Target span length (values) of one unit in one sample when S is small. */
#define BN_SPAN 256
/* Largest channel block: BN_SPAN channels when S == 1. */
#define BN_MAX_BLOCK BN_SPAN

/* Below this many elements a kernel runs on one thread: waking a second one
 * costs more than the work (and on a busy machine can cost milliseconds). */
#define BN_SERIAL_BELOW 32768

static int bn_threads(int nthreads, dlk_idx N, dlk_idx C, dlk_idx S) {
    return (double)N * (double)C * (double)S < BN_SERIAL_BELOW ? 1 : DLK_MAX(nthreads, 1);
}

/* Channels per unit; depends only on C and S, never on the thread count. */
static dlk_idx bn_block(dlk_idx C, dlk_idx S) {
    if (S >= BN_SPAN || C <= 1) return 1;
    dlk_idx b = (BN_SPAN + S - 1) / S;                 /* fill a span */
    /* but keep ~4 units when C allows, so 2 threads can balance the work
     * (dynamically: a core may be busy with another process) while spans stay
     * long (short spans cost more in loop overhead than they gain in balance);
     * never below 16 values per span (one vector) */
    dlk_idx share = DLK_MAX((C + 3) / 4, (16 + S - 1) / S);
    b = DLK_MIN(b, share);
    b = DLK_MIN(b, C);
    return DLK_MAX(b, 1);
}

/* Width of the accumulator arrays a thread needs for units of B channels. */
static dlk_idx bn_width(dlk_idx B, dlk_idx S) {
    return DLK_MAX(1, DLK_MIN(B * S, BN_WIDTH));
}

/* Sum of channel k's accumulator positions [k*S, (k+1)*S), cut to Lw. */
static double bn_chan_sum(const double *acc, dlk_idx k, dlk_idx S, dlk_idx Lw) {
    dlk_idx lo = k * S, hi = DLK_MIN((k + 1) * S, Lw);
    double s = 0.0;
    for (dlk_idx j = lo; j < hi; ++j) s += acc[j];
    return s;
}

/* Most channels per strip of the (N, C) path. Narrow strips measured slower: rows are
 * C values apart, so a strip's lines alias in L1 whatever its width and every pass
 * streams it from L2, which wants long contiguous runs (16 channels: 4x slower than
 * 128 on (256, 512)). */
#define BN_STRIP 128

/* Strip width: BN_STRIP, but at least 4 strips when C allows, so 2 threads balance;
 * a multiple of 16 values (one vector). Depends only on C. */
static dlk_idx bn_strip_width(dlk_idx C) {
    dlk_idx w = ((C + 3) / 4 + 15) / 16 * 16;
    return DLK_MIN(w, BN_STRIP);
}

/* (N, C) input with several channels: the strip path (see batch_norm_impl.h). */
static int bn_use_strips(dlk_idx C, dlk_idx S) {
    return S == 1 && C > 1;
}

/* Register lanes of the single-channel passes (4 zmm of doubles). */
#define BN_LANES 32

static double bn_lanes_sum(const double *a) {
    double s = 0.0;
    for (int t = 0; t < BN_LANES; ++t) s += a[t];
    return s;
}

/* float32 (N, C) strips take their statistics from float32 row blocks merged in
 * double (batch_norm_blocked_f32.h) where 16 floats are one register (AVX-512);
 * float64, and float32 on narrower ISAs, keep the double sums. Why not on AVX2: its
 * 16 registers of 8 floats spill the 16-float blocks, measured 2.5x slower than the
 * double sums there ((256, 512), -march=x86-64-v3); a version tuned for 8-float
 * vectors is still to be written. */
#if defined(__AVX512F__)
#include "batch_norm_blocked_f32.h"
#define BN_BLOCKED_STATS bn_blocked_stats_f32
#endif

#define T float
#define SUF(name) name##_f32
#include "batch_norm_impl.h"
#undef BN_BLOCKED_STATS
#undef T
#undef SUF

#define T double
#define SUF(name) name##_f64
#include "batch_norm_impl.h"
#undef T
#undef SUF
