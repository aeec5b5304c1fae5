/* im2col conv2d, forward and grad_x (template body, see conv2d_template.h and
 * conv2d_im2col.c); the GEMM engine is conv2d_packed_tmpl.h, grad_weight
 * conv2d_wgrad_tmpl.h. */

/* y = conv2d(x, weight) + bias as one GEMM per (sample, group):
 * y_n,g (OCg x OH*OW) = W_g (OCg x K) @ col_n,g (K x OH*OW), K = Cg*KH*KW, with
 * the column matrix packed block by block from a zero-padded window of the
 * input rows the block reads (pk_build_window), never stored whole. One task
 * per (sample, group, block of PK_NB output pixels); tasks write disjoint parts
 * of y, so any thread count gives the same bits. */
static int FN(im2col_forward_core)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                                   const T *bias, T *y, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, G = g->groups, Cg = C / G, OCg = OC / G;
    const dlk_idx K = Cg * g->KH * g->KW, OHW = g->OH * g->OW, HW = g->H * g->W;
    if (g->N * OC * OHW == 0) return DLK_OK;
    const dlk_idx Mp = FN(pk_round_m)(OCg), kcb = FN(pk_kc)(K);
    T *Ap = (T *)malloc((size_t)(G * Mp * K) * sizeof(T));
    if (!Ap) return DLK_ENOMEM;
    for (dlk_idx grp = 0; grp < G; grp++)
        FN(pk_pack_a)(weight + grp * OCg * K, K, 1, OCg, K, Ap + grp * Mp * K);
    const dlk_idx nblk = (OHW + PK_NB - 1) / PK_NB, tasks = g->N * G * nblk;
    /* vectors of output pixels never straddle two output rows: read B in place */
    const int in_place = g->OW % PK_VL == 0;
    dlk_idx *koff = (dlk_idx *)malloc((size_t)K * sizeof(dlk_idx));
    if (!koff) {
        free(Ap);
        return DLK_ENOMEM;
    }
    {
        const FN(pk_window) w0 = FN(pk_window_of)(g, 0, 1);  /* same layout for all */
        FN(pk_window_taps)(g, &w0, koff);
    }
    const dlk_idx win_size = FN(pk_window_size)(g);
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *win = (T *)malloc((size_t)(win_size + (in_place ? 0 : kcb * PK_NB)) * sizeof(T));
        T *Bk = win + win_size;
        failed = !win;
#pragma omp for schedule(dynamic, 1)
        for (dlk_idx t = 0; t < tasks; t++) {
            if (!win) continue;
            const dlk_idx n = t / (G * nblk), grp = (t / nblk) % G, p0 = (t % nblk) * PK_NB;
            const dlk_idx nb = DLK_MIN(PK_NB, OHW - p0);
            const T *xg = x + (n * C + grp * Cg) * HW;
            T *yg = y + (n * OC + grp * OCg) * OHW + p0;
            const T *bg = bias ? bias + grp * OCg : NULL;
            const FN(pk_window) w = FN(pk_window_of)(g, p0, nb);
            FN(pk_build_window)(g, xg, &w, win);
            for (dlk_idx k0 = 0; k0 < K; k0 += kcb) {
                const dlk_idx kc = DLK_MIN(kcb, K - k0);
                const T *Ak = Ap + grp * Mp * K + k0 * Mp;
                if (in_place) {
                    FN(pk_block_window)(g, &w, OCg, p0, nb, kc, Ak, win, koff + k0, yg, OHW,
                                        k0 == 0, bg);
                } else {
                    FN(pk_pack_b_window)(g, win, &w, koff, k0, kc, p0, nb, Bk);
                    FN(pk_block)(OCg, nb, kc, Ak, Bk, yg, OHW, k0 == 0, bg);
                }
            }
        }
        free(win);
    }
    free(koff);
    free(Ap);
    return failed ? DLK_ENOMEM : DLK_OK;
}

int FN(dlk_conv2d_im2col_forward)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                                  const T *bias, T *y, int nthreads) {
    return FN(im2col_forward_core)(g, x, weight, bias, y, nthreads);
}

