/* Strided im2col grad_x by input phase (template body, see conv2d_template.h
 * and conv2d_im2col.c): the helpers both strided paths share, and the merged
 * path that computes every phase of a (sample, group) in one task.
 *
 * The input positions (sh*i + r, sw*j + q) of one phase (r, q) receive
 * grad_out only through the taps kh, kw that land on that phase, and only at a
 * fixed shift per tap: grad_x_rq[i, j] = sum over o and those taps of
 * grad_out[o, i + d(kh), j + e(kw)] * w[o, c, kh, kw], a stride-1
 * cross-correlation of grad_out with a sub-kernel (flipped, channel axes
 * swapped, dilation the shift step, top/left padding -d and -e of its last
 * tap). Every phase therefore runs on the forward engine (packed GEMM, no
 * scatter-add). A channel's phase planes are stored one after the other in a
 * plane of grad_x's size (the phases partition it) and then interleaved.
 */

/* Taps of one axis that reach input phase r (positions stride*i + r): kernel
 * index k with (r + pad - k*dil) divisible by stride, in increasing k (an
 * arithmetic progression). Returns how many; list[] holds them. */
static dlk_idx FN(phase_taps)(dlk_idx r, dlk_idx pad, dlk_idx dil, dlk_idx stride, dlk_idx K,
                              dlk_idx *list) {
    dlk_idx n = 0;
    for (dlk_idx k = 0; k < K; k++)
        if (((r + pad - k * dil) % stride + stride) % stride == 0) list[n++] = k;
    return n;
}

/* Positions of phase r along an axis of n inputs at stride s. */
static inline dlk_idx FN(phase_len)(dlk_idx n, dlk_idx r, dlk_idx s) {
    return n > r ? (n - r + s - 1) / s : 0;
}

/* Phase (r, q) as a stride-1 forward from grad_out (OC channels, OH x OW) to
 * the phase planes (C channels, Hr x Wr), its nj x mj sub-kernel made of the
 * row taps th[] and column taps tw[] (nj, mj >= 1). */
static dlk_conv2d_geom FN(phase_geom)(const dlk_conv2d_geom *g, dlk_idx r, dlk_idx q,
                                      const dlk_idx *th, dlk_idx nj, const dlk_idx *tw,
                                      dlk_idx mj) {
    dlk_conv2d_geom t = *g;
    t.C = g->OC;
    t.H = g->OH;
    t.W = g->OW;
    t.OC = g->C;
    t.OH = FN(phase_len)(g->H, r, g->stride_h);
    t.OW = FN(phase_len)(g->W, q, g->stride_w);
    t.KH = nj;
    t.KW = mj;
    t.stride_h = t.stride_w = 1;
    t.dil_h = nj > 1 ? (th[1] - th[0]) * g->dil_h / g->stride_h : 1;
    t.dil_w = mj > 1 ? (tw[1] - tw[0]) * g->dil_w / g->stride_w : 1;
    t.pad_h = -((r + g->pad_h - th[nj - 1] * g->dil_h) / g->stride_h);
    t.pad_w = -((q + g->pad_w - tw[mj - 1] * g->dil_w) / g->stride_w);
    return t;
}

/* The phase's sub-kernel in forward layout: wt[c][o][t][u] =
 * weight[o][c][th[nj-1-t]][tw[mj-1-u]] per group (flipped, channels swapped). */
static void FN(phase_weights)(const dlk_conv2d_geom *g, const T *weight, const dlk_idx *th,
                              dlk_idx nj, const dlk_idx *tw, dlk_idx mj, T *wt) {
    const dlk_idx G = g->groups, Cg = g->C / G, OCg = g->OC / G, KH = g->KH, KW = g->KW;
    for (dlk_idx grp = 0; grp < G; grp++)
        for (dlk_idx c = 0; c < Cg; c++)
            for (dlk_idx o = 0; o < OCg; o++)
                for (dlk_idx t = 0; t < nj; t++)
                    for (dlk_idx u = 0; u < mj; u++)
                        wt[(((grp * Cg + c) * OCg + o) * nj + t) * mj + u] =
                            weight[(((grp * OCg + o) * Cg + c) * KH + th[nj - 1 - t]) * KW +
                                   tw[mj - 1 - u]];
}

