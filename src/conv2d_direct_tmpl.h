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

/* sum over ow in [lo, hi) of a[ow] * b[ow * sw], DLK_LANES partial sums. */
static inline T FN(dot_row)(const T *restrict a, const T *restrict b, dlk_idx lo, dlk_idx hi,
                            dlk_idx sw) {
    T acc[DLK_LANES] = {0};
    dlk_idx o = lo;
    if (sw == 1) {
        for (; o + DLK_LANES <= hi; o += DLK_LANES)
            for (int j = 0; j < DLK_LANES; j++) acc[j] += a[o + j] * b[o + j];
    } else {
        for (; o + DLK_LANES <= hi; o += DLK_LANES)
            for (int j = 0; j < DLK_LANES; j++) acc[j] += a[o + j] * b[(o + j) * sw];
    }
    T s = 0;
    for (int j = 0; j < DLK_LANES; j++) s += acc[j];
    for (; o < hi; o++) s += a[o] * b[o * sw];
    return s;
}

void FN(dlk_conv2d_direct_forward)(const dlk_conv2d_geom *g, const T *x, const T *weight,
                                   const T *bias, T *y, int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, KH = g->KH, KW = g->KW, OW = g->OW;
    const dlk_idx Cg = C / g->groups, OCg = OC / g->groups;
    const dlk_idx HW = g->H * g->W, OHW = g->OH * OW, KK = KH * KW;
    /* One task per output plane (n, oc): the plane stays in L1 while every
     * (input channel, tap) pair adds a shifted, scaled input plane into it. */
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
                         * [ow0, ow1) is dereferenced, so xr itself may point
                         * before the row (never read). */
                        const T *xr = xp + (oh * g->stride_h + off_h) * g->W + off_w;
                        FN(axpy_row)(yp + oh * OW, xr, wv, ow0, ow1, g->stride_w);
                    }
                }
            }
        }
    }
}

void FN(dlk_conv2d_direct_backward)(const dlk_conv2d_geom *g, const T *grad_out, const T *x,
                                    const T *weight, T *grad_x, T *grad_weight, T *grad_bias,
                                    int nthreads) {
    const dlk_idx C = g->C, OC = g->OC, KH = g->KH, KW = g->KW, OW = g->OW, W = g->W;
    const dlk_idx Cg = C / g->groups, OCg = OC / g->groups;
    const dlk_idx HW = g->H * W, OHW = g->OH * OW, KK = KH * KW;

    /* grad_x: one task per input plane (n, c), which gathers from every output
     * channel of its group in a fixed order: race-free and thread-count
     * independent. */
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

    /* grad_weight: one task per (oc, input channel of the group); each of its KK
     * taps is a reduction over samples and output pixels in a fixed order. */
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (dlk_idx t = 0; t < OC * Cg; t++) {
        const dlk_idx oc = t / Cg, icl = t % Cg, grp = oc / OCg;
        T *restrict gwp = grad_weight + t * KK;
        for (dlk_idx k = 0; k < KK; k++) gwp[k] = 0;
        for (dlk_idx n = 0; n < g->N; n++) {
            const T *gyp = grad_out + (n * OC + oc) * OHW;
            const T *xp = x + (n * C + grp * Cg + icl) * HW;
            for (dlk_idx kh = 0; kh < KH; kh++) {
                const dlk_idx off_h = kh * g->dil_h - g->pad_h;
                dlk_idx oh0, oh1;
                dlk_conv2d_valid_range(g->OH, g->H, g->stride_h, off_h, &oh0, &oh1);
                for (dlk_idx kw = 0; kw < KW; kw++) {
                    const dlk_idx off_w = kw * g->dil_w - g->pad_w;
                    dlk_idx ow0, ow1;
                    dlk_conv2d_valid_range(OW, W, g->stride_w, off_w, &ow0, &ow1);
                    T s = 0;
                    for (dlk_idx oh = oh0; oh < oh1; oh++) {
                        const T *xr = xp + (oh * g->stride_h + off_h) * W + off_w;
                        s += FN(dot_row)(gyp + oh * OW, xr, ow0, ow1, g->stride_w);
                    }
                    gwp[kh * KW + kw] += s;
                }
            }
        }
    }

    FN(dlk_conv2d_bias_grad)(g, grad_out, grad_bias, nthreads);
}
