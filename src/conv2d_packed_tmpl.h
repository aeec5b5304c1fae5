/* Packed GEMM engine of the im2col algorithm (template body, see
 * conv2d_template.h and conv2d_im2col.c).
 *
 * C (M x Np, row stride ldc) = A (M x Kr) @ B (Kr x Np), Goto-style: the
 * reduction is cut into blocks of at most DLK_PK_KC; A is packed once into
 * DLK_PK_MR-row panels and B per pixel block into DLK_PK_NR-column panels, both
 * interleaved along the reduction and zero-padded to whole panels, so the
 * micro-kernel reads two contiguous streams and needs no bounds checks. The
 * callers (conv2d_im2col_tmpl.h) pack B straight from x or grad_out: the
 * column matrix is never written whole.
 *
 * Determinism: the reduction blocks depend only on Kr, and every C element is
 * accumulated by one call sequence in block order, whichever thread runs it.
 */

/* 64-byte vectors (one AVX-512 register); PK_VL, PK_NR, PK_MR: conv2d_im2col.c */
typedef T FN(pvec) __attribute__((vector_size(64)));

/* Reduction blocks: ceil(Kr / DLK_PK_KC) blocks of equal size (last one
 * shorter), so a K of 576 gives 3 x 192 rather than 256 + 256 + 64. */
static inline dlk_idx FN(pk_kc)(dlk_idx Kr) {
    const dlk_idx nblk = (Kr + DLK_PK_KC - 1) / DLK_PK_KC;
    return nblk ? (Kr + nblk - 1) / nblk : 1;
}

static inline dlk_idx FN(pk_round_m)(dlk_idx M) { return (M + PK_MR - 1) / PK_MR * PK_MR; }

/* Pack A(m, k) = base[m * sm + k * sk] for m < M, k < Kr into the layout
 * [k block][m panel][k in block][PK_MR]; rows beyond M are zero. The panel of
 * (block starting at k0 of size kc, m panel mb) is at Ap + k0 * Mp + mb * PK_MR * kc,
 * Mp = pk_round_m(M). */
static void FN(pk_pack_a)(const T *base, dlk_idx sm, dlk_idx sk, dlk_idx M, dlk_idx Kr,
                          T *Ap) {
    const dlk_idx kcb = FN(pk_kc)(Kr), Mp = FN(pk_round_m)(M);
    for (dlk_idx k0 = 0; k0 < Kr; k0 += kcb) {
        const dlk_idx kc = DLK_MIN(kcb, Kr - k0);
        for (dlk_idx m0 = 0; m0 < Mp; m0 += PK_MR) {
            T *dst = Ap + k0 * Mp + m0 * kc;
            for (dlk_idx k = 0; k < kc; k++)
                for (dlk_idx i = 0; i < PK_MR; i++)
                    dst[k * PK_MR + i] =
                        m0 + i < M ? base[(m0 + i) * sm + (k0 + k) * sk] : (T)0;
        }
    }
}

/* One PK_MR x PK_NR tile: C = (first ? bias : C) + Ap @ Bp over kc. Only the top
 * mr rows and left nr columns of C exist; the padded panels make the rest zero. */
