/* grad_weight of the im2col algorithm (template body, see conv2d_template.h and
 * conv2d_im2col.c).
 *
 * grad_W_g[o, k] = sum over samples n and output pixels of grad_out_n,g[o, .] *
 * col_n,g[k, .], a GEMM whose reduction runs along the pixels of both operands.
 * Instead of packing the column matrix transposed, each sample's input planes
 * are copied once into zero-padded planes split by phase (row mod stride_h,
 * column mod stride_w) with a row pitch Wq a little wider than the output, and
 * grad_out into the same pitch with zero columns. Then the column-matrix row of
 * tap k = (c, kh, kw) is the phase plane of (c, kh*dil_h mod sh, kw*dil_w mod sw)
 * shifted by (kh*dil_h / sh) rows and (kw*dil_w / sw) columns: a contiguous
 * stream, for any stride and dilation, with no bounds checks. A register tile
 * of WG_MO output channels x WG_NK taps keeps its dot products in SIMD lanes
 * over the whole sample and reduces them once per sample in a fixed tree
 * order; samples are added in order, so neither the thread count nor the
 * sample chunking (max_bytes) changes a bit of the result.
 * Cost per sample: O(Cg*H*W + OCg*OH*Wq) copies, then
 * OCg * K * OH * Wq multiply-adds (Wq - OW extra columns, e.g. 6% at 32x32). */

/* Tile: WG_MO output channels x WG_NK taps (conv2d_im2col.c). */

/* Geometry of the phase planes, shared by the plane builder and the tiles. */
typedef struct {
    dlk_idx Wq;   /* row pitch of planes and padded grad_out */
    dlk_idx Lq;   /* reduction length per sample: OH * Wq rounded up to whole vectors */
    dlk_idx PL;   /* elements per phase plane (covers Lq plus the largest shift) */
    dlk_idx nph;  /* phases per channel: stride_h * stride_w */
} FN(wg_dims);

static FN(wg_dims) FN(wg_geometry)(const dlk_conv2d_geom *g) {
    FN(wg_dims) d;
    const dlk_idx qh = (g->KH - 1) * g->dil_h / g->stride_h;
    const dlk_idx qw = (g->KW - 1) * g->dil_w / g->stride_w;
    d.Wq = g->OW + qw;
    d.Lq = (g->OH * d.Wq + PK_VL - 1) / PK_VL * PK_VL;
    d.PL = d.Lq + qh * d.Wq + qw;
    d.nph = g->stride_h * g->stride_w;
    return d;
}

/* Phase planes of input channel c of one sample: plane (ph, pw) element
 * (i, j) = x[c][i*sh + ph - pad_h][j*sw + pw - pad_w], zero outside x. */
static void FN(wg_build_planes)(const dlk_conv2d_geom *g, const FN(wg_dims) *d, const T *xc,
                                T *planes) {
    const dlk_idx sh = g->stride_h, sw = g->stride_w, W = g->W, Wq = d->Wq;
    const dlk_idx rows = (d->PL + Wq - 1) / Wq;
    for (dlk_idx ph = 0; ph < sh; ph++)
        for (dlk_idx pw = 0; pw < sw; pw++) {
            T *pl = planes + (ph * sw + pw) * d->PL;
            dlk_idx i0, i1, j0, j1;
            dlk_conv2d_valid_range(rows, g->H, sh, ph - g->pad_h, &i0, &i1);
            dlk_conv2d_valid_range(Wq, W, sw, pw - g->pad_w, &j0, &j1);
            for (dlk_idx i = 0; i < rows; i++) {
                T *restrict dst = pl + i * Wq;
                const dlk_idx n = DLK_MIN(Wq, d->PL - i * Wq);
                if (i < i0 || i >= i1) {
                    for (dlk_idx j = 0; j < n; j++) dst[j] = 0;
                    continue;
                }
                const dlk_idx a = DLK_MIN(j0, n), b = DLK_MAX(DLK_MIN(j1, n), a);
                for (dlk_idx j = 0; j < a; j++) dst[j] = 0;
                if (b > a) {
                    const T *restrict src = xc + (i * sh + ph - g->pad_h) * W + a * sw + pw -
                                            g->pad_w;
                    if (sw == 1) {
                        for (dlk_idx j = 0; j < b - a; j++) dst[a + j] = src[j];
                    } else {
                        for (dlk_idx j = 0; j < b - a; j++) dst[a + j] = src[j * sw];
                    }
                }
                for (dlk_idx j = b; j < n; j++) dst[j] = 0;
            }
        }
}

/* grad_out plane o of one sample in the Wq pitch, zeros beyond OW and OH. */
static void FN(wg_build_gy)(const dlk_conv2d_geom *g, const FN(wg_dims) *d, const T *gyo,
                            T *restrict dst) {
    const dlk_idx OW = g->OW, Wq = d->Wq;
    for (dlk_idx oh = 0; oh < g->OH; oh++) {
        for (dlk_idx j = 0; j < OW; j++) dst[oh * Wq + j] = gyo[oh * OW + j];
        for (dlk_idx j = OW; j < Wq; j++) dst[oh * Wq + j] = 0;
    }
    for (dlk_idx i = g->OH * Wq; i < d->Lq; i++) dst[i] = 0;
}

