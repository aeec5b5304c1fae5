/* Dilated causal conv1d over BLAS GEMM: see causal_conv1d.h for layouts and math.
 *
 * No padded copy and no im2col: tap j of the weight, repacked as a contiguous
 * (C_out, C_in) matrix W_j, multiplies x[n] read from column 0 with row stride L and
 * writes out[n] from column s_j = (k-1-j)*dilation on (shown for a whole sample;
 * the code does the same per time block, clipping each tap's range to it):
 *   out[n][:, s_j:]      += W_j   @ x[n][:, :L-s_j]
 *   grad_W_j             += g[n][:, s_j:] @ x[n][:, :L-s_j]^T
 *   grad_x[n][:, :L-s_j] += W_j^T @ g[n][:, s_j:]
 * Taps with s_j >= L see only the zero padding and are skipped. The tap with s = 0
 * covers every column, so it goes first with beta = 0 and nothing needs zeroing.
 * GEMMs per (sample, time block) (M = C_out or C_in, N ~ block, K = C_in or C_out, or
 * K ~ block for grad_W) keep the block's x and grad_out rows hot in L2 across the taps.
 *
 * float and double come from one body: this file includes itself twice with T,
 * SUFFIX and GEMM defined.
 */
#ifndef DLK_CC1D_BODY
#include <stdlib.h>
#include <string.h>

#include "causal_conv1d.h"

#define DLK_CC1D_BODY
/* Work is cut into (sample, time block) tasks so that even a batch of one keeps every
 * thread busy on a long sequence. Constants, never derived from the thread count (the
 * cut decides GEMM shapes, hence rounding); 1024 columns keep GEMMs near peak. */
#define DLK_CC1D_TIME_BLOCK 1024
/* Task chunks of the grad_W reduction; 8 keeps 2-8 threads busy at the cost of a few
 * small partial sums. */
#define DLK_CC1D_GRADW_CHUNKS 8
/* Below this many multiply-adds a call stays on one thread: a parallel region costs a
 * few us on an idle machine and up to a scheduler time slice (ms) on a busy one.
 * Serial or parallel, the GEMMs and sums are the same: results do not change. */
#define DLK_CC1D_PARALLEL_WORK 1048576.0
#define DLK_CAT_(a, b) a##_##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)
#define SFX(name) DLK_CAT(name, SUFFIX)

#define T float
#define SUFFIX f32
#define GEMM dlk_blas_gemm_f32
#include "causal_conv1d.c"
#undef T
#undef SUFFIX
#undef GEMM

#define T double
#define SUFFIX f64
#define GEMM dlk_blas_gemm_f64
#include "causal_conv1d.c"
#undef T
#undef SUFFIX
#undef GEMM

#else /* DLK_CC1D_BODY: the templated body */

/* wt[j][o][c] = w[o][c][j]: each tap as a contiguous row-major (C_out, C_in) matrix,
 * as BLAS needs unit column stride. Tiny (the weight), so serial. */
static void SFX(cc1d_pack_taps)(const T *w, T *wt, dlk_idx C_out, dlk_idx C_in, dlk_idx k) {
    for (dlk_idx o = 0; o < C_out; o++)
        for (dlk_idx c = 0; c < C_in; c++)
            for (dlk_idx j = 0; j < k; j++)
                wt[(j * C_out + o) * C_in + c] = w[(o * C_in + c) * k + j];
}

static void SFX(cc1d_unpack_taps)(const T *wt, T *w, dlk_idx C_out, dlk_idx C_in, dlk_idx k) {
    for (dlk_idx o = 0; o < C_out; o++)
        for (dlk_idx c = 0; c < C_in; c++)
            for (dlk_idx j = 0; j < k; j++)
                w[(o * C_in + c) * k + j] = wt[(j * C_out + o) * C_in + c];
}

/* malloc that never returns NULL for a zero size (so NULL always means ENOMEM). */
static T *SFX(cc1d_alloc)(dlk_idx count) {
    return (T *)malloc((size_t)(count > 0 ? count : 1) * sizeof(T));
}

int SFX(dlk_causal_conv1d_forward)(const dlk_blas *blas, const T *x, const T *weight,
                                   const T *bias, T *out, dlk_idx N, dlk_idx C_in, dlk_idx L,
                                   dlk_idx C_out, dlk_idx k, dlk_idx dilation, int nthreads) {
    if (N <= 0 || C_out <= 0 || L <= 0) return DLK_OK;
    /* A shift of L or more reads only padding; clamping keeps (k-1-j)*dilation small. */
    if (dilation > L) dilation = L;
    T *wt = SFX(cc1d_alloc)(k * C_out * C_in);
    if (!wt) return DLK_ENOMEM;
    SFX(cc1d_pack_taps)(weight, wt, C_out, C_in, k);

    dlk_idx nblocks = (L + DLK_CC1D_TIME_BLOCK - 1) / DLK_CC1D_TIME_BLOCK;
    dlk_idx task;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) \
    if (N * nblocks > 1 && (double)N * L * C_out * C_in * k >= DLK_CC1D_PARALLEL_WORK)
