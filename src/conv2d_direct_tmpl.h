/* Direct conv2d, forward and backward (template body, see conv2d_template.h and
 * conv2d_direct.c). */

/* yr[ow] += wv * xr[ow * sw] for ow in [lo, hi): the innermost loop of forward
 * and (with roles swapped) of grad_x. The stride-1 case is split out so the
 * compiler emits plain contiguous SIMD. */
static inline void FN(axpy_row)(T *restrict yr, const T *restrict xr, T wv, dlk_idx lo,
                                dlk_idx hi, dlk_idx sw) {
    if (sw == 1) {
        for (dlk_idx o = lo; o < hi; o++) yr[o] += wv * xr[o];
    } else {
        for (dlk_idx o = lo; o < hi; o++) yr[o] += wv * xr[o * sw];
    }
}

/* xr[ow * sw] += wv * yr[ow]: the scatter form used by grad_x. */
static inline void FN(scatter_row)(T *restrict xr, const T *restrict yr, T wv, dlk_idx lo,
                                   dlk_idx hi, dlk_idx sw) {
    if (sw == 1) {
        for (dlk_idx o = lo; o < hi; o++) xr[o] += wv * yr[o];
    } else {
        for (dlk_idx o = lo; o < hi; o++) xr[o * sw] += wv * yr[o];
    }
}

/* Forward on one (sample, group) from its zero-padded input planes xpad
 * (Cg planes of Hp x Wp, padding already applied, so no bounds checks): for
 * each output row and each DLK_VW-wide block of output columns, OCB output
 * channels accumulate in vector registers over every (input channel, tap);
 * each input vector loaded feeds OCB FMAs. The (input channel, tap) pairs run
 * as one flat loop t over toff[t], their offsets in xpad (direct_tap_offsets):
 * no divisions or nested loop overhead next to as few as 8 FMAs per pair
 * (depthwise). The OCB weights of pair t sit side by side (direct_pack_weights),
 * so the loop walks one weight pointer and broadcasts at constant offsets. OCB,
 * NV (vectors per row tile) and R (rows per tile) are compile-time constants at
 * every call site (always inlined), so the loops unroll into independent
 * accumulators. Rows of xpad are split by column phase (direct_phase_dims), so
 * every load is contiguous, whatever the stride. GCC/clang vector extensions
 * make the register blocking explicit (auto-vectorization vectorized the wrong
 * loop here). */
typedef T FN(vec) __attribute__((vector_size(DLK_VW * sizeof(T))));
/* integer lanes of T's width, for masks */
typedef TI FN(ivec) __attribute__((vector_size(DLK_VW * sizeof(T))));

/* y[0:n] = the first n < DLK_VW lanes of v, as fixed-size pieces of 8, 4, 2
 * and 1 lanes (one vector move each). A plain loop here became `rep movs`,
 * whose start-up cost dominated narrow planes (8 columns: about half the
 * forward's time on the digits CNN's first layer). */
#if defined(__AVX512F__)
static inline void FN(store_head)(T *y, const FN(vec) *v, dlk_idx n) {
    T lanes[DLK_VW];
    memcpy(lanes, v, sizeof lanes);
    dlk_idx j = 0;
    if (n & 8) { memcpy(y + j, lanes + j, 8 * sizeof(T)); j += 8; }
    if (n & 4) { memcpy(y + j, lanes + j, 4 * sizeof(T)); j += 4; }
    if (n & 2) { memcpy(y + j, lanes + j, 2 * sizeof(T)); j += 2; }
    if (n & 1) y[j] = lanes[j];
}
#else
/* Below AVX-512 the vector stays in a register: each piece is stored from its
 * low lanes, then the rest shifts down (a lane permute). Copied out through
 * an array as above, the accumulators of the whole tile went to the stack
 * for the tap loop too (GCC 12, 16 registers). */
static inline void FN(store_head)(T *y, const FN(vec) *vp, dlk_idx n) {
    FN(vec) v = *vp;
#if DLK_VW == 8
    if (n & 4) {
        memcpy(y, &v, 4 * sizeof(T));
        v = __builtin_shuffle(v, (FN(ivec)){4, 5, 6, 7, 0, 1, 2, 3});
        y += 4;
    }
#endif
#if DLK_VW >= 4
    if (n & 2) {
        memcpy(y, &v, 2 * sizeof(T));
#if DLK_VW == 8
        v = __builtin_shuffle(v, (FN(ivec)){2, 3, 4, 5, 6, 7, 0, 1});
#else
        v = __builtin_shuffle(v, (FN(ivec)){2, 3, 0, 1});
#endif
        y += 2;
    }
#endif
    if (n & 1) *y = v[0];
}
#endif

/* Accumulators of one tile (R * OCB * NV, at most 24 in the DLK_TILE table of
 * the forward) and input vectors per tap (R * NV, at most 16). */
#define DLK_DIRECT_ACC 24
#define DLK_DIRECT_XV 16

/* The loops over r, o and v below have constant trip counts once inlined, but
 * GCC unrolled them too late to keep acc[] in registers: it kept the array on
 * the stack and moved it in and out of registers around the tap loop, 48 vector
 * stores per tile next to 27 taps x 16 FMAs on CIFAR's first layer (measured
 * 345 -> 280 us on one thread with the pragmas). Compilers without the pragma
 * ignore it. */
