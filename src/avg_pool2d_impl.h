/* Template body of avg_pool2d.c: T is the element type, SUF the name suffix. */

/* Add one zero-padded input row to the window sums of output columns [0, owr),
 * taps in order (so each window is summed row-major as in PyTorch; the zeros of
 * the padding do not change a sum). Inlined with constant kw/sw per geometry. */
static DLK_INLINE void DLK_CAT(avg_taps, SUF)(const T *restrict buf, dlk_idx owr,
                                              dlk_idx kw, dlk_idx sw, T *restrict o)
{
    for (dlk_idx j = 0; j < owr; j++) {
        T acc = o[j];
        for (dlk_idx b = 0; b < kw; b++)
            acc += buf[j * sw + b];
        o[j] = acc;
    }
}

/* Stride 2, kw = 3: the row split into even/odd columns (see max_taps_s2). */
static DLK_INLINE void DLK_CAT(avg_taps_s2k3, SUF)(const T *restrict ev, const T *restrict od,
                                                   dlk_idx owr, T *restrict o)
{
    for (dlk_idx j = 0; j < owr; j++)
        o[j] = ((o[j] + ev[j]) + od[j]) + ev[j + 1];
}

/* Spread each column's share over its window's columns in the padded row e:
 * tap-outer, so for a fixed tap the columns hit distinct cells even when windows
 * overlap (stride < kernel). */
static DLK_INLINE void DLK_CAT(avg_spread, SUF)(const T *restrict delta, dlk_idx owr,
                                                dlk_idx kw, dlk_idx sw, T *restrict e)
{
    for (dlk_idx b = 0; b < kw; b++)
        for (dlk_idx j = 0; j < owr; j++)
            e[j * sw + b] += delta[j];
}

/* PyTorch's divisor of column j in a row with clipped height hv and padded height
 * hp; 0 marks an empty window (cannot occur for valid geometry; its output is 0). */
static inline T DLK_CAT(avg_div, SUF)(const dlk_pool_scratch *g, dlk_idx j, dlk_idx hv,
                                      dlk_idx hp, int cip, dlk_idx override)
{
    if (hv <= 0 || g->wv[j] <= 0)
        return 0;
    if (override > 0)
        return (T)override;
    return (T)(cip ? hp * g->wp[j] : hv * g->wv[j]);
}

static void DLK_CAT(avg_row, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                  const T *restrict xp, dlk_idx oh, int cip,
                                  dlk_idx override, T *restrict buf, T *restrict o)
{
    const dlk_idx W = s->w, sw = s->sw, pw = s->pw, kw = s->kw;
    dlk_idx h0, h1, hp;
    avg_extent(oh * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
    for (dlk_idx j = 0; j < g->owr; j++)
        o[j] = 0;
    for (dlk_idx ih = h0; ih < h1; ih++) {
        memcpy(buf + pw, xp + ih * W, (size_t)W * sizeof(T));
        if (sw == 2 && kw == 2) {
            DLK_CAT(avg_taps, SUF)(buf, g->owr, 2, 2, o);
        } else if (sw == 2 && kw == 3) {
            T *restrict ev = o + g->owr;
            T *restrict od = ev + g->half;
            for (dlk_idx t = 0; t < g->half; t++) {
                ev[t] = buf[2 * t];
                od[t] = buf[2 * t + 1];
            }
            DLK_CAT(avg_taps_s2k3, SUF)(ev, od, g->owr, o);
        } else if (sw == 1 && kw == 3)
            DLK_CAT(avg_taps, SUF)(buf, g->owr, 3, 1, o);
        else if (sw == 1 && kw == 2)
            DLK_CAT(avg_taps, SUF)(buf, g->owr, 2, 1, o);
        else
            DLK_CAT(avg_taps, SUF)(buf, g->owr, kw, sw, o);
    }
    for (dlk_idx j = 0; j < s->ow; j++) {
        const T d = DLK_CAT(avg_div, SUF)(g, j, h1 - h0, hp, cip, override);
        o[j] = d != 0 ? o[j] / d : 0;
    }
}

int DLK_CAT(dlk_avg_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                 int count_include_pad, dlk_idx divisor_override,
                                 int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (dlk_pool_scratch_init(&g, s, 1) != DLK_OK)
        return DLK_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        /* calloc: the padding columns of the row buffer stay zero */
        T *buf = calloc((size_t)(g.len + g.owr + 2 * g.half), sizeof(T));
        failed = !buf;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!buf)
                continue;
            for (dlk_idx i = 0; i < s->oh; i++) {
                DLK_CAT(avg_row, SUF)(s, &g, x + p * hw, i, count_include_pad,
                                      divisor_override, buf, buf + g.len);
                memcpy(out + p * ohw + i * s->ow, buf + g.len, (size_t)s->ow * sizeof(T));
            }
        }
        free(buf);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}

int DLK_CAT(dlk_avg_pool2d_backward, SUF)(const dlk_pool2d_shape *s, const T *grad_out,
                                          T *grad_x, int count_include_pad,
                                          dlk_idx divisor_override, int nthreads)
{
    const dlk_idx W = s->w, sw = s->sw, pw = s->pw, kw = s->kw;
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (dlk_pool_scratch_init(&g, s, 1) != DLK_OK)
        return DLK_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        /* e: one padded input row of gradient; delta: grad_out / divisor, zero past ow */
        T *e = calloc((size_t)(g.len + g.owr), sizeof(T));
        failed = !e;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!e)
                continue;
            T *restrict gx = grad_x + p * hw;
            T *restrict delta = e + g.len;
            memset(gx, 0, (size_t)hw * sizeof(T));
            for (dlk_idx i = 0; i < s->oh; i++) {
                const T *restrict gp = grad_out + p * ohw + i * s->ow;
                dlk_idx h0, h1, hp;
                avg_extent(i * s->sh - s->ph, s->kh, s->h, s->ph, &h0, &h1, &hp);
                for (dlk_idx j = 0; j < s->ow; j++) {
                    const T d = DLK_CAT(avg_div, SUF)(&g, j, h1 - h0, hp, count_include_pad,
                                                      divisor_override);
                    delta[j] = d != 0 ? gp[j] / d : 0;
                }
                memset(e, 0, (size_t)g.len * sizeof(T));
                if (sw == 2 && kw == 2)
                    DLK_CAT(avg_spread, SUF)(delta, g.owr, 2, 2, e);
                else if (sw == 2 && kw == 3)
                    DLK_CAT(avg_spread, SUF)(delta, g.owr, 3, 2, e);
                else
                    DLK_CAT(avg_spread, SUF)(delta, g.owr, kw, sw, e);
                for (dlk_idx ih = h0; ih < h1; ih++) {
                    T *restrict row = gx + ih * W;
                    const T *restrict er = e + pw;
                    for (dlk_idx iw = 0; iw < W; iw++)
                        row[iw] += er[iw];
                }
            }
        }
        free(e);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}
