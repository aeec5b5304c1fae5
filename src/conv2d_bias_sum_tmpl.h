/* The bias gradient's per-plane sum (template body, see conv2d_template.h),
 * shared by the separate bias pass (conv2d_bias_tmpl.h) and the im2col
 * grad_weight, which folds it into its grad_out copy (conv2d_wgrad_tmpl.h):
 * both must give grad_bias the same bits. */

/* Sum of n contiguous values with DLK_LANES partial sums in a fixed order. */
static inline T FN(sum_lanes)(const T *restrict a, dlk_idx n) {
    T acc[DLK_LANES] = {0};
    dlk_idx i = 0;
    for (; i + DLK_LANES <= n; i += DLK_LANES)
        for (int j = 0; j < DLK_LANES; j++) acc[j] += a[i + j];
    T s = 0;
    for (int j = 0; j < DLK_LANES; j++) s += acc[j];
    for (; i < n; i++) s += a[i];
    return s;
}
