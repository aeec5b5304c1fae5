/* Template body of max_pool2d.c: T is the element type, SUF the name suffix. */

/* Fold one padded input row into the running maxima of output columns [0, owr):
 * taps b in order, strict ">" so the first maximum wins, NaN always taken
 * (PyTorch's rule). owr is a multiple of DLK_POOL_BLOCK and buf is padded with
 * -inf, so every block is a full, branch-free vector loop; a -inf pad never wins.
 * Inlined at call sites with constant kw/sw/dw so each common geometry gets its
 * own loop (shuffles instead of gathers). */
static DLK_INLINE void DLK_CAT(max_taps, SUF)(const T *restrict buf, int64_t rowbase,
                                              dlk_idx owr, dlk_idx kw, dlk_idx sw,
                                              dlk_idx dw, T *restrict o,
                                              int64_t *restrict ind)
{
    /* one flat loop over j: GCC vectorizes it with 64-byte vectors and, owr being a
     * multiple of the vector length, never runs its scalar remainder */
    if (ind) {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            int64_t mi = ind[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const dlk_idx q = j * sw + b * dw;
                const T v = buf[q];
                const int take = (v > m) | (v != v);
                m = take ? v : m;
                mi = take ? rowbase + q : mi;
            }
            o[j] = m;
            ind[j] = mi;
        }
    } else {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = buf[j * sw + b * dw];
                m = ((v > m) | (v != v)) ? v : m;
            }
            o[j] = m;
        }
    }
}

/* Stride 2: the padded row split into even and odd columns, so tap b of window
 * j reads ev/od[j + b/2] with unit stride. Used for kw = 3, whose strided read
 * past each pair makes GCC peel a scalar, branchy (mispredicted) iteration. */
static DLK_INLINE void DLK_CAT(max_taps_s2, SUF)(const T *restrict ev, const T *restrict od,
                                                 int64_t rowbase, dlk_idx owr, dlk_idx kw,
                                                 T *restrict o, int64_t *restrict ind)
{
    if (ind) {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            int64_t mi = ind[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = (b & 1) ? od[j + b / 2] : ev[j + b / 2];
                const int take = (v > m) | (v != v);
                m = take ? v : m;
                mi = take ? rowbase + 2 * j + b : mi;
            }
            o[j] = m;
            ind[j] = mi;
        }
    } else {
        for (dlk_idx j = 0; j < owr; j++) {
            T m = o[j];
            for (dlk_idx b = 0; b < kw; b++) {
                const T v = (b & 1) ? od[j + b / 2] : ev[j + b / 2];
                m = ((v > m) | (v != v)) ? v : m;
            }
            o[j] = m;
        }
    }
}

/* One output row oh of one plane into the scratch rows o[0, owr) and (if not
 * NULL) ind. Each input row the window touches is first copied into buf with
 * -inf on both sides, so no column needs bounds checks. iw0[j] is the first
 * in-range column of window j: the argmax PyTorch reports for a window that
 * holds only -inf. */
static void DLK_CAT(max_row, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                  const T *restrict xp, dlk_idx oh, T *restrict buf,
                                  T *restrict o, int64_t *restrict ind)
{
    const dlk_idx W = s->w, sw = s->sw, dw = s->dw, pw = s->pw, kw = s->kw;
    const dlk_idx hs = oh * s->sh - s->ph;
    dlk_idx alo, ahi;
    dlk_pool_taps(hs, s->kh, s->dh, s->h, &alo, &ahi);
    const dlk_idx ih0 = hs + alo * s->dh;  /* PyTorch's default argmax row */
    const T ninf = -INFINITY;

    for (dlk_idx j = 0; j < g->owr; j++)
        o[j] = ninf;
    if (ind)
        for (dlk_idx j = 0; j < g->owr; j++)
            ind[j] = ih0 * W + g->iw0[j];
    for (dlk_idx q = 0; q < pw; q++)
        buf[q] = ninf;
    for (dlk_idx q = pw + W; q < g->len; q++)
        buf[q] = ninf;
    for (dlk_idx a = alo; a < ahi; a++) {
        const dlk_idx ih = hs + a * s->dh;
        const int64_t rowbase = ih * W - pw;
        memcpy(buf + pw, xp + ih * W, (size_t)W * sizeof(T));
        if (dw == 1 && sw == 2 && kw == 2) {
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, 2, 2, 1, o, ind);
        } else if (dw == 1 && sw == 2 && kw == 3) {
            T *restrict ev = buf + g->len + g->owr;
            T *restrict od = ev + g->half;
            for (dlk_idx t = 0; t < g->half; t++) {
                ev[t] = buf[2 * t];
                od[t] = buf[2 * t + 1];
            }
            DLK_CAT(max_taps_s2, SUF)(ev, od, rowbase, g->owr, 3, o, ind);
        } else if (dw == 1 && sw == 1 && kw == 3)
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, 3, 1, 1, o, ind);
        else if (dw == 1 && sw == 1 && kw == 2)
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, 2, 1, 1, o, ind);
        else
            DLK_CAT(max_taps, SUF)(buf, rowbase, g->owr, kw, sw, dw, o, ind);
    }
}

