/* Batch normalization kernels (see batch_norm.h for the contract).
 *
 * Work unit: a block of B whole channels. In one sample n a unit's data is the
 * contiguous span x[n, c0:c0+B, :] of P = B*S values, so every pass is a loop
 * over n of a contiguous inner loop over the span. Per-position double
 * accumulators acc[j] (j < P, or j = i mod BN_WIDTH when one channel's span is
 * longer than BN_WIDTH) are summed over n, then each channel's positions are
 * summed in order. This vectorizes across channels when S is 1 ((N, C) input,
 * where one channel is strided) and along S when S is large, with no
 * dependence on the thread count: a channel is always reduced by one thread in
 * the same order.
 *
 * B is chosen so a span is a few hundred values (vectorizable) but there are
 * still enough units to share between threads; a unit's data (N*P values) is
 * usually small enough to stay in L2 between the passes over it.
 *
 * The dtype-specific bodies live in batch_norm_impl.h, included once for float
 * and once for double.
 */
#include <math.h>
#include <stdlib.h>

#include "batch_norm.h"

/* Longest run of positions accumulated side by side (doubles: 16 KB each). */
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

/* Sum of channel k's accumulator positions: [k*S, (k+1)*S) cut to the width
 * (a single channel longer than the width folds into all Lw positions). */
static double bn_chan_sum(const double *acc, dlk_idx k, dlk_idx S, dlk_idx Lw) {
    dlk_idx lo = k * S, hi = DLK_MIN((k + 1) * S, Lw);
    double s = 0.0;
    for (dlk_idx j = lo; j < hi; ++j) s += acc[j];
    return s;
}

/* Register lanes of the single-channel passes (4 zmm of doubles). */
#define BN_LANES 32

static double bn_lanes_sum(const double *a) {
    double s = 0.0;
    for (int t = 0; t < BN_LANES; ++t) s += a[t];
    return s;
}

#define T float
#define SUF(name) name##_f32
#include "batch_norm_impl.h"
#undef T
#undef SUF

#define T double
#define SUF(name) name##_f64
#include "batch_norm_impl.h"
#undef T
#undef SUF