static inline __attribute__((always_inline)) void FN(pk_tile)(
    dlk_idx kc, const T *restrict Ap, const T *restrict Bp, T *restrict C, dlk_idx ldc,
    dlk_idx mr, dlk_idx nr, int first, const T *bias) {
    FN(pvec) acc[PK_MR][2];
    const FN(pvec) zero = {0};
    if (first) {
        for (int i = 0; i < PK_MR; i++)
            acc[i][0] = acc[i][1] = zero + (bias && i < mr ? bias[i] : (T)0);
    } else if (nr == PK_NR) {
        for (int i = 0; i < PK_MR; i++) {
            if (i < mr) {
                memcpy(&acc[i][0], C + i * ldc, sizeof acc[i][0]);
                memcpy(&acc[i][1], C + i * ldc + PK_VL, sizeof acc[i][1]);
            } else {
                acc[i][0] = acc[i][1] = zero;
            }
        }
    } else {
        for (int i = 0; i < PK_MR; i++) {
            T tmp[2 * 64 / sizeof(T)] = {0};
            if (i < mr) memcpy(tmp, C + i * ldc, (size_t)nr * sizeof(T));
            memcpy(&acc[i][0], tmp, sizeof acc[i][0]);
            memcpy(&acc[i][1], tmp + PK_VL, sizeof acc[i][1]);
        }
    }
    for (dlk_idx k = 0; k < kc; k++) {
        FN(pvec) b0, b1;
        memcpy(&b0, Bp + k * PK_NR, sizeof b0);
        memcpy(&b1, Bp + k * PK_NR + PK_VL, sizeof b1);
        for (int i = 0; i < PK_MR; i++) {
            const T a = Ap[k * PK_MR + i];
            acc[i][0] += a * b0;
            acc[i][1] += a * b1;
        }
    }
    if (nr == PK_NR) {
        for (int i = 0; i < PK_MR; i++) {
            if (i >= mr) break;
            memcpy(C + i * ldc, &acc[i][0], sizeof acc[i][0]);
            memcpy(C + i * ldc + PK_VL, &acc[i][1], sizeof acc[i][1]);
        }
    } else {
        for (int i = 0; i < PK_MR; i++) {
            if (i >= mr) break;
            T tmp[2 * 64 / sizeof(T)];
            memcpy(tmp, &acc[i][0], sizeof acc[i][0]);
            memcpy(tmp + PK_VL, &acc[i][1], sizeof acc[i][1]);
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
            FN(pk_tile)(kc, Ak + m0 * kc, bp, C + m0 * ldc + j0, ldc, DLK_MIN(PK_MR, M - m0),
                        nr, first, bias ? bias + m0 : NULL);
    }
}

/* Panel slot of column j of a B block: panels of kc x PK_NR, row kk. */
static inline T *FN(pk_b_at)(T *Bk, dlk_idx kc, dlk_idx kk, dlk_idx j) {
    return Bk + (j / PK_NR) * kc * PK_NR + kk * PK_NR + j % PK_NR;
}

/* Pack B(k, j) = src[k * ldb + p0 + j] for k in [k0, k0 + kc), j < nb, padding the
 * last panel with zero columns (plain row-major operand, e.g. grad_out). */
static void FN(pk_pack_b_rows)(const T *src, dlk_idx ldb, dlk_idx k0, dlk_idx kc,
                               dlk_idx p0, dlk_idx nb, T *Bk) {
    const dlk_idx nbp = (nb + PK_NR - 1) / PK_NR * PK_NR;
    for (dlk_idx kk = 0; kk < kc; kk++) {
        const T *s = src + (k0 + kk) * ldb + p0;
        for (dlk_idx j0 = 0; j0 < nbp; j0 += PK_NR) {
            T *d = FN(pk_b_at)(Bk, kc, kk, j0);
            const dlk_idx n = DLK_MIN(PK_NR, nb - j0);
            for (dlk_idx j = 0; j < n; j++) d[j] = s[j0 + j];
            for (dlk_idx j = DLK_MAX(n, 0); j < PK_NR; j++) d[j] = 0;
        }
    }
}

/* Valid output ranges of every kernel row and column (dlk_conv2d_valid_range),
 * computed once per call so the packing does no divisions per row:
 * rng[kh] = oh0, rng[KH + kh] = oh1, rng[2*KH + kw] = ow0, rng[2*KH + KW + kw] = ow1. */
static void FN(pk_valid_ranges)(const dlk_conv2d_geom *g, dlk_idx *rng) {
    for (dlk_idx kh = 0; kh < g->KH; kh++)
        dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, kh * g->dil_h - g->pad_h, rng + kh,
                               rng + g->KH + kh);
    for (dlk_idx kw = 0; kw < g->KW; kw++)
        dlk_conv2d_valid_range(g->OW, g->W, g->stride_w, kw * g->dil_w - g->pad_w,
                               rng + 2 * g->KH + kw, rng + 2 * g->KH + g->KW + kw);
}