static inline __attribute__((always_inline)) void FN(direct_tile)(
    const dlk_conv2d_geom *g, const T *xpad, dlk_idx Wp, const dlk_idx *toff, const T *wpk,
    const T *bias, T *y, const int OCB, const int NV, const int R, dlk_idx oh_begin,
    dlk_idx oh_end) {
    const dlk_idx CKK = g->C / g->groups * g->KH * g->KW;
    const dlk_idx OW = g->OW, OHW = g->OH * OW, rstep = g->stride_h * Wp;
    /* R output rows at a time (R > 1 only for few channels, e.g. depthwise):
     * one weight broadcast then feeds R * NV FMAs. */
    for (dlk_idx oh = oh_begin; oh + R <= oh_end; oh += R) {
        for (dlk_idx ow0 = 0; ow0 < OW; ow0 += NV * DLK_VW) {
            FN(vec) acc[DLK_DIRECT_ACC];
            const T *base = xpad + oh * rstep + ow0;
#pragma GCC unroll 24
            for (int o = 0; o < OCB; o++) {
                const FN(vec) b = (FN(vec)){0} + (bias ? bias[o] : (T)0);
#pragma GCC unroll 24
                for (int i = 0; i < R * NV; i++) acc[o * R * NV + i] = b;
            }
            /* one base pointer per row and one shared tap offset keep the
             * address arithmetic out of the loop (runtime row strides otherwise
             * cost an index register per row and spill) */
            const T *rowp[8];
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) rowp[r] = base + r * rstep;
            const T *wt = wpk;
            for (dlk_idx t = 0; t < CKK; t++, wt += OCB * DLK_DIRECT_WREP) {
                const dlk_idx off = toff[t];
                FN(vec) xv[DLK_DIRECT_XV];
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
#pragma GCC unroll 2
                    for (int v = 0; v < NV; v++)
                        memcpy(&xv[r * NV + v], rowp[r] + off + v * DLK_VW, sizeof xv[0]);
#pragma GCC unroll 24
                for (int o = 0; o < OCB; o++) {
#if DLK_DIRECT_WREP > 1
                    FN(vec) wv;
                    memcpy(&wv, wt + o * DLK_VW, sizeof wv);
#else
                    const T wv = wt[o];
#endif
#pragma GCC unroll 16
                    for (int i = 0; i < R * NV; i++) acc[o * R * NV + i] += wv * xv[i];
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++) {
                    const dlk_idx c0 = ow0 + v * DLK_VW;
                    const dlk_idx nv = DLK_MIN(DLK_VW, OW - c0);
                    if (nv <= 0) break;
#pragma GCC unroll 24
                    for (int o = 0; o < OCB; o++) {
                        T *yr = y + o * OHW + (oh + r) * OW + c0;
                        const FN(vec) a = acc[o * R * NV + r * NV + v];
                        if (nv == DLK_VW) {
                            memcpy(yr, &a, sizeof a);
                        } else {
                            FN(store_head)(yr, &a, nv);
                        }
                    }
                }
        }
    }
}

#if defined(__AVX512F__)
/* Vectors of DLK_VW columns per tile row of the blocked forward with AVX-512:
 * two when the row is wide enough to fill most of them, else one (narrow rows
 * would waste lanes). */
static int FN(direct_tile_cols)(dlk_idx OW) { return OW >= 2 * DLK_VW - DLK_VW / 2 ? 2 : 1; }
#endif

/* wpk[oc0 * CKK + t * B + o] = weight[(oc0 + o) * CKK + t] for each block of B
 * = min(DLK_DIRECT_OCB, channels left in the group) output channels starting at oc0, the
 * blocks of the forward's tiles: the weights of one (input channel, tap) pair
 * for a whole tile are then one short contiguous run. Each weight is stored
 * DLK_DIRECT_WREP times in a row (already broadcast where that is 1 vector). */
static void FN(direct_pack_weights)(const dlk_conv2d_geom *g, const T *weight, T *wpk) {
    const dlk_idx OCg = g->OC / g->groups, CKK = g->C / g->groups * g->KH * g->KW;
    for (dlk_idx grp = 0; grp < g->groups; grp++)
        for (dlk_idx ocl = 0; ocl < OCg;) {
            const dlk_idx oc0 = grp * OCg + ocl, B = DLK_MIN(DLK_DIRECT_OCB, OCg - ocl);
            for (dlk_idx t = 0; t < CKK; t++)
                for (dlk_idx o = 0; o < B; o++)
#if DLK_DIRECT_WREP > 1
                    for (dlk_idx l = 0; l < DLK_DIRECT_WREP; l++)
                        wpk[(oc0 * CKK + t * B + o) * DLK_DIRECT_WREP + l] =
                            weight[(oc0 + o) * CKK + t];
#else
                    wpk[oc0 * CKK + t * B + o] = weight[(oc0 + o) * CKK + t];
#endif
            ocl += B;
        }
}

/* toff[ic * KH * KW + kh * KW + kw]: offset in the phase-split padded planes
 * (direct_phase_dims, Hp rows of Wp) of tap (kh, kw) of input channel ic,
 * relative to the element that output (0, 0) reads at tap (0, 0). */