#endif
    for (task = 0; task < N * nblocks; task++) {
        dlk_idx n = task / nblocks;
        dlk_idx t0 = (task % nblocks) * DLK_CC1D_TIME_BLOCK;
        dlk_idx t1 = DLK_MIN(t0 + DLK_CC1D_TIME_BLOCK, L);
        const T *xn = x + n * C_in * L;
        T *on = out + n * C_out * L;
        if (bias) {
            /* Filled just before this block's GEMMs, so the rows are still in cache. */
            for (dlk_idx o = 0; o < C_out; o++) {
                T b = bias[o];
                T *row = on + o * L;
                for (dlk_idx t = t0; t < t1; t++) row[t] = b;
            }
        }
        /* Tap s = 0 first: it covers [t0, t1) entirely, so beta = 0 when no bias. */
        for (dlk_idx j = k - 1; j >= 0; j--) {
            dlk_idx s = (k - 1 - j) * dilation;
            dlk_idx lo = DLK_MAX(t0, s); /* out[t] needs x[t - s], t - s >= 0 */
            if (lo >= t1) break;         /* shifts grow as j falls */
            T beta = (bias || j != k - 1) ? 1 : 0;
            GEMM(blas, 0, 0, (int)C_out, (int)(t1 - lo), (int)C_in, 1, wt + j * C_out * C_in,
                 (int)C_in, xn + lo - s, (int)L, beta, on + lo, (int)L);
        }
    }
    free(wt);
    return DLK_OK;
}

int SFX(dlk_causal_conv1d_backward)(const dlk_blas *blas, const T *grad_out, const T *x,
                                    const T *weight, T *grad_x, T *grad_weight, T *grad_bias,
                                    dlk_idx N, dlk_idx C_in, dlk_idx L, dlk_idx C_out,
                                    dlk_idx k, dlk_idx dilation, int nthreads) {
    /* grad_bias: one channel per iteration, summed over (n, t) in a fixed order in
     * double, so the result does not depend on the thread count. */
    dlk_idx o;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) \
    if (C_out > 1 && (double)N * L * C_out >= DLK_CC1D_PARALLEL_WORK)
#endif
    for (o = 0; o < C_out; o++) {
        double acc = 0;
        for (dlk_idx n = 0; n < N; n++) {
            const T *row = grad_out + (n * C_out + o) * L;
            for (dlk_idx t = 0; t < L; t++) acc += row[t];
        }
        grad_bias[o] = (T)acc;
    }

    dlk_idx wsize = k * C_out * C_in;
    if (N <= 0 || L <= 0) {
        for (dlk_idx i = 0; i < wsize; i++) grad_weight[i] = 0;
        return DLK_OK; /* grad_x is empty */
    }
    if (dilation > L) dilation = L;
    /* Tasks are (sample, time block) pairs in sample-major order. grad_W sums over all
     * of them: a fixed number of contiguous task chunks, each with its own partial
     * sum, added in chunk order afterwards, so the sum does not depend on how many
     * threads ran the chunks. */
    dlk_idx nblocks = (L + DLK_CC1D_TIME_BLOCK - 1) / DLK_CC1D_TIME_BLOCK;
    dlk_idx ntasks = N * nblocks;
    dlk_idx nchunks = DLK_MIN(ntasks, DLK_CC1D_GRADW_CHUNKS);
    T *wt = SFX(cc1d_alloc)(wsize);
    T *partial = SFX(cc1d_alloc)(nchunks * wsize);
    if (!wt || !partial) {
        free(wt);
        free(partial);
        return DLK_ENOMEM;
    }
    SFX(cc1d_pack_taps)(weight, wt, C_out, C_in, k);

    dlk_idx c;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) \
    if (nchunks > 1 && (double)N * L * C_out * C_in * k >= DLK_CC1D_PARALLEL_WORK)
#endif
    for (c = 0; c < nchunks; c++) {
        T *gwt = partial + c * wsize;
        for (dlk_idx i = 0; i < wsize; i++) gwt[i] = 0;
        /* Both gradients of a block while its grad_out and x rows are in cache. */
        for (dlk_idx task = ntasks * c / nchunks; task < ntasks * (c + 1) / nchunks; task++) {
            dlk_idx n = task / nblocks;
            dlk_idx t0 = (task % nblocks) * DLK_CC1D_TIME_BLOCK;
            dlk_idx t1 = DLK_MIN(t0 + DLK_CC1D_TIME_BLOCK, L);
            const T *gn = grad_out + n * C_out * L;
            const T *xn = x + n * C_in * L;
            T *gxn = grad_x + n * C_in * L;
            /* grad_W_j += g[:, lo:t1] @ x[:, lo-s:t1-s]^T over output times [lo, t1). */
            for (dlk_idx j = k - 1; j >= 0; j--) {
                dlk_idx s = (k - 1 - j) * dilation;
                dlk_idx lo = DLK_MAX(t0, s);
                if (lo >= t1) break;
                GEMM(blas, 0, 1, (int)C_out, (int)C_in, (int)(t1 - lo), 1, gn + lo, (int)L,
                     xn + lo - s, (int)L, 1, gwt + j * C_out * C_in, (int)C_in);
            }
            /* grad_x[:, t] += W_j^T g[:, t + s] for input times t in [t0, min(t1, L-s)). */
            for (dlk_idx j = k - 1; j >= 0; j--) {
                dlk_idx s = (k - 1 - j) * dilation;
                dlk_idx hi = DLK_MIN(t1, L - s);
                if (hi <= t0) break;
                T beta = (j != k - 1) ? 1 : 0; /* tap s = 0 covers [t0, t1) entirely */
                GEMM(blas, 1, 0, (int)C_in, (int)(hi - t0), (int)C_out, 1,
                     wt + j * C_out * C_in, (int)C_in, gn + t0 + s, (int)L, beta, gxn + t0,
                     (int)L);
            }
        }
    }
    for (c = 1; c < nchunks; c++) /* chunk order: fixed */
        for (dlk_idx i = 0; i < wsize; i++) partial[i] += partial[c * wsize + i];
    SFX(cc1d_unpack_taps)(partial, grad_weight, C_out, C_in, k);
    free(wt);
    free(partial);
    return DLK_OK;
}

#endif /* DLK_CC1D_BODY */