/* Pack the implicit column matrix of one (sample, group): B(k, j) for k =
 * (c, kh, kw) in [k0, k0 + kc) and output pixel p0 + j, j < nb <= PK_NB, is x[c] at
 * row oh*sh + kh*dh - pad_h, column ow*sw + kw*dw - pad_w, or zero outside x:
 * im2col fused into the packing. xg points at the group's first input plane,
 * rng comes from pk_valid_ranges. The block is cut once into runs that stay in
 * one output row and one panel; each kernel row then copies its runs. */
static void FN(pk_pack_b_im2col)(const dlk_conv2d_geom *g, const T *xg, const dlk_idx *rng,
                                 dlk_idx k0, dlk_idx kc, dlk_idx p0, dlk_idx nb, T *Bk) {
    const dlk_idx KH = g->KH, KW = g->KW, OW = g->OW, W = g->W, HW = g->H * g->W;
    const dlk_idx sh = g->stride_h, sw = g->stride_w;
    const dlk_idx nbp = (nb + PK_NR - 1) / PK_NR * PK_NR;
    dlk_idx run_j[PK_NB + 1], run_oh[PK_NB + 1], run_ow[PK_NB + 1], run_len[PK_NB + 1];
    dlk_idx nruns = 0;
    for (dlk_idx j = 0, oh = p0 / OW, ow = p0 % OW; j < nb; nruns++) {
        const dlk_idx len = DLK_MIN(DLK_MIN(OW - ow, nb - j), PK_NR - j % PK_NR);
        run_j[nruns] = j;
        run_oh[nruns] = oh;
        run_ow[nruns] = ow;
        run_len[nruns] = len;
        j += len;
        ow += len;
        if (ow == OW) {
            ow = 0;
            oh++;
        }
    }
    dlk_idx c = k0 / (KH * KW), kh = (k0 / KW) % KH, kw = k0 % KW;
    for (dlk_idx kk = 0; kk < kc; kk++) {
        const dlk_idx off_h = kh * g->dil_h - g->pad_h, off_w = kw * g->dil_w - g->pad_w;
        const dlk_idx oh0 = rng[kh], oh1 = rng[KH + kh];
        const dlk_idx ow0 = rng[2 * KH + kw], ow1 = rng[2 * KH + KW + kw];
        const T *xp = xg + c * HW;
        for (dlk_idx r = 0; r < nruns; r++) {
            const dlk_idx j = run_j[r], oh = run_oh[r], ow = run_ow[r], len = run_len[r];
            T *restrict d = FN(pk_b_at)(Bk, kc, kk, j);
            if (oh < oh0 || oh >= oh1) {
                for (dlk_idx t = 0; t < len; t++) d[t] = 0;
                continue;
            }
            const dlk_idx a = DLK_MIN(DLK_MAX(ow0 - ow, 0), len);
            const dlk_idx b = DLK_MAX(DLK_MIN(ow1 - ow, len), a);
            /* first valid input element of the run */
            const T *restrict s = xp + (oh * sh + off_h) * W + (ow + a) * sw + off_w;
            if (sw == 1 && a == 0 && b == PK_NR) {
                memcpy(d, s, PK_NR * sizeof(T));  /* whole panel row: two vector moves */
                continue;
            }
            for (dlk_idx t = 0; t < a; t++) d[t] = 0;
            if (sw == 1) {
                for (dlk_idx t = 0; t < b - a; t++) d[a + t] = s[t];
            } else {
                for (dlk_idx t = 0; t < b - a; t++) d[a + t] = s[t * sw];
            }
            for (dlk_idx t = b; t < len; t++) d[t] = 0;
        }
        for (dlk_idx j = nb; j < nbp; j++) *FN(pk_b_at)(Bk, kc, kk, j) = 0;
        if (++kw == KW) {
            kw = 0;
            if (++kh == KH) {
                kh = 0;
                c++;
            }
        }
    }
}
