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
 * over a group of ns samples (wg_geometry) and reduces them once per group
 * in a fixed tree order; groups are added in order, so neither the thread count nor the
 * sample chunking (max_bytes) changes a bit of the result.
 * Cost per sample: O(Cg*H*W + OCg*OH*Wq) copies, then
 * OCg * K * OH * Wq multiply-adds (Wq - OW extra columns, e.g. 6% at 32x32). */

/* Tile: WG_MO output channels x WG_NK taps (conv2d_im2col.c). */

/* Geometry of the phase planes, shared by the plane builder and the tiles. */
typedef struct {
    dlk_idx Wq;   /* row pitch of planes and padded grad_out */
    dlk_idx Lq;   /* reduction length per sample: OH * Wq rounded up to whole vectors */
    dlk_idx PL;   /* elements per phase plane (covers Lq plus the largest shift),
                   * a whole number of vectors */
    dlk_idx nph;  /* phases per channel: stride_h * stride_w */
    dlk_idx ns;   /* samples per reduction group */
} FN(wg_dims);

static FN(wg_dims) FN(wg_geometry)(const dlk_conv2d_geom *g) {
    FN(wg_dims) d;
    const dlk_idx qh = (g->KH - 1) * g->dil_h / g->stride_h;
    const dlk_idx qw = (g->KW - 1) * g->dil_w / g->stride_w;
    d.Wq = g->OW + qw;
    d.Lq = (g->OH * d.Wq + PK_VL - 1) / PK_VL * PK_VL;
    d.PL = (d.Lq + qh * d.Wq + qw + PK_VL - 1) / PK_VL * PK_VL;
    d.nph = g->stride_h * g->stride_w;
    /* short streams (strided layers: 17 vectors per sample at 16x16 outputs)
     * pool more samples per reduction so that a tile's fixed cost (zeroing,
     * reduction, pointer setup) stays small beside its multiply-adds; a
     * geometry-only choice, so the thread count never changes it */
    const dlk_idx m = DLK_MIN(WG_STREAM / (WG_NS * d.Lq), (g->N + WG_NS - 1) / WG_NS);
    d.ns = WG_NS * DLK_MIN(DLK_MAX(m, 1), WG_NS_MAX / WG_NS);
    return d;
}

/* Phase planes of input channel c of one sample: plane (ph, pw) element
 * (i, j) = x[c][i*sh + ph - pad_h][j*sw + pw - pad_w], zero outside x. Each
 * plane is cleared by one memset and then only its rows and columns inside x
 * are copied: the planes' rows are short (OW + 1 = 17 elements for the strided
 * 3x3 layer), and clearing the padding row by row, with per-row range checks,
 * cost more than the copies (the plane builders were 25% of the strided 3x3
 * grad_weight, 0.6 of 2.6 ms). */
static void FN(wg_build_planes)(const dlk_conv2d_geom *g, const FN(wg_dims) *d, const T *xc,
                                T *planes, dlk_idx phase_pitch) {
    const dlk_idx sh = g->stride_h, sw = g->stride_w, W = g->W, Wq = d->Wq;
    const dlk_idx rows = d->PL / Wq;  /* whole rows; the tail past them stays zero */
    for (dlk_idx ph = 0; ph < sh; ph++)
        for (dlk_idx pw = 0; pw < sw; pw++) {
            T *pl = planes + (ph * sw + pw) * phase_pitch;
            memset(pl, 0, (size_t)d->PL * sizeof(T));
            dlk_idx i0, i1, j0, j1;
            dlk_conv2d_valid_range(rows, g->H, sh, ph - g->pad_h, &i0, &i1);
            dlk_conv2d_valid_range(Wq, W, sw, pw - g->pad_w, &j0, &j1);
            const dlk_idx n = j1 - j0;
            if (n <= 0) continue;
            for (dlk_idx i = i0; i < i1; i++) {
                T *restrict dst = pl + i * Wq + j0;
                const T *restrict src =
                    xc + (i * sh + ph - g->pad_h) * W + j0 * sw + pw - g->pad_w;
                /* constant strides, so that the compiler vectorizes each */
                if (sw == 1) {
                    for (dlk_idx j = 0; j < n; j++) dst[j] = src[j];
                } else if (sw == 2) {
                    for (dlk_idx j = 0; j < n; j++) dst[j] = src[2 * j];
                } else {
                    for (dlk_idx j = 0; j < n; j++) dst[j] = src[j * sw];
                }
            }
        }
}

