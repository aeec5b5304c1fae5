/* dlkern's GEMM (see gemm.h): float and double from one body, src/gemm_tmpl.h.
 *
 * Register tile: on AVX-512 (32 vector registers) an MR = 14 rows x NR = 2 vectors
 * tile keeps 28 accumulators + 2 B vectors + 1 broadcast in registers, and per k
 * needs 2 vector loads of B and 14 broadcasts of A (embedded in the FMAs) for 28
 * FMAs: the loads fit beside the two FMA pipes, and the B sliver (KC x 32 floats =
 * 32 KiB at KC = 256) stays in the 48 KiB L1 while A slivers stream from L2. With 16
 * vector registers (AVX2, SSE) the tile is 6 x 2 vectors (12 accumulators).
 * Cache blocks: an MC x KC block of A (~ 112 KiB float) sits in L2 (1 MiB) with room
 * to spare, the KC x NC panel of B in L3.
 * None of the sizes depends on the thread count: it decides the order of each sum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

/* log2 of the vector lanes for float (double has one less). */
#if defined(__AVX512F__)
#define DLK_GEMM_VBYTES 64
#define DLK_GEMM_LOG2VL_F32 4
#define DLK_GEMM_MR 14
#elif defined(__AVX__)
#define DLK_GEMM_VBYTES 32
#define DLK_GEMM_LOG2VL_F32 3
#define DLK_GEMM_MR 6
#else
#define DLK_GEMM_VBYTES 16
#define DLK_GEMM_LOG2VL_F32 2
#define DLK_GEMM_MR 6
#endif
#define DLK_GEMM_NV 2
/* Rows of C packed at once: bounds the A buffer (MM x KC) for very tall C. */
#define DLK_GEMM_MM 4096
/* Column slivers per parallel tile: enough tiles for 2-4 threads on C with few rows
 * (conv2d's 64 x 1024), large enough that a tile amortizes its A block. */
#define DLK_GEMM_TILE_SLIVERS 8
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
#define DLK_GEMM_KC 256
#define DLK_GEMM_MC 126
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
#define DLK_GEMM_KC 256
#define DLK_GEMM_MC 126
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
