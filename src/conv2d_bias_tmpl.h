/* Bias add and bias gradient (template body, see conv2d_template.h). */

void FN(dlk_conv2d_add_bias)(const dlk_conv2d_geom *g, const T *bias, T *y, int nthreads) {
    const dlk_idx planes = g->N * g->OC, ohw = g->OH * g->OW;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (dlk_idx p = 0; p < planes; p++) {
        const T b = bias[p % g->OC];
        T *restrict yp = y + p * ohw;
        for (dlk_idx i = 0; i < ohw; i++) yp[i] += b;
    }
}

#include "conv2d_bias_sum_tmpl.h"

void FN(dlk_conv2d_bias_grad)(const dlk_conv2d_geom *g, const T *grad_out, T *grad_bias,
                              int nthreads) {
    const dlk_idx ohw = g->OH * g->OW;
    /* One thread owns each output channel and sums samples in order (the
     * im2col grad_weight's folded sums, im2col_grad_weight, add the same
     * per-plane sums in the same order). */
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (dlk_idx oc = 0; oc < g->OC; oc++) {
        T s = 0;
        for (dlk_idx n = 0; n < g->N; n++) s += FN(sum_lanes)(grad_out + (n * g->OC + oc) * ohw, ohw);
        grad_bias[oc] = s;
    }
}