/* grad_out plane o of one sample in the Wq pitch, zeros beyond OW and OH, up to PL. */
static void FN(wg_build_gy)(const dlk_conv2d_geom *g, const FN(wg_dims) *d, const T *gyo,
                            T *restrict dst) {
    const dlk_idx OW = g->OW, Wq = d->Wq;
    memset(dst, 0, (size_t)d->PL * sizeof(T));
    for (dlk_idx oh = 0; oh < g->OH; oh++)
        for (dlk_idx j = 0; j < OW; j++) dst[oh * Wq + j] = gyo[oh * OW + j];
}

#include "conv2d_bias_sum_tmpl.h"

/* Shuffle masks of the transposing reduction (wg_hsum_many), one pair per
 * level; built once per call, outside the tile loops. */
typedef struct {
    FN(pmask) lo[6], hi[6];
} FN(wg_masks);

/* Lane masks over a sample's reduction stream (wg_tile): all ones where the
 * stream position is an output pixel. */
typedef FN(pmask) FN(wg_keep);

static void FN(wg_build_masks)(FN(wg_masks) *mk) {
    int level = 0;
    for (int s = (int)PK_VL; s > 1; s /= 2, level++) {
        /* the vectors hold accumulators in blocks of s lanes; merge pairs into s/2 */
        const int per = (int)PK_VL / s;
        for (int l = 0; l < (int)PK_VL; l++) {
            const int blk = l / (s / 2), t = l % (s / 2);
            mk->lo[level][l] = blk < per ? blk * s + t : (int)PK_VL + (blk - per) * s + t;
            mk->hi[level][l] = mk->lo[level][l] + s / 2;
        }
    }
}

/* w[0] lanes 0..live-1 = sums of the lanes of w[0..live-1] (live <= VL), by
 * a transposing tree: each level adds the low and high halves of every
 * accumulator's partial sums while packing two vectors into one, so VL
 * accumulators cost VL - 1 vector adds instead of VL scalar reductions. Pairs
 * whose both halves would be zero (live < VL) are skipped: adding zeros
 * changes no bit, so the order of the additions is the same fixed tree for
 * every live. Called with constant live and fully unrolled (as a loop over
 * blocks it reloaded and re-zeroed a 16-vector scratch per block). */
static inline void FN(wg_hsum_block)(FN(pvec) *w, int live, const FN(wg_masks) *mk) {
    const FN(pvec) zero = {0};
    int level = 0;
#pragma GCC unroll 8
    for (int m = (int)PK_VL; m > 1; m /= 2, level++) {
        const int out = (live + 1) / 2;
#pragma GCC unroll 16
        for (int i = 0; i < m / 2; i++)
            if (i < out)
                w[i] = __builtin_shuffle(w[2 * i], 2 * i + 1 < live ? w[2 * i + 1] : zero,
                                         mk->lo[level]) +
                       __builtin_shuffle(w[2 * i], 2 * i + 1 < live ? w[2 * i + 1] : zero,
                                         mk->hi[level]);
        live = out;
    }
}

/* out[a] = sum of the lanes of v[a] for a < n (a compile-time constant), VL
 * accumulators at a time (wg_hsum_block). */