/* Per-thread scratch rows; the plane loop is the only parallel loop, so each
 * output is computed by one thread in one fixed order. */
int DLK_CAT(dlk_max_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                 int64_t *indices, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (dlk_pool_scratch_init(&g, s, s->dw) != DLK_OK)
        return DLK_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        T *buf = malloc((size_t)(g.len + 2 * g.owr + 2 * g.half) * sizeof(T));
        int64_t *ind = indices ? malloc((size_t)g.owr * sizeof(int64_t)) : NULL;
        const int ok = buf && (ind || !indices);
        failed = !ok;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!ok)
                continue;
            T *o = buf + g.len;
            for (dlk_idx i = 0; i < s->oh; i++) {
                DLK_CAT(max_row, SUF)(s, &g, x + p * hw, i, buf, o, ind);
                memcpy(out + p * ohw + i * s->ow, o, (size_t)s->ow * sizeof(T));
                if (ind)
                    memcpy(indices + p * ohw + i * s->ow, ind,
                           (size_t)s->ow * sizeof(int64_t));
            }
        }
        free(buf);
        free(ind);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}

void DLK_CAT(dlk_max_pool2d_backward_indices, SUF)(const dlk_pool2d_shape *s,
                                                   const T *grad_out, const int64_t *indices,
                                                   T *grad_x, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
    for (dlk_idx p = 0; p < s->planes; p++) {
        T *restrict gx = grad_x + p * hw;
        const T *restrict gp = grad_out + p * ohw;
        const int64_t *restrict ind = indices + p * ohw;
        memset(gx, 0, (size_t)hw * sizeof(T));
        for (dlk_idx k = 0; k < ohw; k++) {
            const int64_t i = ind[k];
            if ((uint64_t)i < (uint64_t)hw)  /* one unsigned compare also rejects < 0 */
                gx[i] += gp[k];
        }
    }
}

int DLK_CAT(dlk_max_pool2d_backward, SUF)(const dlk_pool2d_shape *s, const T *grad_out,
                                          const T *x, T *grad_x, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_pool_scratch g;
    int failed = 0;
    if (dlk_pool_scratch_init(&g, s, s->dw) != DLK_OK)
        return DLK_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        T *buf = malloc((size_t)(g.len + g.owr + 2 * g.half) * sizeof(T));
        int64_t *ind = malloc((size_t)g.owr * sizeof(int64_t));
        const int ok = buf && ind;
        failed = !ok;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!ok)
                continue;
            T *restrict gx = grad_x + p * hw;
            memset(gx, 0, (size_t)hw * sizeof(T));
            for (dlk_idx i = 0; i < s->oh; i++) {
                const T *restrict gp = grad_out + p * ohw + i * s->ow;
                DLK_CAT(max_row, SUF)(s, &g, x + p * hw, i, buf, buf + g.len, ind);
                for (dlk_idx j = 0; j < s->ow; j++) {
                    const int64_t k = ind[j];
                    if ((uint64_t)k < (uint64_t)hw)
                        gx[k] += gp[j];
                }
            }
        }
        free(buf);
        free(ind);
    }
    dlk_pool_scratch_free(&g);
    return failed ? DLK_ENOMEM : DLK_OK;
}
