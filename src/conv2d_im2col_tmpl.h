/* im2col + GEMM conv2d, forward and backward (template body, see
 * conv2d_template.h and conv2d_im2col.c). */

/* Fill the column matrix of one group for samples [n0, n0 + nb): row
 * r = (c, kh, kw) of the group's K = Cg*KH*KW rows, column nl*OHW + oh*OW + ow,
 * row stride nb*OHW. Parallel over (sample, row) segments, which are disjoint. */
static void FN(im2col_fill)(const dlk_conv2d_geom *g, const T *x, dlk_idx n0, dlk_idx nb,
                            dlk_idx grp, T *col, int nthreads) {
    const dlk_idx Cg = g->C / g->groups, KH = g->KH, KW = g->KW, OW = g->OW, W = g->W;
    const dlk_idx K = Cg * KH * KW, OHW = g->OH * OW, ld = nb * OHW, HW = g->H * W;
    const dlk_idx sw = g->stride_w;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (dlk_idx t = 0; t < nb * K; t++) {
        const dlk_idx nl = t / K, r = t % K;
        const dlk_idx c = r / (KH * KW), kh = (r / KW) % KH, kw = r % KW;
        const T *xp = x + ((n0 + nl) * g->C + grp * Cg + c) * HW;
        T *restrict dst = col + r * ld + nl * OHW;
        const dlk_idx off_h = kh * g->dil_h - g->pad_h, off_w = kw * g->dil_w - g->pad_w;
        dlk_idx oh0, oh1, ow0, ow1;
        dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, off_h, &oh0, &oh1);
        dlk_conv2d_valid_range(OW, W, sw, off_w, &ow0, &ow1);
        for (dlk_idx i = 0; i < oh0 * OW; i++) dst[i] = 0;
        for (dlk_idx oh = oh0; oh < oh1; oh++) {
            T *restrict d = dst + oh * OW;
            const T *xr = xp + (oh * g->stride_h + off_h) * W + off_w;
            for (dlk_idx o = 0; o < ow0; o++) d[o] = 0;
            if (sw == 1) {
                for (dlk_idx o = ow0; o < ow1; o++) d[o] = xr[o];
            } else {
                for (dlk_idx o = ow0; o < ow1; o++) d[o] = xr[o * sw];
            }
            for (dlk_idx o = ow1; o < OW; o++) d[o] = 0;
        }
        for (dlk_idx i = oh1 * OW; i < OHW; i++) dst[i] = 0;
    }
}

/* grad_x planes of one group for samples [n0, n0 + nb) from the column-gradient
 * matrix (layout of im2col_fill): the scatter-add inverse of im2col. One task
 * per input plane (n, c), which adds its KH*KW rows in a fixed order, so the
 * scatter is race-free and deterministic. */
static void FN(col2im_add)(const dlk_conv2d_geom *g, const T *col, dlk_idx n0, dlk_idx nb,
                           dlk_idx grp, T *grad_x, int nthreads) {
    const dlk_idx Cg = g->C / g->groups, KH = g->KH, KW = g->KW, OW = g->OW, W = g->W;
    const dlk_idx OHW = g->OH * OW, ld = nb * OHW, HW = g->H * W, sw = g->stride_w;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (dlk_idx t = 0; t < nb * Cg; t++) {
        const dlk_idx nl = t / Cg, c = t % Cg;
        T *gxp = grad_x + ((n0 + nl) * g->C + grp * Cg + c) * HW;
        for (dlk_idx i = 0; i < HW; i++) gxp[i] = 0;
        for (dlk_idx kh = 0; kh < KH; kh++) {
            const dlk_idx off_h = kh * g->dil_h - g->pad_h;
            dlk_idx oh0, oh1;
            dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, off_h, &oh0, &oh1);
            for (dlk_idx kw = 0; kw < KW; kw++) {
                const dlk_idx off_w = kw * g->dil_w - g->pad_w;
                dlk_idx ow0, ow1;
                dlk_conv2d_valid_range(OW, W, sw, off_w, &ow0, &ow1);
                const T *src = col + ((c * KH + kh) * KW + kw) * ld + nl * OHW;
                for (dlk_idx oh = oh0; oh < oh1; oh++) {
                    T *restrict xr = gxp + (oh * g->stride_h + off_h) * W + off_w;
                    const T *restrict s = src + oh * OW;
                    if (sw == 1) {
                        for (dlk_idx o = ow0; o < ow1; o++) xr[o] += s[o];
                    } else {
                        for (dlk_idx o = ow0; o < ow1; o++) xr[o * sw] += s[o];
                    }
                }
            }
        }
    }
}

