/* Dilated causal conv1d over dlkern's GEMM: see causal_conv1d.h for layouts and math.
 *
 * Work is cut into (sample, time block) tasks; each task runs single-threaded implicit
 * GEMMs (dlk_gemm_rows: the GEMM's micro-kernel reading B where it lies, described by
 * row offsets, column groups and zero ranges) whose inner dimension stacks all k
 * taps, so out, grad_x and grad_W are each written once per task with K = C_in*k (or
 * C_out*k), not k times with K = C_in:
 *   forward   out[:, t0:t1]  = W (C_out, C_in*k) @ X + bias (added at the GEMM's store)
 *             X[c*k + j][t] = x[c][t0 + t - s_j]   (0 before time 0)
 *   grad_W'  (C_out, k*C_in) += g[:, t0:t1] @ XT   (unpacked to the weight's layout)
 *             XT[t][j*C_in + c] = x[c][t0 + t - s_j]  (the same values, time-major)
 *   grad_x    grad_x[:, t0:t1] = Wx (C_in, C_out*k) @ G
 *             G[o*k + j][t] = g[o][t0 + t + s_j]  (0 past time L-1)
 *             Wx[c][o*k + j] = w[o][c][j]
 * with s_j = (k-1-j)*dilation. The weight, read as a (C_out, C_in*k) row-major matrix,
 * is already W. X and G are never built: their rows are shifted rows of x and g, read
 * in place (the slivers at the zero edges are packed by the GEMM). grad_W sums over
 * time, the contiguous axis of g and x, and the micro-kernel needs B time-major: x is
 * transposed once per task into xt (one window for all taps when they overlap), and
 * XT's tap j is xt shifted by s_j rows, read in place as a column group. A tap with
 * s_j >= L only contributes zeros.
 *
 * Threads: tasks are spread over nthreads (dynamic), each GEMM runs on one thread,
 * and grad_W and grad_bias (the latter folded into the task that has the block of
 * grad_out in cache) are summed in a fixed number of task chunks, each with its own
 * partial sums, added in chunk order: results are bit-identical for any nthreads.
 *
 * float and double come from one body: this file includes itself twice with T,
 * SUFFIX and GEMM defined.
 */
#ifndef DLK_CC1D_BODY
#include <stdlib.h>
#include <string.h>

#include "causal_conv1d.h"
#include "gemm.h"

#define DLK_CC1D_BODY
/* Work is cut into (sample, time block) tasks so that even a batch of one keeps every
 * thread busy on a long sequence. Constants, never derived from the thread count (the
 * cut decides GEMM shapes, hence rounding); 1024 columns keep GEMMs near peak and a
 * task's stacked operand (C_in*k x 1024) in L2 for the usual channel counts. */
#define DLK_CC1D_TIME_BLOCK 1024
/* Task chunks of the grad_W reduction; 8 keeps 2-8 threads busy at the cost of a few
 * small partial sums. */
#define DLK_CC1D_GRADW_CHUNKS 8
/* Below this many multiply-adds a call stays on one thread: a parallel region costs a
 * few us on an idle machine and up to a scheduler time slice (ms) on a busy one.
 * Serial or parallel, the GEMMs and sums are the same: results do not change. */
#define DLK_CC1D_PARALLEL_WORK 1048576.0
/* Partial sums per channel in grad_bias (two AVX-512 vectors of double). */
#define DLK_CC1D_LANES 16
#define DLK_CAT_(a, b) a##_##b
#define DLK_CAT(a, b) DLK_CAT_(a, b)
#define SFX(name) DLK_CAT(name, SUFFIX)

#define T float
#define SUFFIX f32
#define GEMM dlk_gemm_f32
#define GEMM_ROWS dlk_gemm_rows_f32
#define TRANSPOSE dlk_transpose_f32
#include "causal_conv1d.c"
#undef T
#undef SUFFIX
#undef GEMM
#undef GEMM_ROWS
#undef TRANSPOSE

#define T double
#define SUFFIX f64
#define GEMM dlk_gemm_f64
#define GEMM_ROWS dlk_gemm_rows_f64
#define TRANSPOSE dlk_transpose_f64
#include "causal_conv1d.c"
#undef T
#undef SUFFIX
#undef GEMM
#undef GEMM_ROWS
#undef TRANSPOSE

#else /* DLK_CC1D_BODY: the templated body */

/* malloc that never returns NULL for a zero size (so NULL always means ENOMEM). */
static T *SFX(cc1d_alloc)(dlk_idx count) {
    return (T *)malloc((size_t)(count > 0 ? count : 1) * sizeof(T));
}

/* The rows of X (forward) for dlk_gemm_rows: X[c*k + j][t] = xn[c][t0 + t - s_j] for
 * t < nt, zero where t0 + t < s_j. */
