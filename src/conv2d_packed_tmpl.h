/* Packed GEMM engine of the im2col algorithm (template body, see
 * conv2d_template.h and conv2d_im2col.c).
 *
 * C (M x Np, row stride ldc) = A (M x Kr) @ B (Kr x Np), Goto-style: the
 * reduction is cut into blocks of at most DLK_PK_KC; A is packed once into
 * PK_MR-row panels and B per pixel block into PK_NR-column panels, both
 * interleaved along the reduction and zero-padded to whole panels, so the
 * micro-kernel reads two contiguous streams and needs no bounds checks. The
 * callers (conv2d_im2col_tmpl.h) pack B straight from x or grad_out: the
 * column matrix is never written whole.
 *
 * Determinism: the reduction blocks depend only on Kr, and every C element is
 * accumulated by one call sequence in block order, whichever thread runs it.
 */

/* One vector register of the level (PK_VBYTES); PK_VL, PK_NV, PK_NR, PK_MR:
 * conv2d_im2col.c */
typedef T FN(pvec) __attribute__((vector_size(PK_VBYTES)));
/* The same, at any element address: a load through it is a plain vector load,
 * where a memcpy into a pvec made GCC keep a tile's operands and accumulators
 * in memory at 16 registers (AVX2: grad_weight 42 -> 185 GFLOP/s, ResNet 3x3). */
typedef T FN(upvec) __attribute__((vector_size(PK_VBYTES), aligned(sizeof(T)), may_alias));

/* Reduction blocks: ceil(Kr / DLK_PK_KC) blocks of equal size (last one
 * shorter), so a K of 576 gives 3 x 192 rather than 256 + 256 + 64. */
static inline dlk_idx FN(pk_kc)(dlk_idx Kr) {
    const dlk_idx nblk = (Kr + DLK_PK_KC - 1) / DLK_PK_KC;
    return nblk ? (Kr + nblk - 1) / nblk : 1;
}

static inline dlk_idx FN(pk_round_m)(dlk_idx M) { return (M + PK_MR - 1) / PK_MR * PK_MR; }

/* Where A's elements live: A(m, k) = base[m*sm + (k / kt)*sk + (k % kt)*st] for
 * group 0, + gs per group. A plain row-major A is sm = K, kt = K, st = 1; the
 * flipped, channel-swapped kernel of grad_x (rows c, k = (o, u)) is base at the
 * last tap, sm = KH*KW, kt = KH*KW, sk = C/groups*KH*KW, st = -1, so that no
 * transformed copy of the weights is written before packing. */
typedef struct {
    const T *base;
    dlk_idx gs, sm, sk, st, kt;
} FN(pk_amap);

/* One PK_MR-row panel of A, rows m0.. of M, reduction k0 to k0 + kc, into
 * dst[k * PK_MR + i]; rows beyond M are zero. */
static void FN(pk_pack_a_panel)(const T *base, const FN(pk_amap) *a, dlk_idx M, dlk_idx k0,
                                dlk_idx kc, dlk_idx m0, T *restrict dst) {
    for (dlk_idx k = 0; k < kc; k++) {
        const T *col = base + (k0 + k) / a->kt * a->sk + (k0 + k) % a->kt * a->st;
        for (dlk_idx i = 0; i < PK_MR; i++)
            dst[k * PK_MR + i] = m0 + i < M ? col[(m0 + i) * a->sm] : (T)0;
    }
}

/* Pack A(m, k) = base[m * sm + k * sk] for m < M, k < Kr into the layout
 * [k block][m panel][k in block][PK_MR]; rows beyond M are zero. The panel of
 * (block starting at k0 of size kc, m panel mb) is at Ap + k0 * Mp + mb * PK_MR * kc,
 * Mp = pk_round_m(M). */