static void FN(direct_tap_offsets)(const dlk_conv2d_geom *g, dlk_idx Hp, dlk_idx Wp,
                                   dlk_idx *toff) {
    const dlk_idx Cg = g->C / g->groups, sw = g->stride_w, Wq = Wp / sw;
    for (dlk_idx ic = 0; ic < Cg; ic++)
        for (dlk_idx kh = 0; kh < g->KH; kh++)
            for (dlk_idx kw = 0; kw < g->KW; kw++) {
                const dlk_idx q = kw * g->dil_w;
                toff[(ic * g->KH + kh) * g->KW + kw] =
                    (ic * Hp + kh * g->dil_h) * Wp + (q % sw) * Wq + q / sw;
            }
}

/* Padded planes of the blocked forward: Hp rows; each row holds its padded
 * columns split by phase modulo stride_w (sw segments of Wq: column q at
 * (q % sw) * Wq + q / sw), so that output columns ow*sw + q are contiguous for
 * every tap and strided convolutions load whole vectors too. */
static void FN(direct_phase_dims)(const dlk_conv2d_geom *g, dlk_idx *Hp, dlk_idx *Wrow) {
    const dlk_idx sw = g->stride_w;
    const dlk_idx blocks = 2 * ((g->OW + 2 * DLK_VW - 1) / (2 * DLK_VW));
    const dlk_idx Wq = DLK_MAX((g->W + g->pad_w + sw - 1) / sw,
                               blocks * DLK_VW + (g->KW - 1) * g->dil_w / sw);
    *Hp = DLK_MAX(g->H + g->pad_h, (g->OH - 1) * g->stride_h + (g->KH - 1) * g->dil_h + 1);
    *Wrow = sw * Wq;
}

/* Copies nc input planes (H x W, contiguous from xp) into the interior of
 * the phase-split padded planes xpad (direct_phase_dims). Only interior
 * positions are written, the same ones for every call with one geometry, so
 * a buffer zeroed once keeps its zero padding. */
static void FN(direct_pad_copy)(const dlk_conv2d_geom *g, const T *xp, dlk_idx nc, dlk_idx Hp,
                                dlk_idx Wp, T *xpad) {
    const dlk_idx H = g->H, W = g->W, sw = g->stride_w, Wq = Wp / sw;
    for (dlk_idx ic = 0; ic < nc; ic++)
        for (dlk_idx ih = 0; ih < H; ih++) {
            T *restrict dst = xpad + (ic * Hp + ih + g->pad_h) * Wp;
            const T *restrict src = xp + (ic * H + ih) * W;
            if (sw == 1) { /* inline: a memcpy call per short row costs more than the row */
                for (dlk_idx iw = 0; iw < W; iw++) dst[g->pad_w + iw] = src[iw];
            } else {
                for (dlk_idx iw = 0; iw < W; iw++) {
                    const dlk_idx q = iw + g->pad_w;
                    dst[(q % sw) * Wq + q / sw] = src[iw];
                }
            }
        }
}

/* Forward without a padded copy: one task per output plane; for each (input
 * channel, tap), the valid output rectangle gets a scaled, shifted input plane
 * added. Used when the padded planes of a group would not fit the per-thread
 * budget (DLK_DIRECT_PAD_BYTES). */
static void FN(direct_forward_planes)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                                      const T *bias, T *y, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, KH = g->KH, KW = g->KW, OW = g->OW;
    const dlk_idx Cg = C / g->groups, OCg = OC / g->groups;
    const dlk_idx HW = g->H * g->W, OHW = g->OH * OW, KK = KH * KW;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (dlk_idx t = 0; t < g->N * OC; t++) {
        const dlk_idx n = t / OC, oc = t % OC, grp = oc / OCg;
        T *restrict yp = y + t * OHW;
        const T b = bias ? bias[oc] : (T)0;
        for (dlk_idx i = 0; i < OHW; i++) yp[i] = b;
        for (dlk_idx ic = 0; ic < Cg; ic++) {
            const T *xp = x + (n * C + grp * Cg + ic) * HW;
            const T *wp = weight + (oc * Cg + ic) * KK;
            for (dlk_idx kh = 0; kh < KH; kh++) {
                const dlk_idx off_h = kh * g->dil_h - g->pad_h;
                dlk_idx oh0, oh1;
                dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, off_h, &oh0, &oh1);
                for (dlk_idx kw = 0; kw < KW; kw++) {
                    const dlk_idx off_w = kw * g->dil_w - g->pad_w;
                    dlk_idx ow0, ow1;
                    dlk_conv2d_valid_range(OW, g->W, g->stride_w, off_w, &ow0, &ow1);
                    const T wv = wp[kh * KW + kw];
                    for (dlk_idx oh = oh0; oh < oh1; oh++) {
                        /* xr + ow * stride_w is the input column of output ow; only
                         * [ow0, ow1) is dereferenced. */
                        const T *xr = xp + (oh * g->stride_h + off_h) * g->W + off_w;
                        FN(axpy_row)(yp + oh * OW, xr, wv, ow0, ow1, g->stride_w);
                    }
                }
            }
        }
    }
}

