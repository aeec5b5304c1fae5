/* im2col conv2d, forward and grad_x (template body, see conv2d_template.h and
 * conv2d_im2col.c); the GEMM engine is conv2d_packed_tmpl.h, grad_weight
 * conv2d_wgrad_tmpl.h. grad_x always runs on the forward engine: directly at
 * stride 1, per input phase otherwise (conv2d_gradx_phases_tmpl.h). */

/* y = conv2d(x, weight) + bias as one GEMM per (sample, group):
 * y_n,g (OCg x OH*OW) = W_g (OCg x K) @ col_n,g (K x OH*OW), K = Cg*KH*KW, with
 * the column matrix packed block by block from a zero-padded window of the
 * input rows the block reads (pk_build_window; x itself when there is no
 * padding at stride 1), never stored whole. A (W_g, where a->base says) is
 * packed panel by panel by all threads first. Then one task per (sample,
 * group, block of PK_NB output pixels); tasks write disjoint parts of y, so
 * any thread count gives the same bits. Output channel o of sample n starts
 * at y + n*ys + o*ldy (ys = OC*OH*OW, ldy = OH*OW for a plain y; the strided
 * grad_x writes its phases into grad_x's planes this way). */
static int FN(im2col_forward_core)(const dlk_conv2d_geom *g, const T *x, const FN(pk_amap) *a,
                                   const T *bias, T *y, dlk_idx ldy, dlk_idx ys,
                                   int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, G = g->groups, Cg = C / G, OCg = OC / G;
    const dlk_idx K = Cg * g->KH * g->KW, OHW = g->OH * g->OW, HW = g->H * g->W;
    if (g->N * OC * OHW == 0) return DLK_OK;
    const dlk_idx Mp = FN(pk_round_m)(OCg), kcb = FN(pk_kc)(K);
    const dlk_idx nkb = (K + kcb - 1) / kcb, npm = Mp / PK_MR;
    T *Ap = (T *)dlk_scratch_get(DLK_SCRATCH_SHARED, (size_t)(G * Mp * K) * sizeof(T));
    dlk_idx *koff = (dlk_idx *)malloc((size_t)K * sizeof(dlk_idx));
    if (!Ap || !koff) {
        dlk_scratch_put(DLK_SCRATCH_SHARED, Ap);
        free(koff);
        return DLK_ENOMEM;
    }
    const dlk_idx nblk = (OHW + PK_NB - 1) / PK_NB, tasks = g->N * G * nblk;
    /* vectors of output pixels never straddle two output rows: read B in place */
    const int in_place = g->OW % PK_VL == 0, window_is_x = FN(pk_window_is_x)(g);
    {
        const FN(pk_window) w0 = FN(pk_window_of)(g, 0, 1);  /* same layout for all */
        FN(pk_window_taps)(g, &w0, koff);
    }
    const dlk_idx win_size = FN(pk_window_size)(g);
    const size_t buf = (size_t)(win_size + (in_place ? 0 : kcb * PK_NB));
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *win = buf ? (T *)dlk_scratch_get(DLK_SCRATCH_THREAD, buf * sizeof(T)) : NULL;
        T *Bk = win ? win + win_size : NULL;
        failed = buf && !win;
        /* Panels of A, all threads (serial, this was 5% of the strided 3x3
         * forward on 2 threads); the loop's barrier ends it before any task. */
#pragma omp for schedule(static)
        for (dlk_idx pi = 0; pi < G * nkb * npm; pi++) {
            const dlk_idx grp = pi / (nkb * npm), k0 = pi / npm % nkb * kcb, m0 = pi % npm * PK_MR;
            FN(pk_pack_a_panel)(a->base + grp * a->gs, a, OCg, k0, DLK_MIN(kcb, K - k0), m0,
                                Ap + grp * Mp * K + k0 * Mp + m0 * DLK_MIN(kcb, K - k0));
        }
#pragma omp for schedule(dynamic, 1)
        for (dlk_idx t = 0; t < tasks; t++) {
            if (buf && !win) continue;
            const dlk_idx n = t / (G * nblk), grp = (t / nblk) % G, p0 = (t % nblk) * PK_NB;
            const dlk_idx nb = DLK_MIN(PK_NB, OHW - p0);
            const T *xg = x + (n * C + grp * Cg) * HW;
            T *yg = y + n * ys + grp * OCg * ldy + p0;
            const T *bg = bias ? bias + grp * OCg : NULL;
            const FN(pk_window) w = FN(pk_window_of)(g, p0, nb);
            const T *wb = xg;
            if (!window_is_x) {
                FN(pk_build_window)(g, xg, &w, win);
                wb = win;
            }
            for (dlk_idx k0 = 0; k0 < K; k0 += kcb) {
                const dlk_idx kc = DLK_MIN(kcb, K - k0);
                const T *Ak = Ap + grp * Mp * K + k0 * Mp;
                if (in_place) {
                    FN(pk_block_window)(g, &w, OCg, p0, nb, kc, Ak, wb, koff + k0, yg, ldy,
                                        k0 == 0, bg);
                } else {
                    FN(pk_pack_b_window)(g, wb, &w, koff, k0, kc, p0, nb, Bk);
                    FN(pk_block)(OCg, nb, kc, Ak, Bk, yg, ldy, k0 == 0, bg);
                }
            }
        }
        dlk_scratch_put(DLK_SCRATCH_THREAD, win);
    }
    free(koff);
    dlk_scratch_put(DLK_SCRATCH_SHARED, Ap);
    return failed ? DLK_ENOMEM : DLK_OK;
}