static void FN(pk_pack_a)(const T *base, dlk_idx sm, dlk_idx sk, dlk_idx M, dlk_idx Kr,
                          T *Ap) {
    const dlk_idx kcb = FN(pk_kc)(Kr), Mp = FN(pk_round_m)(M);
    const FN(pk_amap) a = {base, 0, sm, 0, sk, Kr};
    for (dlk_idx k0 = 0; k0 < Kr; k0 += kcb) {
        const dlk_idx kc = DLK_MIN(kcb, Kr - k0);
        for (dlk_idx m0 = 0; m0 < Mp; m0 += PK_MR)
            FN(pk_pack_a_panel)(base, &a, M, k0, kc, m0, Ap + k0 * Mp + m0 * kc);
    }
}

/* One PK_MR x PK_NR tile: C = (first ? bias : C) + Ap @ B over kc. Only the top
 * mr rows and left nr columns of C exist; the padded panels make the rest zero.
 * B is a packed panel (koff NULL: row k at Bp + k*PK_NR), or read in place: row
 * k is the PK_NV vectors at Bp + koff[k] + voff[v] (pk_block_window). */
static inline __attribute__((always_inline)) void FN(pk_tile)(
    dlk_idx kc, const T *restrict Ap, const T *restrict Bp, const dlk_idx *restrict koff,
    const dlk_idx *voff, T *restrict C, dlk_idx ldc, dlk_idx mr, dlk_idx nr, int first,
    const T *bias) {
    FN(pvec) acc[PK_MR][PK_NV];
    const FN(pvec) zero = {0};
    if (first) {
        for (int i = 0; i < PK_MR; i++)
            for (int v = 0; v < PK_NV; v++)
                acc[i][v] = zero + (bias && i < mr ? bias[i] : (T)0);
    } else if (nr == PK_NR) {
        for (int i = 0; i < PK_MR; i++) {
            if (i < mr) {
                for (int v = 0; v < PK_NV; v++)
                    memcpy(&acc[i][v], C + i * ldc + v * PK_VL, sizeof acc[i][v]);
            } else {
                for (int v = 0; v < PK_NV; v++) acc[i][v] = zero;
            }
        }
    } else {
        for (int i = 0; i < PK_MR; i++) {
            T tmp[PK_NR] = {0};
            if (i < mr) memcpy(tmp, C + i * ldc, (size_t)nr * sizeof(T));
            for (int v = 0; v < PK_NV; v++)
                memcpy(&acc[i][v], tmp + v * PK_VL, sizeof acc[i][v]);
        }
    }
    for (dlk_idx k = 0; k < kc; k++) {
        /* one row pointer, then the vectors: with the branch per vector GCC kept
         * b and the accumulators in memory at 16 registers (AVX2) */
        FN(pvec) b[PK_NV];
        const T *bk = koff ? Bp + koff[k] : Bp + k * PK_NR;
        for (int v = 0; v < PK_NV; v++)
            memcpy(&b[v], bk + (koff ? voff[v] : v * PK_VL), sizeof b[v]);
        for (int i = 0; i < PK_MR; i++) {
            const T a = Ap[k * PK_MR + i];
            for (int v = 0; v < PK_NV; v++) acc[i][v] += a * b[v];
        }
    }
    if (nr == PK_NR) {
        for (int i = 0; i < PK_MR; i++) {
            if (i >= mr) break;
            for (int v = 0; v < PK_NV; v++)
                memcpy(C + i * ldc + v * PK_VL, &acc[i][v], sizeof acc[i][v]);
        }
    } else {
        for (int i = 0; i < PK_MR; i++) {
            if (i >= mr) break;
            T tmp[PK_NR];
            for (int v = 0; v < PK_NV; v++)
                memcpy(tmp + v * PK_VL, &acc[i][v], sizeof acc[i][v]);
            memcpy(C + i * ldc, tmp, (size_t)nr * sizeof(T));
        }
    }
}

/* C[0:M, 0:nb] (row stride ldc) = (first ? bias : C) + A block @ B block for one
 * reduction block of size kc: Ak is A's block (pk_pack_a layout, Ak = Ap + k0*Mp),
 * Bk holds ceil(nb / PK_NR) panels of kc x PK_NR. Panel-outer order keeps one B
 * panel in L1 while every A panel of the block streams past it. */