static inline void FN(wg_hsum_many)(FN(pvec) *v, int n, const FN(wg_masks) *mk, T *out) {
#pragma GCC unroll 8
    for (int base = 0; base < n; base += (int)PK_VL) {
        const int live = n - base < (int)PK_VL ? n - base : (int)PK_VL;
        FN(wg_hsum_block)(v + base, live, mk);
        T t[PK_VBYTES / sizeof(T)];
        memcpy(t, &v[base], sizeof t);
#pragma GCC unroll 16
        for (int a = 0; a < live; a++) out[base + a] = t[a];
    }
}

/* out[i][j] = sum over the ns samples s of dot(gy[i] + s*PL, xs[j] + s*PL) over
 * the first Lq elements (a multiple of the vector width) for a WG_MO x WG_NK
 * tile: the partial sums stay in SIMD lanes across the samples of the group and
 * are reduced once. With keep (the masked pass, see im2col_grad_weight),
 * keep[q] is all ones where stream position q is an output pixel and zero in
 * the slack (columns OW..Wq-1, positions past OH*Wq): there grad_out is zero
 * but x is a real element that this tap does not read (it may be inf, and
 * 0 * inf would turn the gradient NaN where torch stays finite), so the x lanes
 * are masked, not just multiplied by zero. keep holds one mask vector per
 * PK_VL stream positions. keep is a compile-time NULL in the plain pass
 * (wg_tile_plain), which drops the 6 ANDs per 24 FMAs (ResNet 3x3 at 1
 * thread: 145 -> 168 GFLOP/s). */
static inline __attribute__((always_inline)) void FN(wg_tile_body)(
    const T *const *gy, const T *const *xs, int ns, dlk_idx Lq, dlk_idx PL,
    const unsigned char *keep, const FN(wg_masks) *mk, T out[WG_MO * WG_NK]) {
    FN(pvec) acc[WG_MO * WG_NK];
    const FN(pvec) zero = {0};
    /* unrolled: as a loop GCC turns it into a call to memset */
#pragma GCC unroll 32
    for (int a = 0; a < WG_MO * WG_NK; a++) acc[a] = zero;
    for (int s = 0; s < ns; s++) {
        const T *g[WG_MO], *xr[WG_NK];
        for (int i = 0; i < WG_MO; i++) g[i] = gy[i] + s * PL;
        for (int j = 0; j < WG_NK; j++) xr[j] = xs[j] + s * PL;
        for (dlk_idx q = 0, v = 0; q < Lq; q += PK_VL, v++) {
            FN(pvec) gv[WG_MO];
            for (int i = 0; i < WG_MO; i++) gv[i] = *(const FN(upvec) *)(g[i] + q);
            FN(wg_keep) m;
            if (keep) memcpy(&m, keep + v * sizeof m, sizeof m);
            for (int j = 0; j < WG_NK; j++) {
                FN(pvec) xv;
                if (keep) {
                    FN(wg_keep) xi;
                    memcpy(&xi, xr[j] + q, sizeof xi);
                    xi &= m;
                    memcpy(&xv, &xi, sizeof xv);
                } else {
                    xv = *(const FN(upvec) *)(xr[j] + q);
                }
                DLK_IN_REGISTER(xv);
                for (int i = 0; i < WG_MO; i++) acc[i * WG_NK + j] += gv[i] * xv;
            }
        }
    }
    FN(wg_hsum_many)(acc, WG_MO * WG_NK, mk, out);
}

static void FN(wg_tile_masked)(const T *const *gy, const T *const *xs, int ns, dlk_idx Lq,
                               dlk_idx PL, const unsigned char *keep, const FN(wg_masks) *mk,
                               T out[WG_MO * WG_NK]) {
    FN(wg_tile_body)(gy, xs, ns, Lq, PL, keep, mk, out);
}

static void FN(wg_tile_plain)(const T *const *gy, const T *const *xs, int ns, dlk_idx Lq,
                              dlk_idx PL, const FN(wg_masks) *mk, T out[WG_MO * WG_NK]) {
    FN(wg_tile_body)(gy, xs, ns, Lq, PL, NULL, mk, out);
}