#include "conv2d_depthwise_tmpl.h"

int FN(dlk_conv2d_direct_forward)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                                  const T *bias, T *y, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, H = g->H, W = g->W;
    const dlk_idx Cg = C / g->groups, OCg = OC / g->groups, OHW = g->OH * g->OW;
    const dlk_idx KK = g->KH * g->KW, OH = g->OH;
    dlk_idx Hp, Wp;
    FN(direct_phase_dims)(g, &Hp, &Wp);
    const size_t pad_bytes = (size_t)(Cg * Hp * Wp) * sizeof(T);
    if (FN(dw3x3_applies)(g) && pad_bytes <= DLK_DIRECT_PAD_BYTES)
        return FN(dw3x3_forward)(g, x, weight, bias, y, nthreads);
    if (pad_bytes > DLK_DIRECT_PAD_BYTES) {
        FN(direct_forward_planes)(g, x, weight, bias, y, nthreads);
        return DLK_OK;
    }
    dlk_idx *toff = (dlk_idx *)malloc((size_t)(Cg * KK) * sizeof(dlk_idx));
    T *wpk = (T *)malloc((size_t)(OC * Cg * KK * DLK_DIRECT_WREP) * sizeof(T));
    if (!toff || !wpk) {
        free(toff);
        free(wpk);
        return DLK_ENOMEM;
    }
    FN(direct_tap_offsets)(g, Hp, Wp, toff);
    FN(direct_pack_weights)(g, weight, wpk);
    int failed = 0;
    /* One task per (sample, group): its input planes are copied once into a
     * zero-padded per-thread buffer, then every output channel of the group is
     * computed from it in blocks of up to 8 channels. Every task writes the
     * same interior positions of the buffer, so the zero padding is set once
     * per thread (calloc), not per task. */
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *xpad = (T *)calloc(pad_bytes / sizeof(T), sizeof(T));
        if (!xpad) failed = 1;
#pragma omp for schedule(static)
        for (dlk_idx t = 0; t < g->N * g->groups; t++) {
            if (!xpad) continue;
            const dlk_idx n = t / g->groups, grp = t % g->groups;
            FN(direct_pad_copy)(g, x + (n * C + grp * Cg) * H * W, Cg, Hp, Wp, xpad);
            for (dlk_idx ocl = 0; ocl < OCg;) {
                const dlk_idx oc = grp * OCg + ocl;
                const T *w = wpk + oc * Cg * KK * DLK_DIRECT_WREP;
                const T *b = bias ? bias + oc : NULL;
                T *yp = y + (n * OC + oc) * OHW;
                const dlk_idx left = OCg - ocl;
                /* OCB = min(left, DLK_DIRECT_OCB) channels per tile, R rows so
                 * that OCB * R * NV gives 12-24 accumulators with AVX-512, 8-12
                 * below it (conv2d_direct.c): each weight broadcast feeds R * NV
                 * FMAs, each input vector OCB. Rows left over (OH % R) run with
                 * R = 1. Constant arguments, so each call inlines into its own
                 * unrolled, register-allocated loop nest. */
#if defined(__AVX512F__)
                const int wide = FN(direct_tile_cols)(g->OW) == 2;
#define DLK_TILE(OCB, R2, R1)                                                      \
    case OCB: {                                                                    \
        const int RR = wide ? R2 : R1;                                             \
        const dlk_idx main_rows = OH - OH % RR;                                    \
        if (wide) {                                                                \
            FN(direct_tile)(g, xpad, Wp, toff, w, b, yp, OCB, 2, R2, 0, main_rows); \
            if (R2 > 1)                                                            \
                FN(direct_tile)(g, xpad, Wp, toff, w, b, yp, OCB, 2, 1, main_rows, OH); \
        } else {                                                                   \
            FN(direct_tile)(g, xpad, Wp, toff, w, b, yp, OCB, 1, R1, 0, main_rows); \
            if (R1 > 1)                                                            \
                FN(direct_tile)(g, xpad, Wp, toff, w, b, yp, OCB, 1, 1, main_rows, OH); \
        }                                                                          \
        ocl += OCB;                                                                \
        break;                                                                     \
    }
                switch (DLK_MIN(left, 8)) {
                DLK_TILE(8, 1, 2)
                DLK_TILE(7, 1, 2)
                DLK_TILE(6, 2, 4)
                DLK_TILE(5, 2, 4)
                DLK_TILE(4, 2, 4)
                DLK_TILE(3, 4, 4)
                DLK_TILE(2, 4, 8)
                default: DLK_TILE(1, DLK_DW_ROWS, 8)
                }
#else
#define DLK_TILE(OCB, R)                                                           \
    case OCB: {                                                                    \
        const dlk_idx main_rows = OH - OH % R;                                     \
        FN(direct_tile)(g, xpad, Wp, toff, w, b, yp, OCB, 1, R, 0, main_rows);    \
        if (R > 1)                                                                 \
            FN(direct_tile)(g, xpad, Wp, toff, w, b, yp, OCB, 1, 1, main_rows, OH); \
        ocl += OCB;                                                                \
        break;                                                                     \
    }
                switch (DLK_MIN(left, DLK_DIRECT_OCB)) {
                DLK_TILE(6, 2)
                DLK_TILE(5, 2)
                DLK_TILE(4, DLK_DIRECT_ROWS4)
                DLK_TILE(3, DLK_DIRECT_ROWS3)
                DLK_TILE(2, DLK_DIRECT_ROWS2)
                default: DLK_TILE(1, 8)
                }
#endif
#undef DLK_TILE
            }
        }
        free(xpad);
    }
    free(toff);
    free(wpk);
    return failed ? DLK_ENOMEM : DLK_OK;
}