/* One grad_x plane (H x W) from its phase planes stored one after the other
 * in src, phase (r, q) in row-major order of (r, q). */
static void FN(phase_interleave)(const T *restrict src, T *restrict gx, dlk_idx H, dlk_idx W,
                                 dlk_idx sh, dlk_idx sw) {
    if (sw == 2) {
        /* both column phases of a row at once: one interleaving loop that the
         * compiler vectorizes, where two stride-2 scatters stay scalar */
        const dlk_idx W0 = (W + 1) / 2, W1 = W / 2;
        for (dlk_idx r = 0; r < sh; r++) {
            const dlk_idx Hr = FN(phase_len)(H, r, sh);
            const T *restrict s0 = src, *restrict s1 = src + Hr * W0;
            for (dlk_idx i = 0; i < Hr; i++) {
                T *restrict d = gx + (i * sh + r) * W;
                const T *restrict a = s0 + i * W0, *restrict b = s1 + i * W1;
                for (dlk_idx j = 0; j < W1; j++) {
                    d[2 * j] = a[j];
                    d[2 * j + 1] = b[j];
                }
                if (W0 > W1) d[2 * W1] = a[W1];
            }
            src += Hr * W;
        }
        return;
    }
    for (dlk_idx r = 0; r < sh; r++)
        for (dlk_idx q = 0; q < sw; q++) {
            const dlk_idx Hr = FN(phase_len)(H, r, sh), Wr = FN(phase_len)(W, q, sw);
            for (dlk_idx i = 0; i < Hr; i++)
                for (dlk_idx j = 0; j < Wr; j++)
                    gx[(i * sh + r) * W + j * sw + q] = src[i * Wr + j];
            src += Hr * Wr;
        }
}

/* One phase of the merged path. */
typedef struct {
    dlk_conv2d_geom t;  /* the phase as a stride-1 forward (phase_geom) */
    dlk_idx off, len;   /* its plane's start in a channel's phase-ordered plane; Hr*Wr */
    dlk_idx K, kcb, Mp; /* reduction length OCg*nj*mj, its block, padded rows of A */
    T *Ap;              /* packed sub-kernels of all groups (K 0: no tap reaches it) */
    dlk_idx *koff;      /* its taps' offsets in the common window */
} FN(gx_phase);

/* The common window of a (sample, group): OCg channels x Rc rows x Wc columns
 * of grad_out, element (o, rr, jj) = grad_out[o][rr - top][jj - left] (zero
 * outside), covering what every phase reads. */
typedef struct {
    dlk_idx top, left, Rc, Wc;
} FN(gx_window);

static FN(gx_window) FN(gx_window_of)(const FN(gx_phase) *ph, dlk_idx nph) {
    FN(gx_window) w = {0, 0, 0, 0};
    int any = 0;
    for (dlk_idx p = 0; p < nph; p++) {
        if (ph[p].K == 0) continue;
        const dlk_conv2d_geom *t = &ph[p].t;
        w.top = any ? DLK_MAX(w.top, t->pad_h) : t->pad_h;
        w.left = any ? DLK_MAX(w.left, t->pad_w) : t->pad_w;
        any = 1;
    }
    for (dlk_idx p = 0; p < nph; p++) {
        if (ph[p].K == 0) continue;
        const dlk_conv2d_geom *t = &ph[p].t;
        w.Rc = DLK_MAX(w.Rc, t->OH + (t->KH - 1) * t->dil_h - t->pad_h + w.top);
        w.Wc = DLK_MAX(w.Wc, t->OW + (t->KW - 1) * t->dil_w - t->pad_w + w.left);
    }
    return w;
}

/* The window's rows are grad_out's rows padded by left and top: the forward
 * window's stride-1 rows (pk_build_row), valid columns found once. */