static void SFX(cc1d_rows_x)(dlk_idx C_in, dlk_idx L, dlk_idx k, dlk_idx dilation,
                             dlk_idx t0, dlk_idx nt, dlk_idx *boff, dlk_idx *lo,
                             dlk_idx *hi) {
    for (dlk_idx c = 0; c < C_in; c++)
        for (dlk_idx j = 0; j < k; j++) {
            const dlk_idx s = (k - 1 - j) * dilation, r = c * k + j;
            boff[r] = c * L + t0 - s;
            lo[r] = DLK_MIN(nt, DLK_MAX(0, s - t0)); /* leading zeros */
            hi[r] = nt;
        }
}

/* The rows of G (grad_x) for dlk_gemm_rows: G[o*k + j][t] = gn[o][t0 + t + s_j] for
 * t < nt, zero where t0 + t + s_j >= L. Channel-major like the forward's X: the taps
 * of one channel are neighbouring rows of B, overlapping cache lines of one row of g
 * (tap-major, each k stepped to another row of g, 4 KiB away: grad_x alone on one
 * thread 5.1 -> 4.3 ms at (32, 64, 1024) k3 d4). */
static void SFX(cc1d_rows_g)(dlk_idx C_out, dlk_idx L, dlk_idx k, dlk_idx dilation,
                             dlk_idx t0, dlk_idx nt, dlk_idx *boff, dlk_idx *lo,
                             dlk_idx *hi) {
    for (dlk_idx o = 0; o < C_out; o++) {
        for (dlk_idx j = 0; j < k; j++) {
            const dlk_idx s = (k - 1 - j) * dilation, r = o * k + j;
            boff[r] = o * L + t0 + s;
            lo[r] = 0;
            hi[r] = DLK_MIN(nt, DLK_MAX(0, L - s - t0)); /* valid columns */
        }
    }
}

/* grad_W's operand XT[t][j*C_in + c] = xn[c][t0 + t - s_j] (t < nt; zero where
 * t0 + t < s_j), described for dlk_gemm_rows over a time-major copy xt of x: tap j's
 * columns are the C_in channels of xt's row R_j + t (goff[j] = R_j * C_in, boff[t] =
 * t * C_in), and row t's zeros are its leading taps (lo[t]). The taps' time windows
 * overlap when dilation < nt: xt is then the one window of times [t0 - S, t0 + nt)
 * (from time 0 on), x transposed once instead of k times; otherwise each tap gets its
 * own nt rows. Either way xt has at most k * nt rows. */
static void SFX(cc1d_xt)(const T *xn, dlk_idx C_in, dlk_idx L, dlk_idx k, dlk_idx dilation,
                         dlk_idx t0, dlk_idx nt, T *xt, dlk_idx *goff, dlk_idx *boff,
                         dlk_idx *lo) {
    const dlk_idx S = (k - 1) * dilation;
    if (dilation < nt) {
        const dlk_idx first = DLK_MAX(0, t0 - S); /* time of xt's row 0 */
        TRANSPOSE(C_in, t0 + nt - first, xn + first, L, xt, C_in);
        for (dlk_idx j = 0; j < k; j++) goff[j] = (t0 - (k - 1 - j) * dilation - first) * C_in;
    } else {
        for (dlk_idx j = 0; j < k; j++) {
            const dlk_idx s = (k - 1 - j) * dilation;
            const dlk_idx z = DLK_MIN(nt, DLK_MAX(0, s - t0)); /* rows before time 0 */
            goff[j] = j * nt * C_in;
            if (z < nt) TRANSPOSE(C_in, nt - z, xn + t0 + z - s, L, xt + (j * nt + z) * C_in, C_in);
        }
    }
    for (dlk_idx t = 0; t < nt; t++) {
        dlk_idx zero_taps = 0; /* taps with s_j > t0 + t: j < zero_taps */
        while (zero_taps < k && (k - 1 - zero_taps) * dilation > t0 + t) zero_taps++;
        boff[t] = t * C_in;
        lo[t] = zero_taps * C_in;
    }
}

/* lanes[l] += row[t] for t < nt with l = t mod DLK_CC1D_LANES (row starts on a lane
 * boundary: time blocks are whole multiples of the lanes). grad_bias sums in double;
 * independent lanes vectorize without -ffast-math, where one running sum would be a
 * chain of dependent adds (~4 cycles each, about 1 ms for the bench's shape). */
static void SFX(cc1d_sum_lanes)(const T *row, dlk_idx nt, double *lanes) {
    dlk_idx t = 0;
    for (; t + DLK_CC1D_LANES <= nt; t += DLK_CC1D_LANES)
        for (int l = 0; l < DLK_CC1D_LANES; l++) lanes[l] += row[t + l];
    for (int l = 0; t < nt; t++, l++) lanes[l] += row[t];
}