/* For stride 1, grad_x is a forward convolution of grad_out (padded by
 * (KH-1)*dil_h - pad_h on top, and so on) with the spatially flipped kernel, input
 * and output channels swapped within each group: run the register-blocked
 * forward on it. Returns -1 when that does not apply (stride > 1, or padding
 * larger than the dilated kernel reach), DLK_OK or DLK_ENOMEM otherwise. */
static int FN(direct_grad_x_as_forward)(const dlk_conv2d_geom *g, const T *grad_out,
                                        const T *weight, T *grad_x, int nthreads) {
    const dlk_idx KH = g->KH, KW = g->KW, KK = KH * KW;
    const dlk_idx Cg = g->C / g->groups, OCg = g->OC / g->groups;
    dlk_conv2d_geom t = *g;
    if (g->stride_h != 1 || g->stride_w != 1) return -1;
    t.pad_h = (KH - 1) * g->dil_h - g->pad_h;
    t.pad_w = (KW - 1) * g->dil_w - g->pad_w;
    if (t.pad_h < 0 || t.pad_w < 0) return -1;
    t.C = g->OC; t.H = g->OH; t.W = g->OW;
    t.OC = g->C; t.OH = g->H; t.OW = g->W;
    T *wt = (T *)malloc((size_t)(g->C * OCg * KK) * sizeof(T));
    if (!wt) return DLK_ENOMEM;
    for (dlk_idx c = 0; c < g->C; c++) {
        const dlk_idx grp = c / Cg, cl = c % Cg;
        for (dlk_idx ocl = 0; ocl < OCg; ocl++) {
            const T *src = weight + ((grp * OCg + ocl) * Cg + cl) * KK;
            T *dst = wt + (c * OCg + ocl) * KK;
            for (dlk_idx k = 0; k < KK; k++) dst[k] = src[KK - 1 - k];
        }
    }
    const int status = FN(dlk_conv2d_direct_forward)(&t, grad_out, wt, NULL, grad_x, nthreads);
    free(wt);
    return status;
}

/* grad_weight tile: acc[o][j] = sum over the output plane of grad_out channel
 * o (of OCB, planes OHW apart from gy) times x at tap j (of TB, offsets toff
 * into the padded planes xpad). Each grad_out vector loaded feeds TB FMAs and
 * each x vector OCB, with OCB * TB independent accumulators. The last partial
 * column block of a row reads zero-filled grad_out lanes and x lanes masked to
 * zero: x there may be a real column no output reads, and 0 * inf would turn
 * the gradient NaN. The zero-filled tails (gtail, OCB x OH vectors) are built
 * once per channel block by gw_sample, long before they are loaded as vectors
 * (a vector load of just-written scalars would stall on store forwarding). Lanes are summed in a fixed order and added to out[o *
 * CKK + j]. OCB and TB are constants at every call site (always inlined). */
/* Sum of a vector's lanes, pairwise in a fixed order. */
#if defined(__AVX512F__)
static inline T FN(lane_sum)(FN(vec) v) {
    T lanes[DLK_VW];
    memcpy(lanes, &v, sizeof lanes);
    for (int half = DLK_VW / 2; half >= 1; half /= 2)
        for (int l = 0; l < half; l++) lanes[l] += lanes[l + half];
    return lanes[0];
}
#else
/* the same sums, in registers (see store_head): lane l of v + (v shifted down
 * by half) is lanes[l] + lanes[l + half] */
static inline T FN(lane_sum)(FN(vec) v) {
#if DLK_VW == 8
    v += __builtin_shuffle(v, (FN(ivec)){4, 5, 6, 7, 0, 1, 2, 3});
#endif
#if DLK_VW >= 4
#if DLK_VW == 8
    v += __builtin_shuffle(v, (FN(ivec)){2, 3, 4, 5, 6, 7, 0, 1});
#else
    v += __builtin_shuffle(v, (FN(ivec)){2, 3, 0, 1});
#endif
#endif
    return v[0] + v[1];
}
#endif

/* The loops over o and j below have constant trip counts once inlined; with
 * AVX-512 GCC unrolls them all, below it it left some (3 channels, 1 tap)
 * rolled, their grad_out vectors copied through the stack. */