static void FN(pk_block)(dlk_idx M, dlk_idx nb, dlk_idx kc, const T *Ak, const T *Bk, T *C,
                         dlk_idx ldc, int first, const T *bias) {
    for (dlk_idx j0 = 0; j0 < nb; j0 += PK_NR) {
        const T *bp = Bk + (j0 / PK_NR) * kc * PK_NR;
        const dlk_idx nr = DLK_MIN(PK_NR, nb - j0);
        for (dlk_idx m0 = 0; m0 < M; m0 += PK_MR)
            FN(pk_tile)(kc, Ak + m0 * kc, bp, NULL, NULL, C + m0 * ldc + j0, ldc,
                        DLK_MIN(PK_MR, M - m0), nr, first, bias ? bias + m0 : NULL);
    }
}

/* Panel slot of column j of a B block: panels of kc x PK_NR, row kk. */
static inline T *FN(pk_b_at)(T *Bk, dlk_idx kc, dlk_idx kk, dlk_idx j) {
    return Bk + (j / PK_NR) * kc * PK_NR + kk * PK_NR + j % PK_NR;
}

/* The zero-padded input rows that one block of output pixels reads, for one
 * (sample, group): Cg channels x R rows x sw column phases x Wq columns, where
 * element (c, r, pw, j) is x[c] at row row0 + r - pad_h and column
 * j*sw + pw - pad_w (zero outside x). Splitting columns by phase makes every
 * tap's pixels of an output row contiguous, whatever the stride. */
typedef struct {
    dlk_idx row0, R, Wq;  /* first padded input row, rows built, columns per phase */
    dlk_idx Rmax;         /* rows per channel in the layout: the largest R of any block */
} FN(pk_window);

/* Stride 1 and no padding on any side: the window of every block would be a
 * copy of rows of x in x's own layout, so x itself is the window (Rmax = H,
 * Wq = W; a 1x1 layer's window was 10% of its forward, all copy). */
static int FN(pk_window_is_x)(const dlk_conv2d_geom *g) {
    return g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 0 && g->pad_w == 0 &&
           g->OH + (g->KH - 1) * g->dil_h == g->H && g->OW + (g->KW - 1) * g->dil_w == g->W;
}

static FN(pk_window) FN(pk_window_of)(const dlk_conv2d_geom *g, dlk_idx p0, dlk_idx nb) {
    FN(pk_window) w;
    if (FN(pk_window_is_x)(g)) {
        w.row0 = 0;
        w.R = w.Rmax = g->H;
        w.Wq = g->W;
        return w;
    }
    const dlk_idx first = p0 / g->OW, last = (p0 + nb - 1) / g->OW;
    const dlk_idx rows = DLK_MIN(g->OH, (PK_NB - 1) / g->OW + 2);
    w.row0 = first * g->stride_h;
    w.R = (last - first) * g->stride_h + (g->KH - 1) * g->dil_h + 1;
    w.Rmax = (rows - 1) * g->stride_h + (g->KH - 1) * g->dil_h + 1;
    w.Wq = g->OW + (g->KW - 1) * g->dil_w / g->stride_w;
    return w;
}

/* Elements of a window buffer (every block's fits; 0 when x is the window). */
static dlk_idx FN(pk_window_size)(const dlk_conv2d_geom *g) {
    if (FN(pk_window_is_x)(g)) return 0;
    const FN(pk_window) w = FN(pk_window_of)(g, 0, 1);
    return (g->C / g->groups) * w.Rmax * g->stride_w * w.Wq;
}

/* Where tap k = (c, kh, kw) starts in a window: channel c, row kh*dh, column
 * phase (kw*dw) % sw, shifted by (kw*dw) / sw; add a pixel's run offset. */
