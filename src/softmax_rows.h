/* Templated row helpers shared by softmax.c and cross_entropy.c (static, included once per
 * dtype with T, SFX, EXPNEG, LANES defined; see softmax_body.h). Each reduces a row in a
 * fixed order, independent of the thread count. */

/* Row maximum, nan-blind (a nan in the row poisons the sum of exps instead). */
static inline T SFX(row_max)(const T *x, dlk_idx n) {
    T lane[4 * LANES];
    for (int l = 0; l < 4 * LANES; l++) lane[l] = -(T)INFINITY;
    dlk_idx j = 0;
    /* four registers of lanes break the compare-select dependency chain */
    for (; j + 4 * LANES <= n; j += 4 * LANES)
        for (int l = 0; l < 4 * LANES; l++) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
    for (; j < n; j++) lane[0] = x[j] > lane[0] ? x[j] : lane[0];
    T m = lane[0];
    for (int l = 1; l < 4 * LANES; l++) m = lane[l] > m ? lane[l] : m;
    return m;
}

/* Sum of a row in double, fixed lanes then a fixed fold order. */
static inline double SFX(row_sum)(const T *x, dlk_idx n) {
    double lane[LANES];
    for (int l = 0; l < LANES; l++) lane[l] = 0.0;
    dlk_idx j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += (double)x[j + l];
    for (; j < n; j++) lane[0] += (double)x[j];
    double s = 0.0;
    for (int l = 0; l < LANES; l++) s += lane[l];
    return s;
}

/* Sum of a[j] * b[j] in double. */
static inline double SFX(row_dot)(const T *a, const T *b, dlk_idx n) {
    double lane[LANES];
    for (int l = 0; l < LANES; l++) lane[l] = 0.0;
    dlk_idx j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += (double)a[j + l] * (double)b[j + l];
    for (; j < n; j++) lane[0] += (double)a[j] * (double)b[j];
    double s = 0.0;
    for (int l = 0; l < LANES; l++) s += lane[l];
    return s;
}

/* For rows [0, rows) of length D starting at x: m[r] = max of row r and
 * e[r*D + d] = exp(x[r*D + d] - m[r]). */
static inline void SFX(rows_shifted_exp)(const T *restrict x, dlk_idx rows, dlk_idx D,
                                  T *restrict m, T *restrict e) {
    for (dlk_idx r = 0; r < rows; r++) {
        const T *xr = x + r * D;
        T *er = e + r * D;
        T mr = SFX(row_max)(xr, D);
        m[r] = mr;
        for (dlk_idx d = 0; d < D; d++) er[d] = xr[d] - mr;
    }
    dlk_idx n = rows * D;
    for (dlk_idx k = 0; k < n; k++) e[k] = EXPNEG(e[k]);
}

/* Rows per block: enough to give the flat exp loop ~BLOCK_ELEMS elements. */
static inline dlk_idx SFX(block_rows)(dlk_idx D) {
    dlk_idx r = D > 0 ? DLK_SOFTMAX_BLOCK_ELEMS / D : DLK_SOFTMAX_BLOCK_ELEMS;
    return r < 1 ? 1 : r;
}