/* Sum of the lanes of v, halving in a fixed order. */
static inline T FN(wg_hsum)(FN(pvec) v) {
    T t[64 / sizeof(T)];
    memcpy(t, &v, sizeof t);
    for (dlk_idx w = PK_VL / 2; w >= 1; w /= 2)
        for (dlk_idx i = 0; i < w; i++) t[i] += t[i + w];
    return t[0];
}

/* out[i][j] = dot(gy[i][0:L], xs[j][0:L]) for a WG_MO x WG_NK tile, L a multiple
 * of the vector width. */
static inline void FN(wg_tile)(const T *const *gy, const T *const *xs, dlk_idx L,
                               T out[WG_MO][WG_NK]) {
    FN(pvec) acc[WG_MO][WG_NK];
    const FN(pvec) zero = {0};
    for (int i = 0; i < WG_MO; i++)
        for (int j = 0; j < WG_NK; j++) acc[i][j] = zero;
    for (dlk_idx q = 0; q < L; q += PK_VL) {
        FN(pvec) gv[WG_MO];
        for (int i = 0; i < WG_MO; i++) memcpy(&gv[i], gy[i] + q, sizeof gv[i]);
        for (int j = 0; j < WG_NK; j++) {
            FN(pvec) xv;
            memcpy(&xv, xs[j] + q, sizeof xv);
            for (int i = 0; i < WG_MO; i++) acc[i][j] += gv[i] * xv;
        }
    }
    for (int i = 0; i < WG_MO; i++)
        for (int j = 0; j < WG_NK; j++) out[i][j] = FN(wg_hsum)(acc[i][j]);
}

static int FN(im2col_grad_weight)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                  T *grad_weight, size_t max_bytes, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, G = g->groups, Cg = C / G, OCg = OC / G;
    const dlk_idx KH = g->KH, KW = g->KW, K = Cg * KH * KW;
    const dlk_idx HW = g->H * g->W, OHW = g->OH * g->OW;
    for (dlk_idx i = 0; i < OC * K; i++) grad_weight[i] = 0;
    if (g->N == 0) return DLK_OK;
    const FN(wg_dims) d = FN(wg_geometry)(g);
    /* per sample: Cg channels of nph phase planes, OCg padded grad_out rows */
    const dlk_idx xsz = Cg * d.nph * d.PL, per = xsz + OCg * d.Lq;
    dlk_idx nb = (dlk_idx)(max_bytes / ((size_t)per * sizeof(T)));
    nb = DLK_MAX(1, DLK_MIN(nb, g->N));
    /* + one zero row that pads the channel and tap tails of the tiles */
    T *buf = (T *)malloc((size_t)(nb * per + d.Lq) * sizeof(T));
    if (!buf) return DLK_ENOMEM;
    T *zrow = buf + nb * per;
    for (dlk_idx i = 0; i < d.Lq; i++) zrow[i] = 0;
    const dlk_idx nob = (OCg + WG_MO - 1) / WG_MO, nkb = (K + WG_NK - 1) / WG_NK;
#pragma omp parallel num_threads(nthreads)
    for (dlk_idx grp = 0; grp < G; grp++)
        for (dlk_idx n0 = 0; n0 < g->N; n0 += nb) {
            const dlk_idx nbc = DLK_MIN(nb, g->N - n0);
#pragma omp for schedule(static)
            for (dlk_idx t = 0; t < nbc * (Cg + OCg); t++) {
                const dlk_idx nl = t / (Cg + OCg), r = t % (Cg + OCg), n = n0 + nl;
                T *base = buf + nl * per;
                if (r < Cg)
                    FN(wg_build_planes)(g, &d, x + (n * C + grp * Cg + r) * HW,
                                        base + r * d.nph * d.PL);
                else
                    FN(wg_build_gy)(g, &d, grad_out + (n * OC + grp * OCg + r - Cg) * OHW,
                                    base + xsz + (r - Cg) * d.Lq);
            }
            /* tiles are channel-block major, so a thread's consecutive tiles share
             * their grad_out rows (and neighbouring taps share planes) in cache */
#pragma omp for schedule(static)
            for (dlk_idx t = 0; t < nob * nkb; t++) {
                const dlk_idx o0 = t / nkb * WG_MO, k0 = t % nkb * WG_NK;
                for (dlk_idx nl = 0; nl < nbc; nl++) {
                    const T *base = buf + nl * per;
                    const T *gy[WG_MO], *xs[WG_NK];
                    for (int i = 0; i < WG_MO; i++)
                        gy[i] = o0 + i < OCg ? base + xsz + (o0 + i) * d.Lq : zrow;
                    for (int j = 0; j < WG_NK; j++) {
                        const dlk_idx k = k0 + j;
                        if (k >= K) {
                            xs[j] = zrow;
                            continue;
                        }
                        const dlk_idx c = k / (KH * KW), vh = (k / KW) % KH * g->dil_h;
                        const dlk_idx vw = k % KW * g->dil_w;
                        xs[j] = base + (c * d.nph + (vh % g->stride_h) * g->stride_w +
                                        vw % g->stride_w) * d.PL +
                                vh / g->stride_h * d.Wq + vw / g->stride_w;
                    }
                    T out[WG_MO][WG_NK];
                    FN(wg_tile)(gy, xs, d.Lq, out);
                    for (int i = 0; i < WG_MO && o0 + i < OCg; i++)
                        for (int j = 0; j < WG_NK && k0 + j < K; j++)
                            grad_weight[(grp * OCg + o0 + i) * K + k0 + j] += out[i][j];
                }
            }
        }
    free(buf);
    return DLK_OK;
}
