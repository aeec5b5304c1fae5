/* Depthwise 3x3 forward, stride 1, dilation 1, one input and one output
 * channel per group (template body, see conv2d_template.h and conv2d_direct.c;
 * semantics in conv2d.h, reference dlkern/reference/conv2d.py).
 *
 * The general direct tile (direct_tile) spends one vector load per FMA here:
 * with a single channel per group no input vector is reused across output
 * channels, and two of every three taps read across a cache line. This one
 * slides down the rows instead: every column shift of a padded input row is
 * made once per tile and feeds the up to three output rows that read that
 * input row, with the nine weights held in registers. With AVX-512 the row is
 * loaded as DW_NV + 1 aligned vectors and the shifts are built in registers
 * (one two-source lane permute each): per output vector 9 FMAs, (R + 2) / R *
 * 1.5 loads and about 2 shuffles instead of 9 (mostly line-splitting) loads.
 * Narrower vectors have no one-instruction cross-lane shift (AVX2 needs two or
 * three, SSE two), so below AVX-512 each shift is its own unaligned load:
 * (R + 2) / R * 3 loads per 9 FMAs, and on 32- or 16-byte vectors fewer of
 * them split a cache line.
 * The padded plane puts padded column 0 at a 64-byte boundary (row pitch a
 * multiple of the vector width, buffer aligned by hand) so the AVX-512 loads
 * are aligned; its zero padding is written once per thread, as in the general
 * forward. Each output element is one thread's fixed sequence of FMAs, so
 * results do not depend on the thread count.
 * O(N * C * OH * OW * 9) multiply-adds, O(C * H * W) copies. */

/* Tile: DW_R output rows x DW_NV vectors. Measured on a 32 x 32 plane (one
 * thread, ns per plane): 1 x 4 191, 1 x 8 202, 2 x 4 218, 2 x 6 205, 2 x 8 203
 * (the general tile: 334). Few accumulators leave registers for the nine
 * weights and the shifted rows. */
#ifndef DW_NV
#define DW_NV 1
#endif
#ifndef DW_R
#define DW_R 4
#endif

/* Padded plane of one channel: rows of dw_pitch elements, padded column q of
 * padded row r at r * pitch + q; Hp rows. */
static void FN(dw_dims)(const dlk_conv2d_geom *g, dlk_idx *Hp, dlk_idx *pitch) {
    const dlk_idx span = DW_NV * DLK_VW;
    const dlk_idx cols = (g->OW + span - 1) / span * span + DLK_VW;  /* + shift source */
    *pitch = DLK_MAX(cols, (g->W + g->pad_w + DLK_VW - 1) / DLK_VW * DLK_VW);
    *Hp = DLK_MAX(g->H + g->pad_h, g->OH + 2);
}

#if defined(__AVX512F__)
/* Lanes l + s of the concatenation (a, b), s = 1 or 2: the input shifted left
 * by s columns, as one two-source shuffle. */
static inline FN(vec) FN(dw_shift1)(FN(vec) a, FN(vec) b) {
    const FN(ivec) m = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    return __builtin_shuffle(a, b, m);
}
static inline FN(vec) FN(dw_shift2)(FN(vec) a, FN(vec) b) {
    const FN(ivec) m = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
    return __builtin_shuffle(a, b, m);
}
#endif

/* Below AVX-512 GCC left the loops over the tile's rows and vectors that set
 * and store the accumulators rolled, which put them on the stack; with it
 * they unroll unasked. */
#ifndef DLK_DW_UNROLL
#if defined(__AVX512F__)
#define DLK_DW_UNROLL
#else
#define DLK_DW_UNROLL _Pragma("GCC unroll 8")
#endif
#endif

/* R output rows [oh, oh + R) x DW_NV vectors from column ow0, from the padded
 * plane xp (row pitch P): input rows oh .. oh + R + 1 each loaded once. */