static void FN(gx_build_window)(const T *go, dlk_idx OCg, dlk_idx OH, dlk_idx OW,
                                const FN(gx_window) *w, T *win) {
    const FN(pk_rowplan) rp = FN(pk_rowplan_of)(OW, 1, w->left, w->Wc);
    for (dlk_idx o = 0; o < OCg; o++)
        for (dlk_idx rr = 0; rr < w->Rc; rr++) {
            T *restrict dst = win + (o * w->Rc + rr) * w->Wc;
            const dlk_idx ih = rr - w->top;
            if (ih < 0 || ih >= OH)
                FN(pk_zero)(dst, w->Wc);
            else
                FN(pk_build_row)(&rp, go + (o * OH + ih) * OW, OW, 1, w->left, w->Wc, dst);
        }
}

/* Offsets of a phase's taps k = (o, t, u) in the common window. */
static void FN(gx_phase_taps)(const FN(gx_phase) *ph, const FN(gx_window) *w, dlk_idx *koff) {
    const dlk_conv2d_geom *t = &ph->t;
    const dlk_idx nj = t->KH, mj = t->KW;
    for (dlk_idx k = 0; k < ph->K; k++) {
        const dlk_idx o = k / (nj * mj), u = (k / mj) % nj, v = k % mj;
        koff[k] = (o * w->Rc + u * t->dil_h + w->top - t->pad_h) * w->Wc + v * t->dil_w +
                  w->left - t->pad_w;
    }
}

/* All phases of one (sample, group) for its channels c0 to c0 + cn into
 * phase-ordered planes (row stride HW, the first channel c0's). Each block of
 * phase pixels is the forward engine's GEMM over the common window, in the
 * same reduction blocks and tiles as a per-phase forward (im2col_forward_core;
 * c0 is a multiple of PK_MR), so the bits are the same. */
static void FN(gx_phases_of_group)(const dlk_conv2d_geom *g, const FN(gx_phase) *ph,
                                   dlk_idx nph, dlk_idx grp, dlk_idx c0, dlk_idx cn,
                                   const T *win, const FN(gx_window) *gw, T *planes, T *Bk) {
    const dlk_idx HW = g->H * g->W;
    for (dlk_idx p = 0; p < nph; p++) {
        const FN(gx_phase) *f = &ph[p];
        T *dst = planes + f->off;
        if (f->len == 0) continue;
        if (f->K == 0) {
            for (dlk_idx c = 0; c < cn; c++)
                memset(dst + c * HW, 0, (size_t)f->len * sizeof(T));
            continue;
        }
        const T *Ag = f->Ap + grp * f->Mp * f->K;
        /* the whole plane's window: pixel (i, j) at i*Wc + j (pk_window_pixel) */
        const FN(pk_window) w = {0, gw->Rc, gw->Wc, gw->Rc};
        const int in_place = f->t.OW % PK_VL == 0;
        for (dlk_idx p0 = 0; p0 < f->len; p0 += PK_NB) {
            const dlk_idx nb = DLK_MIN(PK_NB, f->len - p0);
            for (dlk_idx k0 = 0; k0 < f->K; k0 += f->kcb) {
                const dlk_idx kc = DLK_MIN(f->kcb, f->K - k0);
                const T *Ak = Ag + k0 * f->Mp + c0 * kc;  /* pk_pack_a's panel of c0 */
                if (in_place) {
                    FN(pk_block_window)(&f->t, &w, cn, p0, nb, kc, Ak, win, f->koff + k0,
                                        dst + p0, HW, k0 == 0, NULL);
                } else {
                    FN(pk_pack_b_window)(&f->t, win, &w, f->koff, k0, kc, p0, nb, Bk);
                    FN(pk_block)(cn, nb, kc, Ak, Bk, dst + p0, HW, k0 == 0, NULL);
                }
            }
        }
    }
}

/* Elements of the packed B block a thread needs when some phase packs. */
static dlk_idx FN(gx_bk_elems)(const FN(gx_phase) *ph, dlk_idx nph) {
    dlk_idx bk = 0;
    for (dlk_idx p = 0; p < nph; p++)
        if (ph[p].K > 0 && ph[p].t.OW % PK_VL != 0) bk = DLK_MAX(bk, ph[p].kcb * PK_NB);
    return bk;
}

