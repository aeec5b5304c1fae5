/* Template body of max_pool2d.c: T is the element type, SUF the name suffix. */

/* One output row oh of one plane: values into o[0, ow) and, if ind is not NULL,
 * argmax indices into ind. Interior columns run a branch-free select over
 * window taps (tap-outer, column-inner, so the compiler vectorizes across
 * columns); border columns clip their taps. */
static void DLK_CAT(max_row, SUF)(const dlk_pool2d_shape *s, const T *restrict xp,
                                  dlk_idx oh, dlk_idx ja, dlk_idx jb,
                                  T *restrict o, int64_t *restrict ind)
{
    const dlk_idx W = s->w, sw = s->sw, dw = s->dw, pw = s->pw, kw = s->kw;
    const dlk_idx hs = oh * s->sh - s->ph;
    dlk_idx alo, ahi;
    dlk_pool_taps(hs, s->kh, s->dh, s->h, &alo, &ahi);
    const dlk_idx ih0 = hs + alo * s->dh;  /* PyTorch's default argmax row */
    const T ninf = -INFINITY;

    /* interior columns */
    if (ind) {
        for (dlk_idx j = ja; j < jb; j++) {
            o[j] = ninf;
            ind[j] = ih0 * W + j * sw - pw;
        }
        for (dlk_idx a = alo; a < ahi; a++) {
            const dlk_idx ih = hs + a * s->dh;
            const T *restrict row = xp + ih * W;
            for (dlk_idx b = 0; b < kw; b++) {
                const dlk_idx off = b * dw - pw;
                const int64_t base = ih * W + off;
                for (dlk_idx j = ja; j < jb; j++) {
                    const T v = row[j * sw + off];
                    const int take = (v > o[j]) | (v != v);
                    o[j] = take ? v : o[j];
                    ind[j] = take ? base + j * sw : ind[j];
                }
            }
        }
    } else {
        for (dlk_idx j = ja; j < jb; j++)
            o[j] = ninf;
        for (dlk_idx a = alo; a < ahi; a++) {
            const T *restrict row = xp + (hs + a * s->dh) * W;
            for (dlk_idx b = 0; b < kw; b++) {
                const dlk_idx off = b * dw - pw;
                for (dlk_idx j = ja; j < jb; j++) {
                    const T v = row[j * sw + off];
                    const T m = o[j];
                    o[j] = ((v > m) | (v != v)) ? v : m;
                }
            }
        }
    }

    /* border columns: same order and rule, taps clipped to the row */
    for (dlk_idx j = 0; j < s->ow; j++) {
        if (j == ja && jb > ja)
            j = jb;
        if (j >= s->ow)
            break;
        const dlk_idx ws = j * sw - pw;
        dlk_idx blo, bhi;
        dlk_pool_taps(ws, kw, dw, W, &blo, &bhi);
        T m = ninf;
        int64_t mi = ih0 * W + ws + blo * dw;
        for (dlk_idx a = alo; a < ahi; a++) {
            const dlk_idx ih = hs + a * s->dh;
            for (dlk_idx b = blo; b < bhi; b++) {
                const dlk_idx iw = ws + b * dw;
                const T v = xp[ih * W + iw];
                if ((v > m) | (v != v)) {
                    m = v;
                    mi = ih * W + iw;
                }
            }
        }
        o[j] = m;
        if (ind)
            ind[j] = mi;
    }
}

int DLK_CAT(dlk_max_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                 int64_t *indices, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_idx ja, jb;
    dlk_pool_interior(s->w, s->ow, s->kw, s->sw, s->pw, s->dw, &ja, &jb);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
    for (dlk_idx p = 0; p < s->planes; p++) {
        for (dlk_idx i = 0; i < s->oh; i++)
            DLK_CAT(max_row, SUF)(s, x + p * hw, i, ja, jb, out + p * ohw + i * s->ow,
                                  indices ? indices + p * ohw + i * s->ow : NULL);
    }
    return DLK_OK;
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
        const T *restrict g = grad_out + p * ohw;
        const int64_t *restrict ind = indices + p * ohw;
        memset(gx, 0, (size_t)hw * sizeof(T));
        for (dlk_idx k = 0; k < ohw; k++) {
            const int64_t i = ind[k];
            if ((uint64_t)i < (uint64_t)hw)  /* one unsigned compare also rejects < 0 */
                gx[i] += g[k];
        }
    }
}

int DLK_CAT(dlk_max_pool2d_backward, SUF)(const dlk_pool2d_shape *s, const T *grad_out,
                                          const T *x, T *grad_x, int nthreads)
{
    const dlk_idx hw = s->h * s->w, ohw = s->oh * s->ow;
    dlk_idx ja, jb;
    int failed = 0;
    dlk_pool_interior(s->w, s->ow, s->kw, s->sw, s->pw, s->dw, &ja, &jb);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        /* one output row of scratch per thread: values and argmax */
        T *vals = malloc((size_t)s->ow * sizeof(T));
        int64_t *ind = malloc((size_t)s->ow * sizeof(int64_t));
        if (!vals || !ind)
            failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            if (!vals || !ind)
                continue;
            T *restrict gx = grad_x + p * hw;
            memset(gx, 0, (size_t)hw * sizeof(T));
            for (dlk_idx i = 0; i < s->oh; i++) {
                const T *restrict g = grad_out + p * ohw + i * s->ow;
                DLK_CAT(max_row, SUF)(s, x + p * hw, i, ja, jb, vals, ind);
                for (dlk_idx j = 0; j < s->ow; j++) {
                    const int64_t k = ind[j];
                    if ((uint64_t)k < (uint64_t)hw)
                        gx[k] += g[j];
                }
            }
        }
        free(vals);
        free(ind);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}