static void FN(pk_window_taps)(const dlk_conv2d_geom *g, const FN(pk_window) *w,
                               dlk_idx *koff) {
    const dlk_idx KH = g->KH, KW = g->KW, K = (g->C / g->groups) * KH * KW;
    const dlk_idx sw = g->stride_w;
    for (dlk_idx k = 0; k < K; k++) {
        const dlk_idx c = k / (KH * KW), kh = (k / KW) % KH, vw = k % KW * g->dil_w;
        koff[k] = ((c * w->Rmax + kh * g->dil_h) * sw + vw % sw) * w->Wq + vw / sw;
    }
}

/* Window offset of output pixel p's element for a tap (add koff). */
static inline dlk_idx FN(pk_window_pixel)(const dlk_conv2d_geom *g, const FN(pk_window) *w,
                                          dlk_idx p) {
    return (p / g->OW * g->stride_h - w->row0) * g->stride_w * w->Wq + p % g->OW;
}

/* dst[j] = 0 for j < n, whole vectors, then one by one: window rows are a few
 * dozen elements, where a memset call costs as much as the clearing (the
 * ResNet 3x3 window was 6% of its forward). */
static inline void FN(pk_zero)(T *restrict dst, dlk_idx n) {
    const FN(pvec) zero = {0};
    dlk_idx j = 0;
    for (; j + PK_VL <= n; j += PK_VL) memcpy(dst + j, &zero, sizeof zero);
    for (; j < n; j++) dst[j] = 0;
}

/* How a window row is made from an input row, the same for every row: column j
 * of phase pw is x column j*sw + pw - pad_w, valid for lo[pw] <= j < hi[pw]
 * (zero elsewhere). At stride 2 the row's even columns E[i] = x[2i] go to
 * phase pe at j = i - se and its odd ones O[i] = x[2i + 1] to phase 1 - pe at
 * j = i - so; vectors i0 <= i < i1 of both are split by shuffles. Computed
 * once per call: the divisions of the valid ranges cost as much per row as
 * the copy (window rows are a few dozen elements). */
typedef struct {
    dlk_idx lo[2], hi[2];
    dlk_idx pe, se, so, i0, i1;
} FN(pk_rowplan);

static FN(pk_rowplan) FN(pk_rowplan_of)(dlk_idx W, dlk_idx sw, dlk_idx pad_w, dlk_idx Wq) {
    FN(pk_rowplan) r = {{0, 0}, {0, 0}, 0, 0, 0, 0, 0};
    if (sw > 2) return r;
    for (dlk_idx pw = 0; pw < sw; pw++)
        dlk_conv2d_valid_range(Wq, W, sw, pw - pad_w, &r.lo[pw], &r.hi[pw]);
    if (sw == 2) {
        const dlk_idx odd = ((pad_w % 2) + 2) % 2;  /* pad_w may be negative */
        r.pe = odd;                                 /* 2j + pe - pad_w even */
        r.se = (r.pe - pad_w) / 2;
        r.so = (1 - r.pe - pad_w - 1) / 2;
        r.i0 = DLK_MAX(0, DLK_MAX(r.se, r.so));
        r.i1 = r.i0;
        while (2 * (r.i1 + PK_VL) <= W && r.i1 + PK_VL - DLK_MIN(r.se, r.so) <= Wq)
            r.i1 += PK_VL;
    }
    return r;
}

/* d[j] for j in [j0, j1) of one phase row: x column j*sw + off if j is in
 * [lo, hi), else zero. */
static inline void FN(pk_fill)(T *restrict d, const T *restrict xr, dlk_idx j0, dlk_idx j1,
                               dlk_idx lo, dlk_idx hi, dlk_idx sw, dlk_idx off) {
    for (dlk_idx j = j0; j < j1; j++) d[j] = j >= lo && j < hi ? xr[j * sw + off] : (T)0;
}