/* A as the weights stored: row o of group grp at weight + (grp*OCg + o)*K. */
static FN(pk_amap) FN(plain_amap)(const T *weight, dlk_idx OCg, dlk_idx K) {
    const FN(pk_amap) a = {weight, OCg * K, K, 0, 1, K};
    return a;
}

int FN(dlk_conv2d_im2col_forward)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                                  const T *bias, T *y, int nthreads) {
    const dlk_idx G = g->groups;
    const FN(pk_amap) a = FN(plain_amap)(weight, g->OC / G, g->C / G * g->KH * g->KW);
    return FN(im2col_forward_core)(g, x, &a, bias, y, g->OH * g->OW, g->OC * g->OH * g->OW,
                                   nthreads);
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
    /* A(c, (o, u)) = weight[o][c][KK-1-u] of the group, packed straight from
     * weight (pk_amap) */
    const FN(pk_amap) a = {weight + KK - 1, OCg * Cg * KK, KK, Cg * KK, -1, KK};
    dlk_conv2d_geom t = *g;
    t.C = g->OC;
    t.H = g->OH;
    t.W = g->OW;
    t.OC = g->C;
    t.OH = g->H;
    t.OW = g->W;
    t.pad_h = (KH - 1) * g->dil_h - g->pad_h;
    t.pad_w = (KW - 1) * g->dil_w - g->pad_w;
    return FN(im2col_forward_core)(&t, grad_out, &a, NULL, grad_x, g->H * g->W,
                                   g->C * g->H * g->W, nthreads);
}

/* Stride > 1, phase by phase (conv2d_gradx_phases_tmpl.h): the fallback of
 * im2col_grad_x_merged when a (sample, group) does not fit its budget. Each
 * phase is one forward (tasks of PK_NB pixels) written into grad_x itself,
 * phase after phase within each (sample, channel) plane (the phases partition
 * it); then every plane is interleaved in place through a plane-sized copy per
 * thread: no buffer of grad_x's size, whose fresh pages cost more than the
 * interleave (strided 3x3 grad_x: page clearing was 13% of the profile).
 * Phases that no tap reaches (stride > kernel) are zero. Same bits as the
 * merged path: the same GEMM per phase pixel. */
static int FN(im2col_grad_x_phases)(const dlk_conv2d_geom *g, const T *grad_out,
                                    const T *weight, T *grad_x, int nthreads) {
    const dlk_idx N = g->N, C = g->C, H = g->H, W = g->W, G = g->groups;
    const dlk_idx OCg = g->OC / G, KH = g->KH, KW = g->KW;
    const dlk_idx sh = g->stride_h, sw = g->stride_w;
    const dlk_idx HW = H * W;
    T *wt = (T *)malloc((size_t)(C * OCg * KH * KW) * sizeof(T));
    dlk_idx *taps = (dlk_idx *)malloc((size_t)(KH + KW) * sizeof(dlk_idx));
    int status = wt && taps ? DLK_OK : DLK_ENOMEM;
    dlk_idx off = 0;
    for (dlk_idx r = 0; r < sh && status == DLK_OK; r++)
        for (dlk_idx q = 0; q < sw && status == DLK_OK; q++) {
            const dlk_idx len = FN(phase_len)(H, r, sh) * FN(phase_len)(W, q, sw);
            dlk_idx *th = taps, *tw = taps + KH;
            const dlk_idx nj = FN(phase_taps)(r, g->pad_h, g->dil_h, sh, KH, th);
            const dlk_idx mj = FN(phase_taps)(q, g->pad_w, g->dil_w, sw, KW, tw);
            T *dst = grad_x + off;
            off += len;
            if (len == 0) continue;
            if (nj == 0 || mj == 0) {
                for (dlk_idx p = 0; p < N * C; p++)
                    memset(dst + p * HW, 0, (size_t)len * sizeof(T));
                continue;
            }
            FN(phase_weights)(g, weight, th, nj, tw, mj, wt);
            const dlk_conv2d_geom t = FN(phase_geom)(g, r, q, th, nj, tw, mj);
            const FN(pk_amap) a = FN(plain_amap)(wt, C / G, OCg * nj * mj);
            status = FN(im2col_forward_core)(&t, grad_out, &a, NULL, dst, HW, C * HW, nthreads);
        }
    free(taps);
    free(wt);
    if (status != DLK_OK) return status;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *tmp = (T *)malloc((size_t)HW * sizeof(T));
        failed = !tmp;
#pragma omp for schedule(static)
        for (dlk_idx p = 0; p < N * C; p++) {
            if (!tmp) continue;
            memcpy(tmp, grad_x + p * HW, (size_t)HW * sizeof(T));
            FN(phase_interleave)(tmp, grad_x + p * HW, H, W, sh, sw);
        }
        free(tmp);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}