/* Stride 1: grad_x is the forward convolution of grad_out with the kernel
 * flipped in both axes and its channel axes swapped (C outputs, OC/groups
 * inputs per group), padded by (KH-1)*dil_h - pad_h on top and
 * (KW-1)*dil_w - pad_w on the left (negative when the padding reaches beyond
 * the kernel: the packing's valid ranges handle any offset). */
static int FN(im2col_grad_x_as_forward)(const dlk_conv2d_geom *g, const T *grad_out,
                                        const T *weight, T *grad_x, int nthreads) {
    const dlk_idx G = g->groups, Cg = g->C / G, OCg = g->OC / G, KH = g->KH, KW = g->KW;
    const dlk_idx KK = KH * KW;
    T *wt = (T *)malloc((size_t)(g->C * OCg * KK) * sizeof(T));
    if (!wt) return DLK_ENOMEM;
    for (dlk_idx grp = 0; grp < G; grp++)
        for (dlk_idx o = 0; o < OCg; o++)
            for (dlk_idx c = 0; c < Cg; c++)
                for (dlk_idx k = 0; k < KK; k++)
                    wt[((grp * Cg + c) * OCg + o) * KK + (KK - 1 - k)] =
                        weight[((grp * OCg + o) * Cg + c) * KK + k];
    dlk_conv2d_geom t = *g;
    t.C = g->OC;
    t.H = g->OH;
    t.W = g->OW;
    t.OC = g->C;
    t.OH = g->H;
    t.OW = g->W;
    t.pad_h = (KH - 1) * g->dil_h - g->pad_h;
    t.pad_w = (KW - 1) * g->dil_w - g->pad_w;
    const int status = FN(im2col_forward_core)(&t, grad_out, wt, NULL, grad_x, nthreads);
    free(wt);
    return status;
}

/* grad_x[n, c] += the rows [m0, m0 + mc) of a column-gradient block (pixels
 * [p0, p0 + nb), row stride ldc): the scatter-add inverse of im2col. */
static void FN(col2im_rows)(const dlk_conv2d_geom *g, const T *col, dlk_idx ldc, dlk_idx m0,
                            dlk_idx mc, dlk_idx p0, dlk_idx nb, T *gxg) {
    const dlk_idx KH = g->KH, KW = g->KW, OW = g->OW, W = g->W, HW = g->H * W;
    const dlk_idx sw = g->stride_w;
    for (dlk_idx r = m0; r < m0 + mc; r++) {
        const dlk_idx c = r / (KH * KW), kh = (r / KW) % KH, kw = r % KW;
        const dlk_idx off_h = kh * g->dil_h - g->pad_h, off_w = kw * g->dil_w - g->pad_w;
        dlk_idx oh0, oh1, ow0, ow1;
        dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, off_h, &oh0, &oh1);
        dlk_conv2d_valid_range(OW, W, sw, off_w, &ow0, &ow1);
        /* output rows that meet [p0, p0 + nb) and the valid rows */
        const dlk_idx ra = DLK_MAX(oh0, p0 / OW), rb = DLK_MIN(oh1, (p0 + nb - 1) / OW + 1);
        for (dlk_idx oh = ra; oh < rb; oh++) {
            const dlk_idx a = DLK_MAX(ow0, p0 - oh * OW);
            const dlk_idx b = DLK_MIN(ow1, p0 + nb - oh * OW);
            if (a >= b) continue;
            T *restrict xr = gxg + c * HW + (oh * g->stride_h + off_h) * W + a * sw + off_w;
            const T *restrict s = col + (r - m0) * ldc + oh * OW + a - p0;
            if (sw == 1) {
                for (dlk_idx o = 0; o < b - a; o++) xr[o] += s[o];
            } else {
                for (dlk_idx o = 0; o < b - a; o++) xr[o * sw] += s[o];
            }
        }
    }
}