/* Channels per task of the merged path: whole micro-kernel panels, enough
 * blocks for GX_MIN_TASKS tasks in all, and no more phase planes than fit in
 * max_col_bytes beside the fixed elements (window, B block); 0 if not even
 * one panel's fits. When a phase packs B (bk > 0), only whole groups: a
 * channel block packs every B block again for fewer rows (measured on
 * (2,64,56,56) -> 128 s2, 3 blocks of 24: 0.89 -> 1.40 ms), so a pair that
 * does not fit, or too few pairs, go phase by phase. Depends on the shape and
 * the budget only. */
static dlk_idx FN(gx_channel_block)(const dlk_conv2d_geom *g, dlk_idx fixed, dlk_idx bk,
                                    size_t max_col_bytes) {
    const dlk_idx Cg = g->C / g->groups, HW = g->H * g->W, pairs = g->N * g->groups;
    const dlk_idx panels = (Cg + PK_MR - 1) / PK_MR;
    const dlk_idx nc = DLK_MIN(panels, (GX_MIN_TASKS + pairs - 1) / pairs);
    const dlk_idx by_tasks = (panels + nc - 1) / nc * PK_MR;
    const size_t avail = max_col_bytes / sizeof(T);
    if (avail <= (size_t)fixed) return 0;
    dlk_idx fit = (dlk_idx)DLK_MIN((avail - (size_t)fixed) / (size_t)HW, (size_t)Cg);
    if (bk > 0) return fit == Cg && pairs >= GX_MIN_TASKS ? Cg : 0;
    if (fit < Cg) fit = fit / PK_MR * PK_MR;
    return DLK_MIN(by_tasks, fit);
}

/* Set up every phase: geometry and plane offsets, and with pack its packed
 * sub-kernels and tap offsets' array (pack only once the merged path is sure to
 * run: the fallback packs its own). taps and wt are scratch of KH + KW indices
 * and (with pack) C*OCg*KH*KW elements. */
static int FN(gx_phases_setup)(const dlk_conv2d_geom *g, const T *weight, FN(gx_phase) *ph,
                               dlk_idx *taps, T *wt, int pack) {
    const dlk_idx sh = g->stride_h, sw = g->stride_w, G = g->groups, OCg = g->OC / G;
    dlk_idx off = 0;
    for (dlk_idx r = 0; r < sh; r++)
        for (dlk_idx q = 0; q < sw; q++) {
            FN(gx_phase) *f = &ph[r * sw + q];
            dlk_idx *th = taps, *tw = taps + g->KH;
            const dlk_idx nj = FN(phase_taps)(r, g->pad_h, g->dil_h, sh, g->KH, th);
            const dlk_idx mj = FN(phase_taps)(q, g->pad_w, g->dil_w, sw, g->KW, tw);
            memset(f, 0, sizeof *f);
            f->off = off;
            f->len = FN(phase_len)(g->H, r, sh) * FN(phase_len)(g->W, q, sw);
            off += f->len;
            if (f->len == 0 || nj == 0 || mj == 0) continue;
            f->t = FN(phase_geom)(g, r, q, th, nj, tw, mj);
            f->K = OCg * nj * mj;
            f->kcb = FN(pk_kc)(f->K);
            f->Mp = FN(pk_round_m)(g->C / G);
            if (!pack) continue;
            f->Ap = (T *)malloc((size_t)(G * f->Mp * f->K) * sizeof(T));
            f->koff = (dlk_idx *)malloc((size_t)f->K * sizeof(dlk_idx));
            if (!f->Ap || !f->koff) return DLK_ENOMEM;
            FN(phase_weights)(g, weight, th, nj, tw, mj, wt);
            for (dlk_idx grp = 0; grp < G; grp++)
                FN(pk_pack_a)(wt + grp * (g->C / G) * f->K, f->K, 1, g->C / G, f->K,
                              f->Ap + grp * f->Mp * f->K);
        }
    return DLK_OK;
}

static void FN(gx_phases_free)(FN(gx_phase) *ph, dlk_idx nph) {
    for (dlk_idx p = 0; p < nph; p++) {
        free(ph[p].Ap);
        free(ph[p].koff);
    }
    free(ph);
}