/* 1x1 kernel, stride 1, no padding: x itself is the column matrix, no copy. */
static int FN(is_pointwise)(const dlk_conv2d_geom *g) {
    return g->KH == 1 && g->KW == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_h == 0 && g->pad_w == 0 && g->OH == g->H && g->OW == g->W;
}

/* Samples per chunk so that one group's column matrix fits in max_col_bytes
 * (at least one sample). */
static dlk_idx FN(chunk_samples)(const dlk_conv2d_geom *g, size_t max_col_bytes) {
    const dlk_idx K = (g->C / g->groups) * g->KH * g->KW;
    const size_t per_sample = (size_t)K * (size_t)(g->OH * g->OW) * sizeof(T);
    dlk_idx nb = per_sample ? (dlk_idx)(max_col_bytes / per_sample) : g->N;
    return DLK_MAX(1, DLK_MIN(nb, g->N));
}

int FN(dlk_conv2d_im2col_forward)(const dlk_blas *blas, const dlk_conv2d_geom *g,
                                  const T *x, const T *weight, const T *bias, T *y,
                                  size_t max_col_bytes, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, Cg = C / g->groups, OCg = OC / g->groups;
    const dlk_idx K = Cg * g->KH * g->KW, OHW = g->OH * g->OW;
    if (g->N * OC * OHW == 0) return DLK_OK;
    if (FN(is_pointwise)(g)) {
        for (dlk_idx n = 0; n < g->N; n++)
            for (dlk_idx grp = 0; grp < g->groups; grp++)
                DLK_CAT(dlk_blas_gemm, SUF)(blas, 0, 0, (int)OCg, (int)OHW, (int)Cg, 1,
                                       weight + grp * OCg * Cg, (int)Cg,
                                       x + (n * C + grp * Cg) * OHW, (int)OHW, 0,
                                       y + (n * OC + grp * OCg) * OHW, (int)OHW);
    } else {
        const dlk_idx nb = FN(chunk_samples)(g, max_col_bytes);
        T *col = (T *)malloc((size_t)K * (size_t)(nb * OHW) * sizeof(T));
        if (!col) return DLK_ENOMEM;
        for (dlk_idx n0 = 0; n0 < g->N; n0 += nb) {
            const dlk_idx nbc = DLK_MIN(nb, g->N - n0);
            for (dlk_idx grp = 0; grp < g->groups; grp++) {
                FN(im2col_fill)(g, x, n0, nbc, grp, col, FILL_THREADS);
                /* One GEMM per sample writes straight into y (NCHW), so the
                 * output is never copied; N = OH*OW per call. */
                for (dlk_idx nl = 0; nl < nbc; nl++)
                    DLK_CAT(dlk_blas_gemm, SUF)(blas, 0, 0, (int)OCg, (int)OHW, (int)K, 1,
                                           weight + grp * OCg * K, (int)K, col + nl * OHW,
                                           (int)(nbc * OHW), 0,
                                           y + ((n0 + nl) * OC + grp * OCg) * OHW, (int)OHW);
            }
        }
        free(col);
    }
    if (bias) FN(dlk_conv2d_add_bias)(g, bias, y, FILL_THREADS);
    return DLK_OK;
}

