/* Template body of avg_pool2d.c: T is the element type, SUF the name suffix. */

/* Divisor of border column j of a row whose row extent is (h_valid, h_padded). */
static inline dlk_idx DLK_CAT(avg_divisor, SUF)(dlk_idx hv, dlk_idx hp, dlk_idx wv,
                                                 dlk_idx wp, int cip, dlk_idx override)
{
    if (override > 0)
        return override;
    return cip ? hp * wp : hv * wv;
}

/* One output row: o[j] = window sum / divisor. Interior columns sum tap by tap
 * across all columns (vectorizable, no bounds checks); border columns clip. */
static void DLK_CAT(avg_row, SUF)(const dlk_pool2d_shape *s, const T *restrict xp,
                                  dlk_idx oh, dlk_idx ja, dlk_idx jb, int cip,
                                  dlk_idx override, T *restrict o)
{
    const dlk_idx W = s->w, sw = s->sw, pw = s->pw, kw = s->kw;
    dlk_idx h0, h1, hp;
    avg_extent(oh * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);

    const T div = (T)DLK_CAT(avg_divisor, SUF)(h1 - h0, hp, kw, kw, cip, override);
    for (dlk_idx j = ja; j < jb; j++)
        o[j] = 0;
    for (dlk_idx ih = h0; ih < h1; ih++) {
        const T *restrict row = xp + ih * W;
        for (dlk_idx b = 0; b < kw; b++) {
            const dlk_idx off = b - pw;
            for (dlk_idx j = ja; j < jb; j++)
                o[j] += row[j * sw + off];
        }
    }
    for (dlk_idx j = ja; j < jb; j++)
        o[j] = o[j] / div;

    for (dlk_idx j = 0; j < s->ow; j++) {
        if (j == ja && jb > ja)
            j = jb;
        if (j >= s->ow)
            break;
        dlk_idx w0, w1, wp;
        avg_extent(j * sw - pw, kw, W, pw, &w0, &w1, &wp);
        if (h0 >= h1 || w0 >= w1) {  /* cannot happen for valid geometry; as PyTorch */
            o[j] = 0;
            continue;
        }
        T sum = 0;
        for (dlk_idx ih = h0; ih < h1; ih++)
            for (dlk_idx iw = w0; iw < w1; iw++)
                sum += xp[ih * W + iw];
        o[j] = sum / (T)DLK_CAT(avg_divisor, SUF)(h1 - h0, hp, w1 - w0, wp, cip, override);
    }
}

int DLK_CAT(dlk_avg_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                 int count_include_pad, dlk_idx divisor_override,
                                 int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_idx ja, jb;
    dlk_pool_interior(s->w, s->ow, s->kw, s->sw, s->pw, 1, &ja, &jb);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
    for (dlk_idx p = 0; p < s->planes; p++)
        for (dlk_idx i = 0; i < s->oh; i++)
            DLK_CAT(avg_row, SUF)(s, x + p * hw, i, ja, jb, count_include_pad,
                                  divisor_override, out + p * ohw + i * s->ow);
    return DLK_OK;
}

int DLK_CAT(dlk_avg_pool2d_backward, SUF)(const dlk_pool2d_shape *s, const T *grad_out,
                                          T *grad_x, int count_include_pad,
                                          dlk_idx divisor_override, int nthreads)
{
    const dlk_idx W = s->w, sw = s->sw, pw = s->pw, kw = s->kw;
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_idx ja, jb;
    int failed = 0;
    dlk_pool_interior(s->w, s->ow, s->kw, s->sw, s->pw, 1, &ja, &jb);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        T *delta = malloc((size_t)s->ow * sizeof(T));  /* grad_out / divisor, one row */
        if (!delta)
            failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!delta)
                continue;
            T *restrict gx = grad_x + p * hw;
            memset(gx, 0, (size_t)hw * sizeof(T));
            for (dlk_idx i = 0; i < s->oh; i++) {
                const T *restrict g = grad_out + p * ohw + i * s->ow;
                dlk_idx h0, h1, hp;
                avg_extent(i * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
                const T div = (T)DLK_CAT(avg_divisor, SUF)(h1 - h0, hp, kw, kw,
                                                           count_include_pad, divisor_override);
                for (dlk_idx j = ja; j < jb; j++)
                    delta[j] = g[j] / div;
                /* tap-outer: for a fixed tap the columns hit distinct cells, so
                 * overlapping windows (stride < kernel) still vectorize */
                for (dlk_idx ih = h0; ih < h1; ih++) {
                    T *restrict row = gx + ih * W;
                    for (dlk_idx b = 0; b < kw; b++) {
                        const dlk_idx off = b - pw;
                        for (dlk_idx j = ja; j < jb; j++)
                            row[j * sw + off] += delta[j];
                    }
                }
                for (dlk_idx j = 0; j < s->ow; j++) {
                    if (j == ja && jb > ja)
                        j = jb;
                    if (j >= s->ow)
                        break;
                    dlk_idx w0, w1, wp;
                    avg_extent(j * sw - pw, kw, W, pw, &w0, &w1, &wp);
                    if (h0 >= h1 || w0 >= w1)
                        continue;
                    const T d = g[j] / (T)DLK_CAT(avg_divisor, SUF)(
                                           h1 - h0, hp, w1 - w0, wp, count_include_pad,
                                           divisor_override);
                    for (dlk_idx ih = h0; ih < h1; ih++)
                        for (dlk_idx iw = w0; iw < w1; iw++)
                            gx[ih * W + iw] += d;
                }
            }
        }
        free(delta);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}