#ifndef DLK_GW_UNROLL
#if defined(__AVX512F__)
#define DLK_GW_UNROLL
#else
#define DLK_GW_UNROLL _Pragma("GCC unroll 12")
#endif
#endif
static inline __attribute__((always_inline)) void FN(gw_tile)(
    const dlk_conv2d_geom *g, const T *gy, const T *gtail, const T *xpad, dlk_idx rstep,
    const dlk_idx *toff, T *out, T *vout, dlk_idx CKK, const int OCB, const int TB) {
    const dlk_idx OW = g->OW, OHW = g->OH * OW, full = OW - OW % DLK_VW, nv = OW - full;
    FN(vec) acc[4][12];
    DLK_GW_UNROLL
    for (int o = 0; o < OCB; o++)
        DLK_GW_UNROLL
        for (int j = 0; j < TB; j++) acc[o][j] = (FN(vec)){0};
    /* lanes below nv: a compare, not a loop (which became `rep stos` per tile) */
    FN(ivec) iota;
    for (int l = 0; l < DLK_VW; l++) iota[l] = (TI)l;
    const FN(ivec) mask = (FN(ivec))(iota < (TI)nv);
    /* column blocks outside, rows inside: the inner loop runs OH times (not
     * OW / DLK_VW, often 1 or 2) with two running offsets, one into grad_out, one
     * into xpad */
    const T *xr[12], *gr[4];
    DLK_GW_UNROLL
    for (int j = 0; j < TB; j++) xr[j] = xpad + toff[j];
    DLK_GW_UNROLL
    for (int o = 0; o < OCB; o++) gr[o] = gy + o * OHW;
    for (dlk_idx ow0 = 0; ow0 < full; ow0 += DLK_VW) {
        for (dlk_idx oh = 0, go = ow0, xo = ow0; oh < g->OH; oh++, go += OW, xo += rstep) {
            FN(vec) gv[4];
            DLK_GW_UNROLL
            for (int o = 0; o < OCB; o++) memcpy(&gv[o], gr[o] + go, sizeof gv[o]);
            DLK_GW_UNROLL
            for (int j = 0; j < TB; j++) {
                FN(vec) xv;
                memcpy(&xv, xr[j] + xo, sizeof xv);
                DLK_GW_UNROLL
                for (int o = 0; o < OCB; o++) acc[o][j] += gv[o] * xv;
            }
        }
    }
    if (nv) {
        for (dlk_idx oh = 0, xo = full; oh < g->OH; oh++, xo += rstep) {
            FN(vec) gv[4];
            DLK_GW_UNROLL
            for (int o = 0; o < OCB; o++)
                memcpy(&gv[o], gtail + (o * g->OH + oh) * DLK_VW, sizeof gv[o]);
            DLK_GW_UNROLL
            for (int j = 0; j < TB; j++) {
                FN(ivec) xi;
                memcpy(&xi, xr[j] + xo, sizeof xi);
                xi &= mask;
                FN(vec) xv;
                memcpy(&xv, &xi, sizeof xv);
                DLK_GW_UNROLL
                for (int o = 0; o < OCB; o++) acc[o][j] += gv[o] * xv;
            }
        }
    }
    if (vout) { /* lanes kept: one vector add per output instead of a lane sum */
        DLK_GW_UNROLL
        for (int o = 0; o < OCB; o++)
            DLK_GW_UNROLL
            for (int j = 0; j < TB; j++) {
                FN(vec) v;
                memcpy(&v, vout + (o * CKK + j) * DLK_VW, sizeof v);
                v += acc[o][j];
                memcpy(vout + (o * CKK + j) * DLK_VW, &v, sizeof v);
            }
        return;
    }
    DLK_GW_UNROLL
    for (int o = 0; o < OCB; o++)
        DLK_GW_UNROLL
        for (int j = 0; j < TB; j++) out[o * CKK + j] += FN(lane_sum)(acc[o][j]);
}

/* Taps [0, ntaps) of OCB output channels in blocks of at most TBMAX, the last
 * block with exactly the taps left (each tile size its own inlined loop). */
#define DLK_GW_TAPS(OCB, TBMAX)                                                         \
    for (dlk_idx j0 = 0; j0 < ntaps; j0 += TBMAX) {                                     \
        const dlk_idx nb = DLK_MIN(TBMAX, ntaps - j0);                                  \
        switch (nb) {                                                                   \
        DLK_GW_CASE(OCB, 1) DLK_GW_CASE(OCB, 2) DLK_GW_CASE(OCB, 3) DLK_GW_CASE(OCB, 4) \
        DLK_GW_CASE_HI_##TBMAX(OCB)                                                     \
        }                                                                               \
    }
#define DLK_GW_CASE(OCB, TB) \
    case TB: FN(gw_tile)(g, gy, gtail, xpad, rstep, toff + j0, out + j0,        \
                      vout ? vout + j0 * DLK_VW : NULL, CKK, OCB, TB);                 \
        break;
#define DLK_GW_CASE_HI_4(OCB)
#define DLK_GW_CASE_HI_6(OCB) DLK_GW_CASE(OCB, 5) DLK_GW_CASE(OCB, 6)
#define DLK_GW_CASE_HI_8(OCB) DLK_GW_CASE(OCB, 5) DLK_GW_CASE(OCB, 6) DLK_GW_CASE(OCB, 7) \
    DLK_GW_CASE(OCB, 8)
#define DLK_GW_CASE_HI_12(OCB) DLK_GW_CASE_HI_8(OCB) DLK_GW_CASE(OCB, 9) \
    DLK_GW_CASE(OCB, 10) DLK_GW_CASE(OCB, 11) DLK_GW_CASE(OCB, 12)