/* Any stride: per (sample, group), col = W_g^T (K x OCg) @ grad_out_n,g
 * (OCg x OH*OW), a block of PK_MC rows x PK_NB pixels at a time, each block
 * scattered into grad_x right away (col2im), so the column gradient is never
 * stored whole. One task per (sample, group) owns its grad_x planes and adds
 * the blocks in a fixed order. */
static int FN(im2col_grad_x_col2im)(const dlk_conv2d_geom *g, const T *grad_out,
                                    const T *weight, T *grad_x, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, G = g->groups, Cg = C / G, OCg = OC / G;
    const dlk_idx K = Cg * g->KH * g->KW, OHW = g->OH * g->OW, HW = g->H * g->W;
    const dlk_idx Mp = FN(pk_round_m)(K), kcb = FN(pk_kc)(OCg);
    T *Ap = (T *)malloc((size_t)(G * Mp * OCg) * sizeof(T));
    if (!Ap) return DLK_ENOMEM;
    for (dlk_idx grp = 0; grp < G; grp++)  /* A = W_g^T: A(k, o) = W_g[o, k] */
        FN(pk_pack_a)(weight + grp * OCg * K, 1, K, K, OCg, Ap + grp * Mp * OCg);
    const dlk_idx tasks = g->N * G;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *Bk = (T *)malloc((size_t)(OCg * PK_NB + PK_MC * PK_NB) * sizeof(T));
        T *col = Bk + OCg * PK_NB;
        failed = !Bk;
#pragma omp for schedule(dynamic, 1)
        for (dlk_idx t = 0; t < tasks; t++) {
            if (!Bk) continue;
            const dlk_idx n = t / G, grp = t % G;
            const T *gyg = grad_out + (n * OC + grp * OCg) * OHW;
            const T *Ag = Ap + grp * Mp * OCg;
            T *gxg = grad_x + (n * C + grp * Cg) * HW;
            for (dlk_idx i = 0; i < Cg * HW; i++) gxg[i] = 0;
            for (dlk_idx p0 = 0; p0 < OHW; p0 += PK_NB) {
                const dlk_idx nb = DLK_MIN(PK_NB, OHW - p0);
                for (dlk_idx k0 = 0; k0 < OCg; k0 += kcb)
                    FN(pk_pack_b_rows)(gyg, OHW, k0, DLK_MIN(kcb, OCg - k0), p0, nb,
                                       Bk + k0 * PK_NB);
                for (dlk_idx m0 = 0; m0 < K; m0 += PK_MC) {
                    const dlk_idx mc = DLK_MIN(PK_MC, K - m0);
                    for (dlk_idx k0 = 0; k0 < OCg; k0 += kcb) {
                        const dlk_idx kc = DLK_MIN(kcb, OCg - k0);
                        FN(pk_block)(mc, nb, kc, Ag + k0 * Mp + m0 * kc, Bk + k0 * PK_NB, col,
                                     PK_NB, k0 == 0, NULL);
                    }
                    FN(col2im_rows)(g, col, PK_NB, m0, mc, p0, nb, gxg);
                }
            }
        }
        free(Bk);
    }
    free(Ap);
    return failed ? DLK_ENOMEM : DLK_OK;
}

int FN(dlk_conv2d_im2col_backward)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                   const T *weight, T *grad_x, T *grad_weight, T *grad_bias,
                                   int parts, size_t max_col_bytes, int nthreads) {
    if (parts & DLK_CONV2D_GRAD_W) {
        FN(dlk_conv2d_bias_grad)(g, grad_out, grad_bias, nthreads);
        if (FN(im2col_grad_weight)(g, grad_out, x, grad_weight, max_col_bytes, nthreads))
            return DLK_ENOMEM;
    }
    if ((parts & DLK_CONV2D_GRAD_X) && g->N * g->C * g->H * g->W > 0) {
        if (g->stride_h == 1 && g->stride_w == 1)
            return FN(im2col_grad_x_as_forward)(g, grad_out, weight, grad_x, nthreads);
        return FN(im2col_grad_x_col2im)(g, grad_out, weight, grad_x, nthreads);
    }
    return DLK_OK;
}