/* Rows m0 to m0 + 2*PK_MR of A(m, k) = src[m*ld + k], k < kc (rows from M on
 * zero), as the two pk_pack_a panels at dst and dst + PK_MR*kc: one register
 * transpose of 2*PK_MR rows into tmp, then split (on AVX-512, a transpose 8
 * rows wide would store its halves element by element). */
static void FN(gw1_pack_a)(const T *src, dlk_idx ld, dlk_idx M, dlk_idx m0, dlk_idx kc,
                           T *tmp, T *dst) {
    const dlk_idx rows = DLK_MIN(2 * PK_MR, M - m0);
    if (rows < 2 * PK_MR) memset(tmp, 0, (size_t)(2 * PK_MR * kc) * sizeof(T));
    FN(dlk_transpose)(rows, kc, src + m0 * ld, ld, tmp, 2 * PK_MR);
    T *d0 = dst, *d1 = dst + PK_MR * kc;
    for (dlk_idx k = 0; k < kc; k++) {
        memcpy(d0 + k * PK_MR, tmp + k * 2 * PK_MR, PK_MR * sizeof(T));
        if (rows > PK_MR) memcpy(d1 + k * PK_MR, tmp + k * 2 * PK_MR + PK_MR, PK_MR * sizeof(T));
    }
}

/* 1x1 kernel, stride 1, no padding: the column matrix of a (sample, group) is x
 * itself, so grad_W_g (OCg x Cg) = sum over n of grad_out_n,g (OCg x HW) @
 * x_n,g^T, on the forward's micro-kernel (PK_MR x PK_NR tiles, which divide
 * the usual channel counts where dlk_gemm's 48-column tile computes 144
 * columns for 128). Both operands have the reduction (pixels) contiguous:
 * their panels are packed by register transposes, A a block at a time, B a
 * panel at a time, read from L2 and L1 by the tiles as in the forward.
 * Tasks are (group, chunk of consecutive samples), GW1_TASKS chunks at most
 * (fixed by N, not by the thread count); a task sums its samples, in order,
 * into its own copy of grad_W (the first chunk into grad_weight itself) and
 * the copies are then added in chunk order, so any thread count gives the
 * same bits (not those of a per-sample sum: the chunks' sums are added last).
 * Measured on 16x128x16x16 -> 256 (2 threads, with grad_bias): one dlk_gemm
 * per sample summed in order, a parallel region each, 0.87 ms; this, 0.76 ms.
 * The copies take at most GW1_PARTIAL_BYTES: fewer chunks beyond. */