/* wg_tile_masked's keep: one mask vector per PK_VL stream positions, all ones
 * at output pixels, zero in the slack; NULL when out of memory. */
static unsigned char *FN(wg_build_keep)(const dlk_conv2d_geom *g, const FN(wg_dims) *d) {
    const dlk_idx nkeep = d->Lq / PK_VL;
    unsigned char *keep = (unsigned char *)malloc((size_t)nkeep * sizeof(FN(wg_keep)));
    if (!keep) return NULL;
    for (dlk_idx v = 0; v < nkeep; v++) {
        FN(wg_keep) m;
        for (dlk_idx l = 0; l < PK_VL; l++) {
            const dlk_idx q = v * PK_VL + l;
            m[l] = q < g->OH * d->Wq && q % d->Wq < g->OW ? -1 : 0;
        }
        memcpy(keep + v * sizeof m, &m, sizeof m);
    }
    return keep;
}

/* 1 if every element of a[0..n) is finite (a - a is NaN for inf and NaN). */
static int FN(wg_all_finite)(const T *a, dlk_idx n) {
    int ok = 1;
    for (dlk_idx i = 0; i < n; i++) ok &= a[i] - a[i] == 0;
    return ok;
}

/* grad_weight, and grad_bias unless it is NULL: the grad_out copy reads every
 * grad_out element anyway, so it also sums each (sample, channel) plane, as
 * the separate bias pass (dlk_conv2d_bias_grad) would, into bsum; the planes'
 * sums are then added per channel in sample order, the bias pass's order, so
 * grad_bias has its bits and the bias pass's read of grad_out is saved. */