int FN(dlk_conv2d_im2col_backward)(const dlk_blas *blas, const dlk_conv2d_geom *g,
                                   const T *grad_out, const T *x, const T *weight, T *grad_x,
                                   T *grad_weight, T *grad_bias, int parts,
                                   size_t max_col_bytes, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, Cg = C / g->groups, OCg = OC / g->groups;
    const dlk_idx K = Cg * g->KH * g->KW, OHW = g->OH * g->OW, HW = g->H * g->W;
    const int want_x = parts & DLK_CONV2D_GRAD_X, want_w = parts & DLK_CONV2D_GRAD_W;
    if (want_w) {
        FN(dlk_conv2d_bias_grad)(g, grad_out, grad_bias, FILL_THREADS);
        /* grad_weight accumulates over samples with beta = 1, in sample order;
         * start from zero so an empty batch gives zeros. */
        for (dlk_idx i = 0; i < OC * K; i++) grad_weight[i] = 0;
    }
    if (!want_x && !want_w) return DLK_OK;
    if (FN(is_pointwise)(g)) {
        for (dlk_idx n = 0; n < g->N; n++)
            for (dlk_idx grp = 0; grp < g->groups; grp++) {
                const T *gy = grad_out + (n * OC + grp * OCg) * OHW;
                const T *xg = x + (n * C + grp * Cg) * HW;
                /* grad_w_g += gy_g @ x_g^T ; grad_x_g = w_g^T @ gy_g */
                if (want_w)
                    DLK_CAT(dlk_blas_gemm, SUF)(blas, 0, 1, (int)OCg, (int)Cg, (int)OHW, 1, gy,
                                           (int)OHW, xg, (int)HW, 1,
                                           grad_weight + grp * OCg * Cg, (int)Cg);
                if (want_x)
                    DLK_CAT(dlk_blas_gemm, SUF)(blas, 1, 0, (int)Cg, (int)OHW, (int)OCg, 1,
                                       weight + grp * OCg * Cg, (int)Cg, gy, (int)OHW, 0,
                                       grad_x + (n * C + grp * Cg) * HW, (int)HW);
            }
        return DLK_OK;
    }
    if (g->N * HW * C == 0) return DLK_OK;
    const dlk_idx nb = FN(chunk_samples)(g, max_col_bytes);
    /* One buffer serves twice per (chunk, group): first the columns of x for
     * grad_weight, then the column gradient W^T @ grad_out for col2im. */
    T *col = (T *)malloc((size_t)K * (size_t)(nb * OHW) * sizeof(T));
    if (!col) return DLK_ENOMEM;
    for (dlk_idx n0 = 0; n0 < g->N; n0 += nb) {
        const dlk_idx nbc = DLK_MIN(nb, g->N - n0);
        const int ld = (int)(nbc * OHW);
        for (dlk_idx grp = 0; grp < g->groups; grp++) {
            const T *wg = weight + grp * OCg * K;
            T *gwg = grad_weight + grp * OCg * K;
            if (want_w) {
                FN(im2col_fill)(g, x, n0, nbc, grp, col, FILL_THREADS);
                for (dlk_idx nl = 0; nl < nbc; nl++)
                    DLK_CAT(dlk_blas_gemm, SUF)(blas, 0, 1, (int)OCg, (int)K, (int)OHW, 1,
                                           grad_out + ((n0 + nl) * OC + grp * OCg) * OHW,
                                           (int)OHW, col + nl * OHW, ld, 1, gwg, (int)K);
            }
            if (!want_x) continue;
            for (dlk_idx nl = 0; nl < nbc; nl++)
                DLK_CAT(dlk_blas_gemm, SUF)(blas, 1, 0, (int)K, (int)OHW, (int)OCg, 1, wg, (int)K,
                                       grad_out + ((n0 + nl) * OC + grp * OCg) * OHW,
                                       (int)OHW, 0, col + nl * OHW, ld);
            FN(col2im_add)(g, col, n0, nbc, grp, grad_x, FILL_THREADS);
        }
    }
    free(col);
    return DLK_OK;
}