/* Strided grad_x with the phases merged: one task per (sample, group) builds
 * the grad_out window every phase reads once, computes all phases into a
 * per-thread plane set and interleaves it into grad_x, in one parallel region
 * (measured per phase instead: rebuilding the window was 11% of the strided
 * 3x3 profile, one parallel region per phase with its spin-wait 9%). With
 * fewer than GX_MIN_TASKS (sample, group) pairs (a small batch), or when a
 * pair's planes do not fit max_col_bytes beside the window, a task is one
 * block of channels of one pair instead, each block rebuilding the window
 * (gx_channel_block). Returns -1 (not a DLK_ status) without touching grad_x
 * when not even one panel of channels fits: the caller then runs phase by
 * phase, in pixel blocks. */
static int FN(im2col_grad_x_merged)(const dlk_conv2d_geom *g, const T *grad_out,
                                    const T *weight, T *grad_x, size_t max_col_bytes,
                                    int nthreads) {
    const dlk_idx N = g->N, C = g->C, G = g->groups, Cg = C / G, OCg = g->OC / G;
    const dlk_idx HW = g->H * g->W, OHW = g->OH * g->OW, nph = g->stride_h * g->stride_w;
    FN(gx_phase) *ph = (FN(gx_phase) *)calloc((size_t)nph, sizeof *ph);
    dlk_idx *taps = (dlk_idx *)malloc((size_t)(g->KH + g->KW) * sizeof(dlk_idx));
    if (!ph || !taps) {
        free(ph);
        free(taps);
        return DLK_ENOMEM;
    }
    FN(gx_phases_setup)(g, weight, ph, taps, NULL, 0);
    const FN(gx_window) gw = FN(gx_window_of)(ph, nph);
    const dlk_idx win_size = OCg * gw.Rc * gw.Wc, bk = FN(gx_bk_elems)(ph, nph);
    const dlk_idx cs = FN(gx_channel_block)(g, win_size + bk, bk, max_col_bytes);
    if (cs == 0) {
        free(ph);
        free(taps);
        return -1;
    }
    T *wt = (T *)malloc((size_t)(C * OCg * g->KH * g->KW) * sizeof(T));
    const int status = wt ? FN(gx_phases_setup)(g, weight, ph, taps, wt, 1) : DLK_ENOMEM;
    free(taps);
    free(wt);
    if (status != DLK_OK) {
        FN(gx_phases_free)(ph, nph);
        return DLK_ENOMEM;
    }
    const dlk_idx nc = (Cg + cs - 1) / cs, elems = win_size + cs * HW + bk;
    for (dlk_idx p = 0; p < nph; p++)
        if (ph[p].K > 0) FN(gx_phase_taps)(&ph[p], &gw, ph[p].koff);
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        T *win = (T *)dlk_scratch_get(DLK_SCRATCH_THREAD, (size_t)elems * sizeof(T));
        /* planes of channels c0 to c0 + cn, indexed from c0 */
        T *planes = win + win_size, *Bk = planes + cs * HW;
        failed = !win;
#pragma omp for schedule(dynamic, 1)
        for (dlk_idx task = 0; task < N * G * nc; task++) {
            if (!win) continue;
            const dlk_idx n = task / (G * nc), grp = task / nc % G, c0 = task % nc * cs;
            const dlk_idx cn = DLK_MIN(cs, Cg - c0);
            if (win_size > 0)
                FN(gx_build_window)(grad_out + (n * g->OC + grp * OCg) * OHW, OCg, g->OH,
                                    g->OW, &gw, win);
            FN(gx_phases_of_group)(g, ph, nph, grp, c0, cn, win, &gw, planes, Bk);
            T *gx = grad_x + (n * C + grp * Cg + c0) * HW;
            for (dlk_idx c = 0; c < cn; c++)
                FN(phase_interleave)(planes + c * HW, gx + c * HW, g->H, g->W, g->stride_h,
                                     g->stride_w);
        }
        dlk_scratch_put(DLK_SCRATCH_THREAD, win);
    }
    FN(gx_phases_free)(ph, nph);
    return failed ? DLK_ENOMEM : DLK_OK;
}