/* Row xr (W columns) into its sw phase rows dst + pw*Wq. */
static inline __attribute__((always_inline)) void FN(pk_build_row)(
    const FN(pk_rowplan) *rp, const T *xr, dlk_idx W, dlk_idx sw, dlk_idx pad_w, dlk_idx Wq,
    T *restrict dst) {
    if (sw == 1) {
        for (dlk_idx j = 0; j < rp->lo[0]; j++) dst[j] = 0;
        memcpy(dst + rp->lo[0], xr + rp->lo[0] - pad_w,
               (size_t)(rp->hi[0] - rp->lo[0]) * sizeof(T));
        for (dlk_idx j = rp->hi[0]; j < Wq; j++) dst[j] = 0;
        return;
    }
    if (sw == 2) {
        /* where the vectors go in each phase row; the rest one by one */
        T *restrict de = dst + rp->pe * Wq, *restrict dodd = dst + (1 - rp->pe) * Wq;
        const dlk_idx oe = rp->pe - pad_w, oo = 1 - rp->pe - pad_w;
        const dlk_idx pe = rp->pe, po = 1 - rp->pe;
        FN(pk_fill)(de, xr, 0, DLK_MIN(Wq, rp->i0 - rp->se), rp->lo[pe], rp->hi[pe], 2, oe);
        FN(pk_fill)(de, xr, DLK_MIN(Wq, rp->i1 - rp->se), Wq, rp->lo[pe], rp->hi[pe], 2, oe);
        FN(pk_fill)(dodd, xr, 0, DLK_MIN(Wq, rp->i0 - rp->so), rp->lo[po], rp->hi[po], 2, oo);
        FN(pk_fill)(dodd, xr, DLK_MIN(Wq, rp->i1 - rp->so), Wq, rp->lo[po], rp->hi[po], 2, oo);
        FN(pmask) even, odd;
        for (int l = 0; l < (int)PK_VL; l++) {
            even[l] = 2 * l;
            odd[l] = 2 * l + 1;
        }
        for (dlk_idx i = rp->i0; i < rp->i1; i += PK_VL) {
            FN(pvec) u, v;
            memcpy(&u, xr + 2 * i, sizeof u);
            memcpy(&v, xr + 2 * i + PK_VL, sizeof v);
            const FN(pvec) e = __builtin_shuffle(u, v, even), o = __builtin_shuffle(u, v, odd);
            memcpy(de + (i - rp->se), &e, sizeof e);
            memcpy(dodd + (i - rp->so), &o, sizeof o);
        }
        return;
    }
    for (dlk_idx pw = 0; pw < sw; pw++) {
        dlk_idx a, b;
        dlk_conv2d_valid_range(Wq, W, sw, pw - pad_w, &a, &b);
        FN(pk_fill)(dst + pw * Wq, xr, 0, Wq, a, b, sw, pw - pad_w);
    }
}

/* pk_build_window's loops for one stride (a constant where inlined). */
static inline __attribute__((always_inline)) void FN(pk_build_rows)(
    const dlk_conv2d_geom *g, const T *xg, const FN(pk_window) *w, const FN(pk_rowplan) *rp,
    dlk_idx sw, T *win) {
    const dlk_idx Cg = g->C / g->groups, H = g->H, W = g->W, HW = H * W, Wq = w->Wq;
    for (dlk_idx c = 0; c < Cg; c++)
        for (dlk_idx r = 0; r < w->R; r++) {
            T *restrict dst = win + (c * w->Rmax + r) * sw * Wq;
            const dlk_idx ih = w->row0 + r - g->pad_h;
            if (ih < 0 || ih >= H)
                FN(pk_zero)(dst, sw * Wq);
            else
                FN(pk_build_row)(rp, xg + c * HW + ih * W, W, sw, g->pad_w, Wq, dst);
        }
}

/* The window of one block: every channel's rows row0 - pad_h ... as phase
 * rows (zero outside x). */
static void FN(pk_build_window)(const dlk_conv2d_geom *g, const T *xg, const FN(pk_window) *w,
                                T *win) {
    const dlk_idx sw = g->stride_w;
    const FN(pk_rowplan) rp = FN(pk_rowplan_of)(g->W, sw, g->pad_w, w->Wq);
    if (sw == 1)
        FN(pk_build_rows)(g, xg, w, &rp, 1, win);
    else if (sw == 2)
        FN(pk_build_rows)(g, xg, w, &rp, 2, win);
    else
        FN(pk_build_rows)(g, xg, w, &rp, sw, win);
}