static int FN(im2col_grad_weight_1x1)(const dlk_conv2d_geom *g, const T *grad_out,
                                      const T *x, T *grad_weight, int nthreads) {
    const dlk_idx N = g->N, G = g->groups, Cg = g->C / G, OCg = g->OC / G, HW = g->H * g->W;
    const dlk_idx wsz = g->OC * Cg;
    if (wsz == 0) return DLK_OK;
    dlk_idx nch = DLK_MIN((dlk_idx)GW1_TASKS, N);
    nch = DLK_MIN(nch, 1 + (dlk_idx)(GW1_PARTIAL_BYTES / ((size_t)wsz * sizeof(T))));
    const dlk_idx per = (N + nch - 1) / nch;
    nch = (N + per - 1) / per;
    T *part = NULL;
    if (nch > 1) {
        part = (T *)dlk_scratch_get(DLK_SCRATCH_SHARED, (size_t)((nch - 1) * wsz) * sizeof(T));
        if (!part) return DLK_ENOMEM;
    }
    const dlk_idx kcb = FN(pk_kc)(HW), Mp = FN(pk_round_m)(OCg);
    const dlk_idx Mp2 = (Mp + 2 * PK_MR - 1) / (2 * PK_MR) * (2 * PK_MR);
    const size_t buf = (size_t)(Mp2 * kcb + kcb * PK_NR + 2 * PK_MR * kcb);
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *Ab = (T *)dlk_scratch_get(DLK_SCRATCH_THREAD, buf * sizeof(T));
        T *Bp = Ab + Mp2 * kcb, *tmp = Bp + kcb * PK_NR;
        failed = !Ab;
#pragma omp for schedule(dynamic, 1)
        for (dlk_idx t = 0; t < G * nch; t++) {
            if (!Ab) continue;
            const dlk_idx ch = t / G, grp = t % G;
            T *Cw = (ch == 0 ? grad_weight : part + (ch - 1) * wsz) + grp * OCg * Cg;
            int first = 1;
            for (dlk_idx n = ch * per; n < DLK_MIN(N, (ch + 1) * per); n++) {
                const T *gy = grad_out + (n * g->OC + grp * OCg) * HW;
                const T *xn = x + (n * g->C + grp * Cg) * HW;
                for (dlk_idx k0 = 0; k0 < HW; k0 += kcb) {
                    const dlk_idx kc = DLK_MIN(kcb, HW - k0);
                    for (dlk_idx m0 = 0; m0 < Mp; m0 += 2 * PK_MR)
                        FN(gw1_pack_a)(gy + k0, HW, OCg, m0, kc, tmp, Ab + m0 * kc);
                    for (dlk_idx j0 = 0; j0 < Cg; j0 += PK_NR) {
                        const dlk_idx nr = DLK_MIN(PK_NR, Cg - j0);
                        if (nr < PK_NR) memset(Bp, 0, (size_t)(kc * PK_NR) * sizeof(T));
                        FN(dlk_transpose)(nr, kc, xn + j0 * HW + k0, HW, Bp, PK_NR);
                        for (dlk_idx m0 = 0; m0 < OCg; m0 += PK_MR)
                            FN(pk_tile)(kc, Ab + m0 * kc, Bp, NULL, NULL, Cw + m0 * Cg + j0, Cg,
                                        DLK_MIN(PK_MR, OCg - m0), nr, first, NULL);
                    }
                    first = 0;
                }
            }
        }
        dlk_scratch_put(DLK_SCRATCH_THREAD, Ab);
        /* the chunks' sums, added in chunk order (the loop's barrier has passed) */
#pragma omp for schedule(static)
        for (dlk_idx e = 0; e < wsz; e++)
            for (dlk_idx ch = 1; ch < nch; ch++) grad_weight[e] += part[(ch - 1) * wsz + e];
    }
    if (part) dlk_scratch_put(DLK_SCRATCH_SHARED, part);
    return failed ? DLK_ENOMEM : DLK_OK;
}

/* The geometry im2col_grad_weight_1x1 handles (OH = H, OW = W follow). */
static int FN(is_plain_1x1)(const dlk_conv2d_geom *g) {
    return g->KH == 1 && g->KW == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_h == 0 && g->pad_w == 0 && g->OH == g->H && g->OW == g->W && g->N > 0 &&
           g->H * g->W > 0;
}

int FN(dlk_conv2d_im2col_backward)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                   const T *weight, T *grad_x, T *grad_weight, T *grad_bias,
                                   int parts, size_t max_col_bytes, int nthreads) {
    /* grad_bias rides on the shifted-dot grad_weight's grad_out copy when both are asked */
    const int fold_bias = (parts & DLK_CONV2D_GRAD_B) && (parts & DLK_CONV2D_GRAD_W) &&
                          !FN(is_plain_1x1)(g);
    if ((parts & DLK_CONV2D_GRAD_B) && !fold_bias)
        FN(dlk_conv2d_bias_grad)(g, grad_out, grad_bias, nthreads);
    if (parts & DLK_CONV2D_GRAD_W) {
        const int status =
            FN(is_plain_1x1)(g)
                ? FN(im2col_grad_weight_1x1)(g, grad_out, x, grad_weight, nthreads)
                : FN(im2col_grad_weight)(g, grad_out, x, grad_weight,
                                         fold_bias ? grad_bias : NULL, max_col_bytes, nthreads);
        if (status) return DLK_ENOMEM;
    }
    if ((parts & DLK_CONV2D_GRAD_X) && g->N * g->C * g->H * g->W > 0) {
        if (g->stride_h == 1 && g->stride_w == 1)
            return FN(im2col_grad_x_as_forward)(g, grad_out, weight, grad_x, nthreads);
        const int merged =
            FN(im2col_grad_x_merged)(g, grad_out, weight, grad_x, max_col_bytes, nthreads);
        if (merged != -1) return merged;
        return FN(im2col_grad_x_phases)(g, grad_out, weight, grad_x, nthreads);
    }
    return DLK_OK;
}