static inline __attribute__((always_inline)) void FN(dw_tile)(
    const T *xp, dlk_idx P, const FN(vec) wv[9], T b, T *y, dlk_idx OW, dlk_idx oh,
    dlk_idx ow0, const int R) {
    FN(vec) acc[DW_R][DW_NV];
    DLK_DW_UNROLL
    for (int r = 0; r < R; r++)
        DLK_DW_UNROLL
        for (int v = 0; v < DW_NV; v++) acc[r][v] = (FN(vec)){0} + b;
    /* fully unrolled, so the accumulators stay in registers (the row-to-output
     * mapping below is then constant) */
#pragma GCC unroll 16
    for (int i = 0; i < R + 2; i++) {
        const T *row = xp + (oh + i) * P + ow0;
#if defined(__AVX512F__)
        FN(vec) ld[DW_NV + 1], sh[3][DW_NV];
        for (int v = 0; v <= DW_NV; v++) memcpy(&ld[v], row + v * DLK_VW, sizeof ld[v]);
        for (int v = 0; v < DW_NV; v++) {
            sh[0][v] = ld[v];
            sh[1][v] = FN(dw_shift1)(ld[v], ld[v + 1]);
            sh[2][v] = FN(dw_shift2)(ld[v], ld[v + 1]);
        }
#else
        FN(vec) sh[3][DW_NV];
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 4
            for (int v = 0; v < DW_NV; v++)
                memcpy(&sh[kw][v], row + v * DLK_VW + kw, sizeof sh[kw][v]);
#endif
        /* input row oh + i feeds output row oh + i - kh through kernel row kh */
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; kh++) {
            const int r = i - kh;
            if (r < 0 || r >= R) continue;
            for (int kw = 0; kw < 3; kw++)
                for (int v = 0; v < DW_NV; v++) acc[r][v] += wv[kh * 3 + kw] * sh[kw][v];
        }
    }
    DLK_DW_UNROLL
    for (int r = 0; r < R; r++)
        DLK_DW_UNROLL
        for (int v = 0; v < DW_NV; v++) {
            const dlk_idx c0 = ow0 + v * DLK_VW, nv = DLK_MIN(DLK_VW, OW - c0);
            if (nv <= 0) break;
            T *yr = y + (oh + r) * OW + c0;
            if (nv == DLK_VW)
                memcpy(yr, &acc[r][v], sizeof acc[r][v]);
            else
                FN(store_head)(yr, &acc[r][v], nv);
        }
}

static int FN(dw3x3_applies)(const dlk_conv2d_geom *g) {
    return g->C == g->groups && g->OC == g->groups && g->KH == 3 && g->KW == 3 &&
           g->stride_h == 1 && g->stride_w == 1 && g->dil_h == 1 && g->dil_w == 1;
}

static int FN(dw3x3_forward)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                             const T *bias, T *y, int nthreads) {
    const dlk_idx H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    dlk_idx Hp, P;
    FN(dw_dims)(g, &Hp, &P);
    const dlk_idx plane = Hp * P, planes = g->N * g->C;
    const dlk_idx main_rows = OH - OH % DW_R;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        /* 64 bytes of slack to align the plane by hand */
        T *raw = (T *)calloc((size_t)(plane + 64 / sizeof(T)), sizeof(T));
        T *xp = raw ? (T *)(((uintptr_t)raw + 63) & ~(uintptr_t)63) : NULL;
        if (!raw) failed = 1;
#pragma omp for schedule(static)
        for (dlk_idx t = 0; t < planes; t++) {
            if (!raw) continue;
            const dlk_idx c = t % g->C;
            /* interior only: the padding stays as calloc left it */
            for (dlk_idx ih = 0; ih < H; ih++) {
                T *restrict dst = xp + (ih + g->pad_h) * P + g->pad_w;
                const T *restrict src = x + (t * H + ih) * W;
                for (dlk_idx iw = 0; iw < W; iw++) dst[iw] = src[iw];
            }
            FN(vec) wv[9];
            for (int k = 0; k < 9; k++) wv[k] = (FN(vec)){0} + weight[c * 9 + k];
            const T b = bias ? bias[c] : (T)0;
            T *yp = y + t * OH * OW;
            for (dlk_idx ow0 = 0; ow0 < OW; ow0 += DW_NV * DLK_VW) {
                for (dlk_idx oh = 0; oh < main_rows; oh += DW_R)
                    FN(dw_tile)(xp, P, wv, b, yp, OW, oh, ow0, DW_R);
                for (dlk_idx oh = main_rows; oh < OH; oh++)
                    FN(dw_tile)(xp, P, wv, b, yp, OW, oh, ow0, 1);
            }
        }
        free(raw);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}

#undef DW_NV
#undef DW_R