int SFX(dlk_causal_conv1d_forward)(const T *x, const T *weight, const T *bias, T *out,
                                   dlk_idx N, dlk_idx C_in, dlk_idx L, dlk_idx C_out,
                                   dlk_idx k, dlk_idx dilation, int nthreads) {
    if (N <= 0 || C_out <= 0 || L <= 0) return DLK_OK;
    /* A shift of L or more reads only padding; clamping keeps (k-1-j)*dilation small. */
    if (dilation > L) dilation = L;
    const dlk_idx nblocks = (L + DLK_CC1D_TIME_BLOCK - 1) / DLK_CC1D_TIME_BLOCK;
    const dlk_idx ntasks = N * nblocks, Kx = C_in * k;
    int status = DLK_OK;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) \
    if (ntasks > 1 && (double)N * L * C_out * C_in * k >= DLK_CC1D_PARALLEL_WORK)
#endif
    {
        dlk_idx *rows = (dlk_idx *)malloc((size_t)(3 * Kx + 1) * sizeof(dlk_idx));
        int mine = rows ? DLK_OK : DLK_ENOMEM;
        dlk_idx task;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (task = 0; task < ntasks; task++) {
            if (mine != DLK_OK) continue;
            const dlk_idx n = task / nblocks;
            const dlk_idx t0 = (task % nblocks) * DLK_CC1D_TIME_BLOCK;
            const dlk_idx nt = DLK_MIN(DLK_CC1D_TIME_BLOCK, L - t0);
            T *on = out + n * C_out * L + t0;
            SFX(cc1d_rows_x)(C_in, L, k, dilation, t0, nt, rows, rows + Kx, rows + 2 * Kx);
            mine = GEMM_ROWS(0, C_out, nt, Kx, 1, weight, Kx, x + n * C_in * L, rows, 0,
                             NULL, rows + Kx, rows + 2 * Kx, 0, bias, on, L);
        }
        free(rows);
        if (mine != DLK_OK) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            status = mine;
        }
    }
    return status;
}

int SFX(dlk_causal_conv1d_backward)(const T *grad_out, const T *x, const T *weight,
                                    T *grad_x, T *grad_weight, T *grad_bias, dlk_idx N,
                                    dlk_idx C_in, dlk_idx L, dlk_idx C_out, dlk_idx k,
                                    dlk_idx dilation, int parts, int nthreads) {
    const int want_x = (parts & DLK_CC1D_GRAD_X) != 0, want_w = (parts & DLK_CC1D_GRAD_W) != 0;
    const int want_b = (parts & DLK_CC1D_GRAD_B) != 0;
    const dlk_idx wsize = k * C_out * C_in, Kx = C_in * k, Kg = k * C_out;
    if (N <= 0 || L <= 0) {
        if (want_w)
            for (dlk_idx i = 0; i < wsize; i++) grad_weight[i] = 0;
        for (dlk_idx o = 0; want_b && o < C_out; o++) grad_bias[o] = 0;
        return DLK_OK; /* grad_x is empty */
    }
    if (!want_x && !want_w && !want_b) return DLK_OK;
    if (dilation > L) dilation = L;
    /* Tasks are (sample, time block) pairs in sample-major order. grad_W and grad_bias
     * sum over all of them: a fixed number of contiguous task chunks, each with its own
     * partial sums, added in chunk order afterwards, so the sums do not depend on how
     * many threads ran the chunks. */
    const dlk_idx nblocks = (L + DLK_CC1D_TIME_BLOCK - 1) / DLK_CC1D_TIME_BLOCK;
    const dlk_idx ntasks = N * nblocks;
    const dlk_idx nchunks = DLK_MIN(ntasks, DLK_CC1D_GRADW_CHUNKS);
    const dlk_idx tb = DLK_MIN(L, DLK_CC1D_TIME_BLOCK);
    T *wx = SFX(cc1d_alloc)(want_x ? wsize : 0);
    T *partial = SFX(cc1d_alloc)(want_w ? nchunks * wsize : 0);
    double *bpart = (double *)malloc((size_t)(want_b ? nchunks * C_out : 1) * sizeof(double));
    if (!wx || !partial || !bpart) {
        free(wx);
        free(partial);
        free(bpart);
        return DLK_ENOMEM;
    }
    /* Wx[c][o*k + j] = w[o][c][j]: tiny (the weight), so serial. */
    for (dlk_idx oo = 0; want_x && oo < C_out; oo++)
        for (dlk_idx c = 0; c < C_in; c++)
            for (dlk_idx j = 0; j < k; j++)
                wx[c * Kg + oo * k + j] = weight[(oo * C_in + c) * k + j];

    int status = DLK_OK;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) \
    if (nchunks > 1 && (double)N * L * C_out * C_in * k >= DLK_CC1D_PARALLEL_WORK)
