/* dlkern's GEMM (see gemm.h): float and double from one body, src/gemm_tmpl.h.
 *
 * Register tile: on AVX-512 (32 vector registers) MR = 8 rows x NR = 3 vectors keeps
 * 24 accumulators + 3 B vectors + a broadcast in registers (no spills); per k it
 * loads 3 vectors of B and broadcasts 8 values of A for 24 FMAs (12 cycles on two
 * FMA pipes), well within the load ports. 8 rows divide the channel counts the
 * kernels use (64, 256, 576); a 14 x 2-vector tile measured up to 10% slower here
 * (M = 64 wastes 6 of 70 rows, and 1536^3 ran ~370 vs ~390 GFLOP/s on 2 threads).
 * With 16 vector registers (AVX2, SSE) the tile is 6 x 2 vectors (12 accumulators).
 * Cache blocks: the B sliver (KC x NR = 192 x 48 floats = 36 KiB) stays in the 48 KiB
 * L1 while A slivers stream from the MC x KC block of A (96 KiB) in the 1 MiB L2;
 * the KC x NC panel of B sits in L3.
 * None of the sizes depends on the thread count: they decide the order of each sum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

/* Vector width per ISA level (dlk_common.h); log2 of its lanes for float (double has
 * one less). */
#define DLK_GEMM_VBYTES DLK_VEC_BYTES
#if DLK_VEC_BYTES == 64
#define DLK_GEMM_LOG2VL_F32 4
#define DLK_GEMM_MR 8
#define DLK_GEMM_NV 3
#elif DLK_VEC_BYTES == 32
#define DLK_GEMM_LOG2VL_F32 3
#define DLK_GEMM_MR 6
#define DLK_GEMM_NV 2
#else
#define DLK_GEMM_LOG2VL_F32 2
#define DLK_GEMM_MR 6
#define DLK_GEMM_NV 2
#endif
/* Rows of C packed at once: bounds the A buffer (MM x KC) for very tall C. */
#define DLK_GEMM_MM 4096
/* Column slivers per parallel tile: enough tiles to balance 2-4 threads on C with few
 * rows (conv2d's 64 x 1024: 22 slivers, 6 tiles), large enough that a tile amortizes
 * its A block. */
#define DLK_GEMM_TILE_SLIVERS 4
/* C with at most this many rows reads full slivers of an untransposed B in place
 * instead of packing them (see gemm_tmpl.h): measured faster up to 128 rows (64 x 1024
 * x 192: 187 -> 217 GFLOP/s on one core), slower from 256 (226 -> 214). */
#define DLK_GEMM_DIRECT_B_MAX_M 128
/* Below this many multiply-adds a call runs on one thread: a parallel region costs
 * a few us on an idle machine, much more on a busy one, and 2^20 multiply-adds take
 * ~10 us on one core. */
#define DLK_GEMM_PARALLEL_WORK 1048576.0

#define DLK_GEMM_CAT_(a, b) a##_##b
#define DLK_GEMM_CAT(a, b) DLK_GEMM_CAT_(a, b)

#define T float
#define SUF f32
#define DLK_GEMM_ITYPE int32_t
#define DLK_GEMM_VL (DLK_GEMM_VBYTES / 4)
#define DLK_GEMM_LOG2VL DLK_GEMM_LOG2VL_F32
#define DLK_GEMM_KC 192
/* MC must be a multiple of MR (a block starts on a sliver). */
#define DLK_GEMM_MC (16 * DLK_GEMM_MR)
#define DLK_GEMM_NC 4096
#include "gemm_tmpl.h"
#undef T
#undef SUF
#undef DLK_GEMM_ITYPE
#undef DLK_GEMM_VL
#undef DLK_GEMM_LOG2VL
#undef DLK_GEMM_KC
#undef DLK_GEMM_MC
#undef DLK_GEMM_NC

#define T double
#define SUF f64
#define DLK_GEMM_ITYPE int64_t
#define DLK_GEMM_VL (DLK_GEMM_VBYTES / 8)
#define DLK_GEMM_LOG2VL (DLK_GEMM_LOG2VL_F32 - 1)
#define DLK_GEMM_KC 192
#define DLK_GEMM_MC (12 * DLK_GEMM_MR)
#define DLK_GEMM_NC 2048
#include "gemm_tmpl.h"
#undef T
#undef SUF
#undef DLK_GEMM_ITYPE
#undef DLK_GEMM_VL
#undef DLK_GEMM_LOG2VL
#undef DLK_GEMM_KC
#undef DLK_GEMM_MC
#undef DLK_GEMM_NC

void dlk_gemm_blocking(int is_f64, dlk_idx sizes[5]) {
    if (is_f64)
        dlk_gemm_blocking_f64(sizes);
    else
        dlk_gemm_blocking_f32(sizes);
}