/* Pack the implicit column matrix of one (sample, group) from its window:
 * B(k, j) for k = (c, kh, kw) in [k0, k0 + kc) and output pixel p0 + j,
 * j < nb <= PK_NB, is x[c] at row oh*sh + kh*dh - pad_h, column
 * ow*sw + kw*dw - pad_w, or zero outside x: im2col fused into the packing.
 * The block is cut once into runs that stay in one output row and one panel;
 * every run is then a plain copy, PK_NV vector moves when it fills a panel row. */
static void FN(pk_pack_b_window)(const dlk_conv2d_geom *g, const T *win,
                                 const FN(pk_window) *w, const dlk_idx *koff, dlk_idx k0,
                                 dlk_idx kc, dlk_idx p0, dlk_idx nb, T *Bk) {
    const dlk_idx OW = g->OW;
    const dlk_idx nbp = (nb + PK_NR - 1) / PK_NR * PK_NR;
    dlk_idx run_j[PK_NB + 1], run_src[PK_NB + 1], run_len[PK_NB + 1];
    dlk_idx nruns = 0;
    for (dlk_idx j = 0, ow = p0 % OW; j < nb; nruns++) {
        const dlk_idx len = DLK_MIN(DLK_MIN(OW - ow, nb - j), PK_NR - j % PK_NR);
        run_j[nruns] = j;
        run_src[nruns] = FN(pk_window_pixel)(g, w, p0 + j);
        run_len[nruns] = len;
        j += len;
        ow = (ow + len) % OW;
    }
    for (dlk_idx kk = 0; kk < kc; kk++) {
        const T *base = win + koff[k0 + kk];
        for (dlk_idx r = 0; r < nruns; r++) {
            T *restrict d = FN(pk_b_at)(Bk, kc, kk, run_j[r]);
            const T *restrict s = base + run_src[r];
            const dlk_idx len = run_len[r];
            if (len == PK_NR) {
                memcpy(d, s, PK_NR * sizeof(T));
            } else if (len == PK_VL) {
                memcpy(d, s, PK_VL * sizeof(T));
            } else {
                for (dlk_idx t = 0; t < len; t++) d[t] = s[t];
            }
        }
        for (dlk_idx j = nb; j < nbp; j++) *FN(pk_b_at)(Bk, kc, kk, j) = 0;
    }
}

/* pk_block without packing B, when every vector of output pixels lies in one
 * output row (OW a multiple of the vector width): each panel row is then PK_NV
 * whole vectors of the window, read in place, so only A is packed. */
static void FN(pk_block_window)(const dlk_conv2d_geom *g, const FN(pk_window) *w, dlk_idx M,
                                dlk_idx p0, dlk_idx nb, dlk_idx kc, const T *Ak,
                                const T *win, const dlk_idx *koff, T *C, dlk_idx ldc,
                                int first, const T *bias) {
    for (dlk_idx j0 = 0; j0 < nb; j0 += PK_NR) {
        const dlk_idx nr = DLK_MIN(PK_NR, nb - j0);
        /* a short last panel reads its first vector again in place of the
         * missing ones and stores only its nr columns */
        dlk_idx voff[PK_NV];
        voff[0] = FN(pk_window_pixel)(g, w, p0 + j0);
        for (int v = 1; v < PK_NV; v++)
            voff[v] = v * PK_VL < nr ? FN(pk_window_pixel)(g, w, p0 + j0 + v * PK_VL) : voff[0];
        for (dlk_idx m0 = 0; m0 < M; m0 += PK_MR)
            FN(pk_tile)(kc, Ak + m0 * kc, win, koff, voff, C + m0 * ldc + j0, ldc,
                        DLK_MIN(PK_MR, M - m0), nr, first, bias ? bias + m0 : NULL);
    }
}