/* One sample's contribution for the output channels [0, OCg) of a group and
 * the ntaps (input channel, tap) pairs whose offsets are toff, from padded
 * planes xpad: with AVX-512, 4 channels x 6 taps per pass over grad_out
 * (measured: 4 x 4 and 4 x 7 are slower on CIFAR's first layer), 2 x 8, or
 * 1 x 12 (few channels per group, e.g. depthwise, reuse each grad_out vector
 * over more taps instead); with 16 registers (DLK_GW_OCB, conv2d_direct.c)
 * OCB x TB accumulators + OCB grad_out vectors + one x vector (+ a scratch
 * without FMA) must fit them: 3 x 4, 2 x 6 or 1 x 12. */
static void FN(gw_sample)(const dlk_conv2d_geom *g, const T *gy_group, const T *xpad,
                          dlk_idx rstep, const dlk_idx *toff, dlk_idx ntaps, T *out_group,
                          dlk_idx CKK, T *gtail, T *vout_group) {
    const dlk_idx OCg = g->OC / g->groups, OW = g->OW, OHW = g->OH * OW;
    const dlk_idx full = OW - OW % DLK_VW;
    for (dlk_idx ocl = 0; ocl < OCg;) {
        const T *gy = gy_group + ocl * OHW;
        T *out = out_group + ocl * CKK;
        T *vout = vout_group ? vout_group + ocl * CKK * DLK_VW : NULL;
        const dlk_idx left = OCg - ocl;
        if (full < OW)
            for (dlk_idx o = 0; o < DLK_MIN(DLK_GW_OCB, left); o++)
                for (dlk_idx oh = 0; oh < g->OH; oh++) {
                    T *dst = gtail + (o * g->OH + oh) * DLK_VW;
                    for (dlk_idx l = 0; l < DLK_VW; l++)
                        dst[l] = full + l < OW ? gy[o * OHW + oh * OW + full + l] : (T)0;
                }
#if defined(__AVX512F__)
        if (left >= 4) {
            DLK_GW_TAPS(4, 6)
            ocl += 4;
        } else if (left >= 2) {
            DLK_GW_TAPS(2, 8)
            ocl += 2;
        } else {
            DLK_GW_TAPS(1, 12)
            ocl += 1;
        }
#else
#if DLK_GW_OCB >= 3
        if (left >= 3) {
            DLK_GW_TAPS(3, 4)
            ocl += 3;
        } else
#endif
        if (left >= 2) {
            DLK_GW_TAPS(2, 6)
            ocl += 2;
        } else {
            DLK_GW_TAPS(1, 12)
            ocl += 1;
        }
#endif
    }
}
#undef DLK_GW_TAPS
#undef DLK_GW_CASE
#undef DLK_GW_CASE_HI_4
#undef DLK_GW_CASE_HI_6
#undef DLK_GW_CASE_HI_8
#undef DLK_GW_CASE_HI_12

/* grad_weight[oc, c, kh, kw] = sum over n, oh, ow of grad_out[n, oc, oh, ow] *
 * xpad[n, c, oh*sh + kh*dh, ow*sw + kw*dw]. The samples are split into
 * DLK_GW_CHUNKS fixed chunks (independent of the thread count); task (chunk,
 * group) copies each sample's input channels, a slab of at most
 * DLK_GW_SLAB_BYTES at a time (stays in L2), into zero-padded phase-split
 * planes (as the forward), then gw_sample accumulates register tiles of
 * (output channel, tap) sums over the output plane. Each chunk keeps its
 * partial sums as whole vectors (DLK_VW lanes per weight) when they fit in
 * DLK_GW_VPART_BYTES: on small planes (few FMAs per weight and sample) summing
 * the lanes per sample would cost as much as the FMAs. The budget is a memory
 * cap in bytes, not a lane count, so narrower vectors (below AVX-512) keep
 * vector partials for every shape that keeps them with AVX-512. Chunks, then
 * lanes, are added in a fixed order, so the result is the same for any thread
 * count. */
#define DLK_GW_CHUNKS 8
#define DLK_GW_SLAB_BYTES ((size_t)256 << 10)
#define DLK_GW_VPART_BYTES ((size_t)8 << 20)
static int FN(direct_grad_weight)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                  T *grad_weight, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, KK = g->KH * g->KW;
    const dlk_idx Cg = C / g->groups, OCg = OC / g->groups, CKK = Cg * KK;
    const dlk_idx P = DLK_MAX(1, DLK_MIN(g->N, DLK_GW_CHUNKS));
    const dlk_idx per = (g->N + P - 1) / P, total = OC * CKK;
    const dlk_idx lanes =
        (size_t)(P * total * DLK_VW) * sizeof(T) <= DLK_GW_VPART_BYTES ? DLK_VW : 1;
    dlk_idx Hp, Wp;
    FN(direct_phase_dims)(g, &Hp, &Wp);
    const dlk_idx plane = Hp * Wp, rstep = g->stride_h * Wp;
    const dlk_idx slab = DLK_MAX(1, DLK_MIN(Cg, (dlk_idx)(DLK_GW_SLAB_BYTES / sizeof(T)) / plane));
    T *part = (T *)calloc((size_t)(P * total * lanes), sizeof(T));
    dlk_idx *toff = (dlk_idx *)malloc((size_t)CKK * sizeof(dlk_idx));
    if (!part || !toff) {
        free(part);
        free(toff);
        return DLK_ENOMEM;
    }
    FN(direct_tap_offsets)(g, Hp, Wp, toff);
    /* offsets relative to the slab's first plane */
    for (dlk_idx t = 0; t < CKK; t++) toff[t] -= (t / KK) / slab * slab * plane;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *xpad = (T *)calloc((size_t)(slab * plane + DLK_GW_OCB * g->OH * DLK_VW), sizeof(T));
        if (!xpad) failed = 1;
        T *gtail = xpad ? xpad + slab * plane : NULL;