static int FN(im2col_grad_weight)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                  T *grad_weight, T *grad_bias, size_t max_bytes,
                                  int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, G = g->groups, Cg = C / G, OCg = OC / G;
    const dlk_idx KH = g->KH, KW = g->KW, K = Cg * KH * KW;
    const dlk_idx HW = g->H * g->W, OHW = g->OH * g->OW;
    for (dlk_idx i = 0; i < OC * K; i++) grad_weight[i] = 0;
    if (grad_bias)
        for (dlk_idx o = 0; o < OC; o++) grad_bias[o] = 0;
    if (g->N == 0) return DLK_OK;
    const FN(wg_dims) d = FN(wg_geometry)(g);
    /* A group of NS samples lies sample-contiguous: phase plane (c, ph) of
     * sample s at (c*nph + ph)*NS*PL + s*PL, then grad_out row o of sample s
     * at xsz + (o*NS + s)*PL. A tap reads Lq elements per sample from its
     * shifted start; past the last plane that runs into the grad_out rows, and
     * past those into gslack zeros, so every element read is initialized. */
    const dlk_idx NS = d.ns, SP = NS * d.PL;
    const dlk_idx xsz = Cg * d.nph * SP, per = xsz + OCg * SP;
    /* groups per chunk (the reduction groups are fixed, so max_bytes never
     * changes the result) */
    dlk_idx ngr = (dlk_idx)(max_bytes / ((size_t)per * sizeof(T)));
    ngr = DLK_MIN(DLK_MAX(1, ngr), (g->N + NS - 1) / NS);
    const dlk_idx gslack = d.PL;
    /* + zero rows that pad the channel and tap tails of the tiles */
    T *buf = (T *)dlk_scratch_get(DLK_SCRATCH_SHARED,
                                  (size_t)(ngr * per + gslack + SP) * sizeof(T));
    if (!buf) return DLK_ENOMEM;
    T *zrow = buf + ngr * per + gslack;
    for (dlk_idx i = ngr * per; i < ngr * per + gslack + SP; i++) buf[i] = 0;
    /* where tap k = (c, kh, kw) starts in a group: phase plane of
     * (c, kh*dh mod sh, kw*dw mod sw), shifted by whole phase rows and columns */
    dlk_idx *koff = (dlk_idx *)malloc((size_t)K * sizeof(dlk_idx));
    T *bsum = grad_bias ? (T *)malloc((size_t)(g->N * OC) * sizeof(T)) : NULL;
    if (!koff || (grad_bias && !bsum)) {
        free(koff);
        free(bsum);
        dlk_scratch_put(DLK_SCRATCH_SHARED, buf);
        return DLK_ENOMEM;
    }
    for (dlk_idx k = 0; k < K; k++) {
        const dlk_idx c = k / (KH * KW), vh = (k / KW) % KH * g->dil_h, vw = k % KW * g->dil_w;
        koff[k] = (c * d.nph + (vh % g->stride_h) * g->stride_w + vw % g->stride_w) * SP +
                  vh / g->stride_h * d.Wq + vw / g->stride_w;
    }
    FN(wg_masks) masks;
    FN(wg_build_masks)(&masks);
    const int tap_major = Cg * d.nph * d.PL > OCg * d.Lq;
    const dlk_idx nob = (OCg + WG_MO - 1) / WG_MO, nkb = (K + WG_NK - 1) / WG_NK;
    /* The operand that the inner sweep streams (grad_out rows when tap-major,
     * taps otherwise) is cut into super-blocks of whole tiles whose group
     * footprint fits WG_L2_BYTES, swept once per block of the other operand:
     * the whole group (2.4 MB for 64 channels at 32x32) would stream from L3.
     * With static scheduling each thread then keeps its own super-blocks in its
     * own L2. Only the order of whole tiles changes, never a tile's sums. */
    const dlk_idx nin = tap_major ? nob : nkb, nout = tap_major ? nkb : nob;
    const dlk_idx in_bytes =
        ngr * (tap_major ? WG_MO * SP : WG_NK * SP) * (dlk_idx)sizeof(T);  /* a chunk's */
    const dlk_idx sup = DLK_MIN(nin, DLK_MAX(1, WG_L2_BYTES / in_bytes));
    const dlk_idx chunk = ngr * NS;
    /* The plain pass multiplies the slack positions' x elements by grad_out's
     * zeros unmasked. With finite x that changes no bit (0 * x is +-0, and
     * adding +-0 to a sum that starts at +0 leaves it unchanged, so the masked
     * pass would give the same bits); an inf or NaN anywhere in x or grad_out
     * can make the result non-finite, and only then is the whole gradient
     * recomputed with the slack masked (twice the time, on bad input only). */
    unsigned char *keep = NULL;  /* the masked pass's masks, built only for it */
    for (int masked = 0; masked < 2; masked++) {
        if (masked) {
            if (FN(wg_all_finite)(grad_weight, OC * K)) break;
            keep = FN(wg_build_keep)(g, &d);
            if (!keep) {
                free(bsum);
                free(koff);
                dlk_scratch_put(DLK_SCRATCH_SHARED, buf);
                return DLK_ENOMEM;
            }
            for (dlk_idx i = 0; i < OC * K; i++) grad_weight[i] = 0;
        }
#pragma omp parallel num_threads(nthreads)
        for (dlk_idx grp = 0; grp < G; grp++)
            for (dlk_idx n0 = 0; n0 < g->N; n0 += chunk) {
                const dlk_idx nbc = DLK_MIN(chunk, g->N - n0);
                const dlk_idx slots = (nbc + NS - 1) / NS * NS;
#pragma omp for schedule(static)
                for (dlk_idx t = 0; t < slots * (Cg + OCg); t++) {
                    const dlk_idx nl = t / (Cg + OCg), r = t % (Cg + OCg), n = n0 + nl;
                    T *base = buf + nl / NS * per + nl % NS * d.PL;
                    if (nl >= nbc) { /* an empty slot of the last group reads as zeros */
                        if (r < Cg)
                            for (dlk_idx ph = 0; ph < d.nph; ph++)
                                memset(base + (r * d.nph + ph) * SP, 0, (size_t)d.PL * sizeof(T));
                        else
                            memset(base + xsz + (r - Cg) * SP, 0, (size_t)d.PL * sizeof(T));
                    } else if (r < Cg) {
                        FN(wg_build_planes)(g, &d, x + (n * C + grp * Cg + r) * HW,
                                            base + r * d.nph * SP, SP);
                    } else {
                        const dlk_idx p = n * OC + grp * OCg + r - Cg;
                        FN(wg_build_gy)(g, &d, grad_out + p * OHW, base + xsz + (r - Cg) * SP);
                        /* the plane is in L1 from the copy; the masked rerun
                         * would sum it again to the same bits */
                        if (bsum && !masked) bsum[p] = FN(sum_lanes)(grad_out + p * OHW, OHW);
                    }
                }
                /* Tile order: consecutive tiles share the operand whose group
                 * footprint is larger (its rows stay in L1 across the sweep of the
                 * other), while a super-block of the smaller one stays in L2. */
                /* (ib, ob) of tile t, found by division at the first tile of
                 * each thread's static range and stepped after that */
                dlk_idx next = -1, first = 0, ssz = 0, ib = 0, ob = 0;
#pragma omp for schedule(static)
                for (dlk_idx t = 0; t < nob * nkb; t++) {
                    if (t != next) {
                        first = t / (sup * nout) * sup;
                        ssz = DLK_MIN(sup, nin - first);
                        const dlk_idx r = t - first * nout;
                        ib = first + r % ssz;
                        ob = r / ssz;
                    } else if (++ib == first + ssz) {
                        ib = first;
                        if (++ob == nout) {
                            ob = 0;
                            first += sup;
                            ssz = DLK_MIN(sup, nin - first);
                            ib = first;
                        }
                    }
                    next = t + 1;
                    const dlk_idx o0 = (tap_major ? ib : ob) * WG_MO;
                    const dlk_idx k0 = (tap_major ? ob : ib) * WG_NK;
                    for (dlk_idx s0 = 0; s0 < nbc; s0 += NS) {
                        const dlk_idx ns = DLK_MIN(NS, nbc - s0);
                        const T *base = buf + s0 / NS * per;
                        const T *gy[WG_MO], *xs[WG_NK];
                        for (int i = 0; i < WG_MO; i++)
                            gy[i] = o0 + i < OCg ? base + xsz + (o0 + i) * SP : zrow;
                        for (int j = 0; j < WG_NK; j++)
                            xs[j] = k0 + j < K ? base + koff[k0 + j] : zrow;
                        T out[WG_MO * WG_NK];
                        if (masked)
                            FN(wg_tile_masked)(gy, xs, (int)ns, d.Lq, d.PL, keep, &masks, out);
                        else
                            FN(wg_tile_plain)(gy, xs, (int)ns, d.Lq, d.PL, &masks, out);
                        T *gw = grad_weight + (grp * OCg + o0) * K + k0;
                        if (o0 + WG_MO <= OCg && k0 + WG_NK <= K) { /* constant bounds */
                            for (int i = 0; i < WG_MO; i++)
                                for (int j = 0; j < WG_NK; j++)
                                    gw[i * K + j] += out[i * WG_NK + j];
                        } else {
                            for (int i = 0; i < WG_MO && o0 + i < OCg; i++)
                                for (int j = 0; j < WG_NK && k0 + j < K; j++)
                                    gw[i * K + j] += out[i * WG_NK + j];
                        }
                    }
                }
            }
    }
    if (grad_bias)
        for (dlk_idx o = 0; o < OC; o++) {
            T s = 0;
            for (dlk_idx n = 0; n < g->N; n++) s += bsum[n * OC + o];
            grad_bias[o] = s;
        }
    free(bsum);
    free(keep);
    free(koff);
    dlk_scratch_put(DLK_SCRATCH_SHARED, buf);
    return DLK_OK;
}