#endif
    {
        T *xt = SFX(cc1d_alloc)(want_w ? Kx * tb : 0);
        dlk_idx *xrows = (dlk_idx *)malloc((size_t)(want_w ? 2 * tb + k : 1) * sizeof(dlk_idx));
        dlk_idx *rows = (dlk_idx *)malloc((size_t)(want_x ? 3 * Kg + 1 : 1) * sizeof(dlk_idx));
        double *lanes =
            (double *)malloc((size_t)(want_b ? C_out * DLK_CC1D_LANES : 1) * sizeof(double));
        int mine = (xt && xrows && rows && lanes) ? DLK_OK : DLK_ENOMEM;
        dlk_idx c;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (c = 0; c < nchunks; c++) {
            T *gw = want_w ? partial + c * wsize : NULL;
            for (dlk_idx i = 0; want_w && i < wsize; i++) gw[i] = 0;
            for (dlk_idx i = 0; want_b && i < C_out * DLK_CC1D_LANES; i++) lanes[i] = 0;
            /* Both gradients of a block while its grad_out and x rows are in cache. */
            for (dlk_idx task = ntasks * c / nchunks; task < ntasks * (c + 1) / nchunks;
                 task++) {
                if (mine != DLK_OK) break;
                const dlk_idx n = task / nblocks;
                const dlk_idx t0 = (task % nblocks) * DLK_CC1D_TIME_BLOCK;
                const dlk_idx nt = DLK_MIN(DLK_CC1D_TIME_BLOCK, L - t0);
                const T *gn = grad_out + n * C_out * L;
                if (want_w) {
                    dlk_idx *goff = xrows, *boff = xrows + k, *lo = xrows + k + tb;
                    SFX(cc1d_xt)(x + n * C_in * L, C_in, L, k, dilation, t0, nt, xt, goff, boff,
                                 lo);
                    mine = GEMM_ROWS(0, C_out, Kx, nt, 1, gn + t0, L, xt, boff, C_in, goff, lo,
                                     NULL, 1, NULL, gw, Kx);
                    if (mine != DLK_OK) break;
                }
                if (want_x) {
                    SFX(cc1d_rows_g)(C_out, L, k, dilation, t0, nt, rows, rows + Kg,
                                     rows + 2 * Kg);
                    mine = GEMM_ROWS(0, C_in, nt, Kg, 1, wx, Kg, gn, rows, 0, NULL, rows + Kg,
                                     rows + 2 * Kg, 0, NULL, grad_x + n * C_in * L + t0, L);
                    if (mine != DLK_OK) break;
                }
                /* grad_bias while the block of grad_out is in cache (the GEMMs just read
                 * it), instead of a pass of its own over grad_out. */
                for (dlk_idx o = 0; want_b && o < C_out; o++)
                    SFX(cc1d_sum_lanes)(gn + o * L + t0, nt, lanes + o * DLK_CC1D_LANES);
            }
            for (dlk_idx o = 0; want_b && o < C_out; o++) {
                double acc = 0; /* lane order: fixed */
                for (int l = 0; l < DLK_CC1D_LANES; l++) acc += lanes[o * DLK_CC1D_LANES + l];
                bpart[c * C_out + o] = acc;
            }
        }
        free(xt);
        free(xrows);
        free(rows);
        free(lanes);
        if (mine != DLK_OK) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            status = mine;
        }
    }
    for (dlk_idx o = 0; status == DLK_OK && want_b && o < C_out; o++) {
        double acc = 0;
        for (dlk_idx cc = 0; cc < nchunks; cc++) acc += bpart[cc * C_out + o]; /* fixed order */
        grad_bias[o] = (T)acc;
    }
    free(bpart);
    if (status == DLK_OK && want_w) {
        for (dlk_idx cc = 1; cc < nchunks; cc++) /* chunk order: fixed */
            for (dlk_idx i = 0; i < wsize; i++) partial[i] += partial[cc * wsize + i];
        /* partial[o][j*C_in + c] -> grad_weight[o][c][j] */
        for (dlk_idx oo = 0; oo < C_out; oo++)
            for (dlk_idx c = 0; c < C_in; c++)
                for (dlk_idx j = 0; j < k; j++)
                    grad_weight[(oo * C_in + c) * k + j] = partial[oo * Kx + j * C_in + c];
    }
    free(wx);
    free(partial);
    return status;
}

#endif /* DLK_CC1D_BODY */
