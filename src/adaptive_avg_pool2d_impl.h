/* Template body of adaptive_avg_pool2d.c: T is the element type, SUF the suffix. */

/* Sum of n contiguous values with 8 interleaved partial sums: a fixed order
 * (independent of threads) that the compiler turns into one vector accumulator. */
static inline T DLK_CAT(plane_sum, SUF)(const T *restrict x, dlk_idx n)
{
    T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    dlk_idx i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[i + l];
    T tail = 0;
    for (; i < n; i++)
        tail += x[i];
    return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])))
           + tail;
}

void DLK_CAT(dlk_adaptive_avg_pool2d, SUF)(const dlk_pool2d_shape *s, const T *x, T *out,
                                           int nthreads)
{
    const dlk_idx H = s->h, W = s->w, OH = s->oh, OW = s->ow, hw = H * W;
    if (OH == 1 && OW == 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++)
            out[p] = DLK_CAT(plane_sum, SUF)(x + p * hw, hw) / (T)H / (T)W;
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
    for (dlk_idx p = 0; p < s->planes; p++) {
        const T *restrict xp = x + p * hw;
        T *restrict o = out + p * OH * OW;
        for (dlk_idx i = 0; i < OH; i++) {
            const dlk_idx h0 = ada_start(i, OH, H), h1 = ada_end(i, OH, H);
            for (dlk_idx j = 0; j < OW; j++) {
                const dlk_idx w0 = ada_start(j, OW, W), w1 = ada_end(j, OW, W);
                T sum = 0;
                for (dlk_idx ih = h0; ih < h1; ih++)
                    for (dlk_idx iw = w0; iw < w1; iw++)
                        sum += xp[ih * W + iw];
                o[i * OW + j] = sum / (T)(h1 - h0) / (T)(w1 - w0);
            }
        }
    }
}

void DLK_CAT(dlk_adaptive_avg_pool2d_backward, SUF)(const dlk_pool2d_shape *s,
                                                    const T *grad_out, T *grad_x,
                                                    int nthreads)
{
    const dlk_idx H = s->h, W = s->w, OH = s->oh, OW = s->ow, hw = H * W;
    if (OH == 1 && OW == 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
        for (dlk_idx p = 0; p < s->planes; p++) {
            const T d = grad_out[p] / (T)H / (T)W;
            T *restrict gx = grad_x + p * hw;
            for (dlk_idx k = 0; k < hw; k++)
                gx[k] = d;
        }
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static)
#endif
    for (dlk_idx p = 0; p < s->planes; p++) {
        T *restrict gx = grad_x + p * hw;
        const T *restrict g = grad_out + p * OH * OW;
        memset(gx, 0, (size_t)hw * sizeof(T));
        for (dlk_idx i = 0; i < OH; i++) {
            const dlk_idx h0 = ada_start(i, OH, H), h1 = ada_end(i, OH, H);
            for (dlk_idx j = 0; j < OW; j++) {
                const dlk_idx w0 = ada_start(j, OW, W), w1 = ada_end(j, OW, W);
                const T d = g[i * OW + j] / (T)(h1 - h0) / (T)(w1 - w0);
                for (dlk_idx ih = h0; ih < h1; ih++)
                    for (dlk_idx iw = w0; iw < w1; iw++)
                        gx[ih * W + iw] += d;
            }
        }
    }
}