#pragma omp for schedule(static)
        for (dlk_idx t = 0; t < P * g->groups; t++) {
            if (!xpad) continue;
            const dlk_idx p = t / g->groups, grp = t % g->groups;
            T *pw = part + (p * total + grp * OCg * CKK) * lanes;
            for (dlk_idx n = p * per; n < DLK_MIN(g->N, (p + 1) * per); n++) {
                const T *gy = grad_out + (n * OC + grp * OCg) * g->OH * g->OW;
                for (dlk_idx c0 = 0; c0 < Cg; c0 += slab) {
                    const dlk_idx nc = DLK_MIN(slab, Cg - c0);
                    FN(direct_pad_copy)(g, x + (n * C + grp * Cg + c0) * g->H * g->W, nc, Hp,
                                        Wp, xpad);
                    FN(gw_sample)(g, gy, xpad, rstep, toff + c0 * KK, nc * KK,
                                  pw + c0 * KK * lanes, CKK, gtail,
                                  lanes > 1 ? pw + c0 * KK * lanes : NULL);
                }
            }
        }
        free(xpad);
    }
    free(toff);
    if (!failed) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (dlk_idx i = 0; i < total; i++) {
            if (lanes > 1) {
                FN(vec) s = {0};
                for (dlk_idx p = 0; p < P; p++) {
                    FN(vec) v;
                    memcpy(&v, part + (p * total + i) * DLK_VW, sizeof v);
                    s += v;
                }
                grad_weight[i] = FN(lane_sum)(s);
            } else {
                T s = 0;
                for (dlk_idx p = 0; p < P; p++) s += part[p * total + i];
                grad_weight[i] = s;
            }
        }
    }
    free(part);
    return failed ? DLK_ENOMEM : DLK_OK;
}

int FN(dlk_conv2d_direct_backward)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                    const T *weight, T *grad_x, T *grad_weight, T *grad_bias,
                                    int parts, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, KH = g->KH, KW = g->KW, OW = g->OW, W = g->W;
    const dlk_idx Cg = C / g->groups, OCg = OC / g->groups;
    const dlk_idx HW = g->H * W, OHW = g->OH * OW, KK = KH * KW;

    /* grad_x: as a forward convolution when the stride is 1; otherwise one task
     * per input plane (n, c), which scatters from every output channel of its
     * group in a fixed order: race-free and thread-count independent. */
    const int status = (parts & DLK_CONV2D_GRAD_X)
                           ? FN(direct_grad_x_as_forward)(g, grad_out, weight, grad_x, nthreads)
                           : DLK_OK;
    if (status == DLK_ENOMEM) return status;
    if (status != DLK_OK) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (dlk_idx t = 0; t < g->N * C; t++) {
            const dlk_idx n = t / C, c = t % C, grp = c / Cg, icl = c % Cg;
            T *restrict gxp = grad_x + t * HW;
            for (dlk_idx i = 0; i < HW; i++) gxp[i] = 0;
            for (dlk_idx ocl = 0; ocl < OCg; ocl++) {
                const dlk_idx oc = grp * OCg + ocl;
                const T *gyp = grad_out + (n * OC + oc) * OHW;
                const T *wp = weight + (oc * Cg + icl) * KK;
                for (dlk_idx kh = 0; kh < KH; kh++) {
                    const dlk_idx off_h = kh * g->dil_h - g->pad_h;
                    dlk_idx oh0, oh1;
                    dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, off_h, &oh0, &oh1);
                    for (dlk_idx kw = 0; kw < KW; kw++) {
                        const dlk_idx off_w = kw * g->dil_w - g->pad_w;
                        dlk_idx ow0, ow1;
                        dlk_conv2d_valid_range(OW, W, g->stride_w, off_w, &ow0, &ow1);
                        const T wv = wp[kh * KW + kw];
                        for (dlk_idx oh = oh0; oh < oh1; oh++) {
                            T *xr = gxp + (oh * g->stride_h + off_h) * W + off_w;
                            FN(scatter_row)(xr, gyp + oh * OW, wv, ow0, ow1, g->stride_w);
                        }
                    }
                }
            }
        }
    }

    if (parts & DLK_CONV2D_GRAD_W) {
        const int gw_status = FN(direct_grad_weight)(g, grad_out, x, grad_weight, nthreads);
        if (gw_status != DLK_OK) return gw_status;
    }
    if (parts & DLK_CONV2D_GRAD_B) FN(dlk_conv2d_bias_grad)(g, grad_out, grad_bias, nthreads);
    return DLK_OK;
}
