/* dtype-generic body of batch_norm.c: included with T = float / double and
 * SUF(name) appending _f32 / _f64. No include guard on purpose. */

/* ---- passes over one unit: rows of P values at x + n*stride, n < N ---- */

/* A single-channel unit's rows are stride apart, and a row is often exactly a
 * page (1024 floats): the hardware prefetcher stops at page boundaries, so each
 * row would start cold. The single-channel passes that first touch a row ask
 * for the next one while working on this one. (Multi-channel rows are short
 * and regularly strided, which the hardware follows by itself; prefetching
 * them explicitly measured slower.) */
static void SUF(bn_prefetch_row)(const T *row, dlk_idx P) {
    for (dlk_idx i = 0; i < P; i += 64 / (dlk_idx)sizeof(T)) __builtin_prefetch(row + i);
}

/* The same for a row about to be written (fetched for ownership). */
static void SUF(bn_prefetch_row_w)(T *row, dlk_idx P) {
    for (dlk_idx i = 0; i < P; i += 64 / (dlk_idx)sizeof(T)) __builtin_prefetch(row + i, 1);
}

/* ---- passes over a multi-channel unit (B > 1): rows of P <= BN_WIDTH
 * positions, accumulators and coefficients per position (Lw == P) ---- */

/* acc[j] = sum over n of x */
static void SUF(bn_sum)(const T *restrict x, dlk_idx N, dlk_idx stride, dlk_idx P,
                        double *restrict acc) {
    dlk_idx n = 0;
    for (dlk_idx j = 0; j < P; ++j) acc[j] = 0.0;
    /* four rows per update of acc: a quarter of the accumulator stores, which
     * bound this loop when rows are short */
    for (; n + 4 <= N; n += 4) {
        const T *restrict r0 = x + n * stride, *restrict r1 = r0 + stride;
        const T *restrict r2 = r1 + stride, *restrict r3 = r2 + stride;
        for (dlk_idx j = 0; j < P; ++j)
            acc[j] += ((double)r0[j] + (double)r1[j]) + ((double)r2[j] + (double)r3[j]);
    }
    for (; n < N; ++n) {
        const T *restrict row = x + n * stride;
        for (dlk_idx j = 0; j < P; ++j) acc[j] += (double)row[j];
    }
}

/* acc1[j] = sum of d, acc2[j] = sum of d*d, d = x - mpos[j] in double */
static void SUF(bn_centered)(const T *restrict x, dlk_idx N, dlk_idx stride, dlk_idx P,
                             const double *restrict mpos, double *restrict acc1,
                             double *restrict acc2) {
    dlk_idx n = 0;
    for (dlk_idx j = 0; j < P; ++j) acc1[j] = acc2[j] = 0.0;
    for (; n + 4 <= N; n += 4) { /* four rows per accumulator update, as in bn_sum */
        const T *restrict r0 = x + n * stride, *restrict r1 = r0 + stride;
        const T *restrict r2 = r1 + stride, *restrict r3 = r2 + stride;
        for (dlk_idx j = 0; j < P; ++j) {
            double m = mpos[j];
            double d0 = (double)r0[j] - m, d1 = (double)r1[j] - m;
            double d2 = (double)r2[j] - m, d3 = (double)r3[j] - m;
            acc1[j] += (d0 + d1) + (d2 + d3);
            acc2[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
        }
    }
    for (; n < N; ++n) {
        const T *restrict row = x + n * stride;
        for (dlk_idx j = 0; j < P; ++j) {
            double d = (double)row[j] - mpos[j];
            acc1[j] += d;
            acc2[j] += d * d;
        }
    }
}

/* bn_centered plus, in the same pass (the first touch of dy, prefetched),
 * acc3[j] = sum of dy and acc4[j] = sum of dy * d */
static void SUF(bn_centered_grad)(const T *restrict x, const T *restrict dy, dlk_idx N,
                                  dlk_idx stride, dlk_idx P, const double *restrict mpos,
                                  double *restrict acc1, double *restrict acc2,
                                  double *restrict acc3, double *restrict acc4) {
    dlk_idx n = 0;
    for (dlk_idx j = 0; j < P; ++j) acc1[j] = acc2[j] = acc3[j] = acc4[j] = 0.0;
    for (; n + 2 <= N; n += 2) { /* two rows per accumulator update */
        const T *restrict x0 = x + n * stride, *restrict x1 = x0 + stride;
        const T *restrict g0 = dy + n * stride, *restrict g1 = g0 + stride;
        for (dlk_idx j = 0; j < P; ++j) {
            double m = mpos[j];
            double d0 = (double)x0[j] - m, d1 = (double)x1[j] - m;
            double e0 = (double)g0[j], e1 = (double)g1[j];
            acc1[j] += d0 + d1;
            acc2[j] += d0 * d0 + d1 * d1;
            acc3[j] += e0 + e1;
            acc4[j] += e0 * d0 + e1 * d1;
        }
    }
    for (; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        const T *restrict gr = dy + n * stride;
        for (dlk_idx j = 0; j < P; ++j) {
            double d = (double)xr[j] - mpos[j];
            double g = (double)gr[j];
            acc1[j] += d;
            acc2[j] += d * d;
            acc3[j] += g;
            acc4[j] += g * d;
        }
    }
}

/* y = ((x - hi) - lo) * sc + sh: (hi, lo) is the double mean split in two T
 * values, so x - mean keeps T's relative precision however large the mean. */
static void SUF(bn_apply)(const T *restrict x, T *restrict y, dlk_idx N, dlk_idx stride,
                          dlk_idx P, const T *restrict hi, const T *restrict lo,
                          const T *restrict sc, const T *restrict sh) {
    dlk_idx n = 0;
    for (; n + 2 <= N; n += 2) { /* two rows per load of the coefficients */
        const T *restrict x0 = x + n * stride, *restrict x1 = x0 + stride;
        T *restrict y0 = y + n * stride, *restrict y1 = y0 + stride;
        for (dlk_idx j = 0; j < P; ++j) {
            T h = hi[j], l = lo[j], c = sc[j], b = sh[j];
            y0[j] = ((x0[j] - h) - l) * c + b;
            y1[j] = ((x1[j] - h) - l) * c + b;
        }
    }
    for (; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        T *restrict yr = y + n * stride;
        for (dlk_idx j = 0; j < P; ++j) yr[j] = ((xr[j] - hi[j]) - lo[j]) * sc[j] + sh[j];
    }
}

/* Training grad_x = dy * k1 - k0 - ((x - hi) - lo) * kd */
static void SUF(bn_apply_grad)(const T *restrict dy, const T *restrict x,
                               T *restrict gx, dlk_idx N, dlk_idx stride, dlk_idx P,
                               const T *restrict hi, const T *restrict lo,
                               const T *restrict k1, const T *restrict k0,
                               const T *restrict kd) {
    dlk_idx n = 0;
    for (; n + 2 <= N; n += 2) { /* two rows per load of the coefficients */
        const T *restrict x0 = x + n * stride, *restrict x1 = x0 + stride;
        const T *restrict g0 = dy + n * stride, *restrict g1 = g0 + stride;
        T *restrict o0 = gx + n * stride, *restrict o1 = o0 + stride;
        for (dlk_idx j = 0; j < P; ++j) {
            T h = hi[j], l = lo[j], a = k1[j], b = k0[j], c = kd[j];
            o0[j] = g0[j] * a - b - ((x0[j] - h) - l) * c;
            o1[j] = g1[j] * a - b - ((x1[j] - h) - l) * c;
        }
    }
    for (; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        const T *restrict gr = dy + n * stride;
        T *restrict out = gx + n * stride;
        for (dlk_idx j = 0; j < P; ++j)
            out[j] = gr[j] * k1[j] - k0[j] - ((xr[j] - hi[j]) - lo[j]) * kd[j];
    }
}

/* Eval backward in one pass: the sums and grad_x = dy * sc together. */
static void SUF(bn_eval_grad)(const T *restrict dy, const T *restrict x,
                              T *restrict gx, dlk_idx N, dlk_idx stride, dlk_idx P,
                              dlk_idx Lw, const double *restrict mpos,
                              const T *restrict sc, double *restrict acc1,
                              double *restrict acc2) {
    for (dlk_idx j = 0; j < Lw; ++j) acc1[j] = acc2[j] = 0.0;
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        const T *restrict gr = dy + n * stride;
        T *restrict out = gx + n * stride;
        for (dlk_idx i0 = 0; i0 < P; i0 += Lw) {
            dlk_idx len = DLK_MIN(Lw, P - i0);
            for (dlk_idx j = 0; j < len; ++j) {
                T gt = gr[i0 + j];
                double g = (double)gt;
                acc1[j] += g;
                acc2[j] += g * ((double)xr[i0 + j] - mpos[j]);
                out[i0 + j] = gt * sc[j];
            }
        }
    }
}

/* ---- passes over a single-channel unit (B == 1, S large) ----
 * All positions share one channel, so the coefficients are scalars and the sums
 * are kept in BN_LANES register lanes (lane t takes the elements j = t mod
 * BN_LANES of each row), summed in order at the end: vectorized, no
 * accumulator traffic through memory, and a fixed order. */

static void SUF(bn1_sum)(const T *restrict x, dlk_idx N, dlk_idx stride, dlk_idx S,
                         double *sum) {
    double a[BN_LANES];
    for (int t = 0; t < BN_LANES; ++t) a[t] = 0.0;
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict row = x + n * stride;
        if (n + 1 < N) SUF(bn_prefetch_row)(row + stride, S);
        dlk_idx j = 0;
        for (; j + BN_LANES <= S; j += BN_LANES)
            for (int t = 0; t < BN_LANES; ++t) a[t] += (double)row[j + t];
        for (int t = 0; j + t < S; ++t) a[t] += (double)row[j + t];
    }
    *sum = bn_lanes_sum(a);
}

static void SUF(bn1_centered)(const T *restrict x, dlk_idx N, dlk_idx stride, dlk_idx S,
                              double mean, double *sd, double *sq) {
    double a1[BN_LANES], a2[BN_LANES];
    for (int t = 0; t < BN_LANES; ++t) a1[t] = a2[t] = 0.0;
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict row = x + n * stride;
        dlk_idx j = 0;
        for (; j + BN_LANES <= S; j += BN_LANES)
            for (int t = 0; t < BN_LANES; ++t) {
                double d = (double)row[j + t] - mean;
                a1[t] += d;
                a2[t] += d * d;
            }
        for (int t = 0; j + t < S; ++t) {
            double d = (double)row[j + t] - mean;
            a1[t] += d;
            a2[t] += d * d;
        }
    }
    *sd = bn_lanes_sum(a1);
    *sq = bn_lanes_sum(a2);
}

static void SUF(bn1_centered_grad)(const T *restrict x, const T *restrict dy, dlk_idx N,
                                   dlk_idx stride, dlk_idx S, double mean, double *sd,
                                   double *sq, double *sg, double *sgd) {
    double a1[BN_LANES], a2[BN_LANES], a3[BN_LANES], a4[BN_LANES];
    for (int t = 0; t < BN_LANES; ++t) a1[t] = a2[t] = a3[t] = a4[t] = 0.0;
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        const T *restrict gr = dy + n * stride;
        if (n + 1 < N) SUF(bn_prefetch_row)(gr + stride, S);
        dlk_idx j = 0;
        for (; j + BN_LANES <= S; j += BN_LANES)
            for (int t = 0; t < BN_LANES; ++t) {
                double d = (double)xr[j + t] - mean, g = (double)gr[j + t];
                a1[t] += d;
                a2[t] += d * d;
                a3[t] += g;
                a4[t] += g * d;
            }
        for (int t = 0; j + t < S; ++t) {
            double d = (double)xr[j + t] - mean, g = (double)gr[j + t];
            a1[t] += d;
            a2[t] += d * d;
            a3[t] += g;
            a4[t] += g * d;
        }
    }
    *sd = bn_lanes_sum(a1);
    *sq = bn_lanes_sum(a2);
    *sg = bn_lanes_sum(a3);
    *sgd = bn_lanes_sum(a4);
}

static void SUF(bn1_apply)(const T *restrict x, T *restrict y, dlk_idx N, dlk_idx stride,
                           dlk_idx S, T hi, T lo, T sc, T sh, int prefetch_x) {
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        T *restrict yr = y + n * stride;
        if (n + 1 < N) {
            if (prefetch_x) SUF(bn_prefetch_row)(xr + stride, S);
            SUF(bn_prefetch_row_w)(yr + stride, S);
        }
        for (dlk_idx j = 0; j < S; ++j) yr[j] = ((xr[j] - hi) - lo) * sc + sh;
    }
}

static void SUF(bn1_apply_grad)(const T *restrict dy, const T *restrict x,
                                T *restrict gx, dlk_idx N, dlk_idx stride, dlk_idx S,
                                T hi, T lo, T k1, T k0, T kd) {
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        const T *restrict gr = dy + n * stride;
        T *restrict out = gx + n * stride;
        if (n + 1 < N) SUF(bn_prefetch_row_w)(out + stride, S);
        for (dlk_idx j = 0; j < S; ++j)
            out[j] = gr[j] * k1 - k0 - ((xr[j] - hi) - lo) * kd;
    }
}

static void SUF(bn1_eval_grad)(const T *restrict dy, const T *restrict x,
                               T *restrict gx, dlk_idx N, dlk_idx stride, dlk_idx S,
                               double mean, T sc, double *sg, double *sgd) {
    double a1[BN_LANES], a2[BN_LANES];
    for (int t = 0; t < BN_LANES; ++t) a1[t] = a2[t] = 0.0;
    for (dlk_idx n = 0; n < N; ++n) {
        const T *restrict xr = x + n * stride;
        const T *restrict gr = dy + n * stride;
        T *restrict out = gx + n * stride;
        if (n + 1 < N) {
            SUF(bn_prefetch_row)(xr + stride, S);
            SUF(bn_prefetch_row)(gr + stride, S);
            SUF(bn_prefetch_row_w)(out + stride, S);
        }
        dlk_idx j = 0;
        for (; j + BN_LANES <= S; j += BN_LANES)
            for (int t = 0; t < BN_LANES; ++t) {
                T gt = gr[j + t];
                a1[t] += (double)gt;
                a2[t] += (double)gt * ((double)xr[j + t] - mean);
                out[j + t] = gt * sc;
            }
        for (int t = 0; j + t < S; ++t) {
            T gt = gr[j + t];
            a1[t] += (double)gt;
            a2[t] += (double)gt * ((double)xr[j + t] - mean);
            out[j + t] = gt * sc;
        }
    }
    *sg = bn_lanes_sum(a1);
    *sgd = bn_lanes_sum(a2);
}

/* ---- (N, C) input (S == 1, C > 1): strips of at most BN_STRIP channels ----
 * A strip is w contiguous values of every row (N rows, C values apart); its sums and
 * coefficients live in small local arrays (no heap scratch, no per-position fills).
 * float64 sums run over the rows in the same order as bn_sum / bn_centered /
 * bn_centered_grad (4-row, 4-row and 2-row trees); float32 takes its statistics from
 * BN_BLOCKED_STATS (batch_norm_blocked_f32.h), in row blocks that depend only on N.
 * Either way a channel's statistics do not depend on the thread count. */

typedef struct {
    double mean[BN_STRIP], var[BN_STRIP], invstd[BN_STRIP];
    double sdy[BN_STRIP], sdyd[BN_STRIP]; /* sum dy, sum dy * (x - mean) */
} SUF(bn_strip_stats);

/* Batch statistics of the w <= BN_STRIP channels starting at x (row stride C), and
 * with dy the two gradient sums, exactly as bn_batch_stats computes them. */
static inline void SUF(bn_strip_batch_stats)(const T *restrict x, const T *restrict dy,
                                             dlk_idx N, dlk_idx C, dlk_idx w, double eps,
                                             SUF(bn_strip_stats) *st) {
    double a1[BN_STRIP], a2[BN_STRIP], a3[BN_STRIP], a4[BN_STRIP], m[BN_STRIP];
    double M = (double)N;
    SUF(bn_sum)(x, N, C, w, a1); /* the same order of additions as the other paths */
    for (dlk_idx j = 0; j < w; ++j) {
        m[j] = a1[j] / M;
        a1[j] = a2[j] = a3[j] = a4[j] = 0.0;
    }
    dlk_idx n = 0;
    if (!dy) {
        for (; n + 4 <= N; n += 4) {
            const T *restrict r0 = x + n * C, *restrict r1 = r0 + C;
            const T *restrict r2 = r1 + C, *restrict r3 = r2 + C;
            for (dlk_idx j = 0; j < w; ++j) {
                double d0 = (double)r0[j] - m[j], d1 = (double)r1[j] - m[j];
                double d2 = (double)r2[j] - m[j], d3 = (double)r3[j] - m[j];
                a1[j] += (d0 + d1) + (d2 + d3);
                a2[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
            }
        }
        for (; n < N; ++n)
            for (dlk_idx j = 0; j < w; ++j) {
                double d = (double)x[n * C + j] - m[j];
                a1[j] += d;
                a2[j] += d * d;
            }
    } else {
        for (; n + 2 <= N; n += 2) {
            const T *restrict x0 = x + n * C, *restrict x1 = x0 + C;
            const T *restrict g0 = dy + n * C, *restrict g1 = g0 + C;
            for (dlk_idx j = 0; j < w; ++j) {
                double d0 = (double)x0[j] - m[j], d1 = (double)x1[j] - m[j];
                double e0 = (double)g0[j], e1 = (double)g1[j];
                a1[j] += d0 + d1;
                a2[j] += d0 * d0 + d1 * d1;
                a3[j] += e0 + e1;
                a4[j] += e0 * d0 + e1 * d1;
            }
        }
        for (; n < N; ++n)
            for (dlk_idx j = 0; j < w; ++j) {
                double d = (double)x[n * C + j] - m[j], g = (double)dy[n * C + j];
                a1[j] += d;
                a2[j] += d * d;
                a3[j] += g;
                a4[j] += g * d;
            }
    }
    for (dlk_idx j = 0; j < w; ++j) { /* as in bn_batch_stats */
        double sd = a1[j], var = (a2[j] - sd * sd / M) / M;
        if (!(var > 0.0)) var = var != var ? var : 0.0;
        st->mean[j] = m[j] + sd / M;
        st->invstd[j] = 1.0 / sqrt(var + eps);
        st->var[j] = var;
        if (dy) {
            st->sdy[j] = a3[j];
            st->sdyd[j] = a4[j] - sd / M * a3[j];
        }
    }
}

/* y = ((x - hi) - lo) * sc + sh over the strip (training forward, as bn_apply) */
static inline void SUF(bn_strip_apply)(const T *restrict x, T *restrict y, dlk_idx N,
                                       dlk_idx C, dlk_idx w, const T *restrict hi,
                                       const T *restrict lo, const T *restrict sc,
                                       const T *restrict sh) {
    for (dlk_idx n = 0; n < N; ++n)
        for (dlk_idx j = 0; j < w; ++j)
            y[n * C + j] = ((x[n * C + j] - hi[j]) - lo[j]) * sc[j] + sh[j];
}

/* grad_x = dy * k1 - k0 - ((x - hi) - lo) * kd over the strip (as bn_apply_grad) */
static inline void SUF(bn_strip_apply_grad)(const T *restrict dy, const T *restrict x,
                                            T *restrict gx, dlk_idx N, dlk_idx C, dlk_idx w,
                                            const T *restrict hi, const T *restrict lo,
                                            const T *restrict k1, const T *restrict k0,
                                            const T *restrict kd) {
    for (dlk_idx n = 0; n < N; ++n)
        for (dlk_idx j = 0; j < w; ++j)
            gx[n * C + j] = dy[n * C + j] * k1[j] - k0[j]
                            - ((x[n * C + j] - hi[j]) - lo[j]) * kd[j];
}

/* Training forward of the strip of w channels at c0 (running stats updated). */
static inline void SUF(bn_strip_train)(const T *x, T *y, dlk_idx N, dlk_idx C, dlk_idx c0,
                                       dlk_idx w, const T *weight, const T *bias,
                                       T *running_mean, T *running_var, double momentum,
                                       double eps, double unbias) {
    SUF(bn_strip_stats) st;
    T hi[BN_STRIP], lo[BN_STRIP], sc[BN_STRIP], sh[BN_STRIP];
#ifdef BN_BLOCKED_STATS
    BN_BLOCKED_STATS(x + c0, NULL, N, C, w, eps, st.mean, st.var, st.invstd, NULL, NULL);
#else
    SUF(bn_strip_batch_stats)(x + c0, NULL, N, C, w, eps, &st);
#endif
    for (dlk_idx j = 0; j < w; ++j) {
        dlk_idx c = c0 + j;
        if (running_mean) {
            running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c]
                                  + momentum * st.mean[j]);
            running_var[c] = (T)((1.0 - momentum) * (double)running_var[c]
                                 + momentum * st.var[j] * unbias);
        }
        hi[j] = (T)st.mean[j];
        lo[j] = (T)(st.mean[j] - (double)hi[j]);
        sc[j] = (T)((weight ? (double)weight[c] : 1.0) * st.invstd[j]);
        sh[j] = bias ? bias[c] : (T)0;
    }
    SUF(bn_strip_apply)(x + c0, y + c0, N, C, w, hi, lo, sc, sh);
}

/* Training backward of the strip of w channels at c0. */
static inline void SUF(bn_strip_backward)(const T *dy, const T *x, T *gx, dlk_idx N,
                                          dlk_idx C, dlk_idx c0, dlk_idx w, const T *weight,
                                          double eps, T *grad_weight, T *grad_bias) {
    SUF(bn_strip_stats) st;
    T hi[BN_STRIP], lo[BN_STRIP], k1[BN_STRIP], k0[BN_STRIP], kd[BN_STRIP];
    double M = (double)N;
#ifdef BN_BLOCKED_STATS
    BN_BLOCKED_STATS(x + c0, dy + c0, N, C, w, eps, st.mean, st.var, st.invstd, st.sdy,
                     st.sdyd);
#else
    SUF(bn_strip_batch_stats)(x + c0, dy + c0, N, C, w, eps, &st);
#endif
    for (dlk_idx j = 0; j < w; ++j) { /* as in dlk_batch_norm_backward */
        dlk_idx c = c0 + j;
        double sdy = st.sdy[j], sdyd = st.sdyd[j], is = st.invstd[j];
        double wc = weight ? (double)weight[c] : 1.0;
        grad_bias[c] = (T)sdy;
        grad_weight[c] = (T)(sdyd * is);
        hi[j] = (T)st.mean[j];
        lo[j] = (T)(st.mean[j] - (double)hi[j]);
        k1[j] = (T)(wc * is);
        k0[j] = (T)(wc * is * sdy / M);
        kd[j] = (T)(wc * is * is * is * sdyd / M);
    }
    SUF(bn_strip_apply_grad)(dy + c0, x + c0, gx + c0, N, C, w, hi, lo, k1, k0, kd);
}

/* ---- per-thread scratch ---- */

typedef struct {
    double *acc1, *acc2, *acc3, *acc4, *mpos;
    T *a, *b, *c, *d, *e; /* per-position coefficients */
    double mean[BN_MAX_BLOCK], invstd[BN_MAX_BLOCK], var[BN_MAX_BLOCK];
    double sdy[BN_MAX_BLOCK], sdyd[BN_MAX_BLOCK]; /* sum dy, sum dy * (x - mean) */
    T ca[BN_MAX_BLOCK], cb[BN_MAX_BLOCK], cc[BN_MAX_BLOCK], cd[BN_MAX_BLOCK],
        ce[BN_MAX_BLOCK]; /* per-channel values of a..e */
} SUF(bn_scratch);

/* Spread per-channel values over the positions: dst[j] = v[j / S], j < Lw,
 * without a division per position. */
static void SUF(bn_fill)(T *restrict dst, const T *restrict v, dlk_idx bc, dlk_idx S,
                         dlk_idx Lw) {
    for (dlk_idx k = 0; k < bc; ++k) {
        dlk_idx hi = DLK_MIN((k + 1) * S, Lw);
        for (dlk_idx j = k * S; j < hi; ++j) dst[j] = v[k];
    }
}

static void SUF(bn_fill_double)(double *restrict dst, const double *restrict v, dlk_idx bc,
                                dlk_idx S, dlk_idx Lw) {
    for (dlk_idx k = 0; k < bc; ++k) {
        dlk_idx hi = DLK_MIN((k + 1) * S, Lw);
        for (dlk_idx j = k * S; j < hi; ++j) dst[j] = v[k];
    }
}

static SUF(bn_scratch) *SUF(bn_scratch_new)(dlk_idx Lw) {
    SUF(bn_scratch) *s = malloc(sizeof *s);
    if (!s) return NULL;
    s->acc1 = malloc(5 * (size_t)Lw * sizeof(double));
    s->a = malloc(5 * (size_t)Lw * sizeof(T));
    if (!s->acc1 || !s->a) {
        free(s->acc1);
        free(s->a);
        free(s);
        return NULL;
    }
    s->acc2 = s->acc1 + Lw;
    s->acc3 = s->acc2 + Lw;
    s->acc4 = s->acc3 + Lw;
    s->mpos = s->acc4 + Lw;
    s->b = s->a + Lw;
    s->c = s->b + Lw;
    s->d = s->c + Lw;
    s->e = s->d + Lw;
    return s;
}

static void SUF(bn_scratch_free)(SUF(bn_scratch) *s) {
    if (!s) return;
    free(s->acc1);
    free(s->a);
    free(s);
}

/* Split the double v into hi + lo, both T, with hi + lo == v to ~2x T precision. */
static void SUF(bn_split)(double v, T *hi, T *lo) {
    *hi = (T)v;
    *lo = (T)(v - (double)*hi);
}

/* Batch mean, biased variance and inverse std of the unit's bc channels into
 * s->mean/var/invstd, leaving the mean per position in s->mpos. Two passes:
 * mean, then centered sums; the mean is refined by mean(d) and the variance
 * corrected by (sum d)^2 / M (the corrected two-pass algorithm), clamped at 0.
 * With dy (backward), the second pass also gives s->sdy = sum dy and
 * s->sdyd = sum dy * (x - refined mean); the refinement is ~1e-16 of the mean,
 * so shifting sum dy * d by it cancels nothing. */
static void SUF(bn_batch_stats)(const T *xu, const T *dy, dlk_idx N, dlk_idx stride,
                                dlk_idx S, dlk_idx bc, dlk_idx P, dlk_idx Lw, double eps,
                                int single, SUF(bn_scratch) *s) {
    double M = (double)N * (double)S;
    double sd1 = 0, sq1 = 0, sg1 = 0, sgd1 = 0; /* single-channel sums */
    if (single) {
        double sum;
        SUF(bn1_sum)(xu, N, stride, S, &sum);
        s->mean[0] = sum / M;
        if (dy)
            SUF(bn1_centered_grad)(xu, dy, N, stride, S, s->mean[0], &sd1, &sq1, &sg1, &sgd1);
        else
            SUF(bn1_centered)(xu, N, stride, S, s->mean[0], &sd1, &sq1);
    } else {
        SUF(bn_sum)(xu, N, stride, P, s->acc1);
        for (dlk_idx k = 0; k < bc; ++k) s->mean[k] = bn_chan_sum(s->acc1, k, S, Lw) / M;
        SUF(bn_fill_double)(s->mpos, s->mean, bc, S, Lw);
        if (dy)
            SUF(bn_centered_grad)(xu, dy, N, stride, P, s->mpos, s->acc1, s->acc2, s->acc3,
                                  s->acc4);
        else
            SUF(bn_centered)(xu, N, stride, P, s->mpos, s->acc1, s->acc2);
    }
    for (dlk_idx k = 0; k < bc; ++k) {
        double sd = single ? sd1 : bn_chan_sum(s->acc1, k, S, Lw);
        double sq = single ? sq1 : bn_chan_sum(s->acc2, k, S, Lw);
        double var = (sq - sd * sd / M) / M;
        if (!(var > 0.0)) var = var != var ? var : 0.0; /* keep NaN, clamp -0/neg */
        s->mean[k] += sd / M;
        s->invstd[k] = 1.0 / sqrt(var + eps);
        s->var[k] = var;
        if (dy) {
            s->sdy[k] = single ? sg1 : bn_chan_sum(s->acc3, k, S, Lw);
            s->sdyd[k] = (single ? sgd1 : bn_chan_sum(s->acc4, k, S, Lw)) - sd / M * s->sdy[k];
        }
    }
}

/* ---- kernels ---- */

int SUF(dlk_batch_norm_train)(const T *x, dlk_idx N, dlk_idx C, dlk_idx S,
                              const T *weight, const T *bias, T *running_mean,
                              T *running_var, double momentum, double eps, T *y,
                              int nthreads) {
    dlk_idx B = bn_block(C, S), nunits = (C + B - 1) / B, Lw_max = bn_width(B, S);
    dlk_idx stride = C * S;
    double M = (double)N * (double)S;
    /* unbiased = biased * M / (M - 1); M >= 2 is checked by the caller */
    double unbias = M > 1.0 ? M / (M - 1.0) : 1.0;
    int failed = 0;
    if (C == 0 || N == 0 || S == 0) return DLK_OK;
    if (bn_use_strips(C, S)) {
        dlk_idx W = bn_strip_width(C), nstrips = (C + W - 1) / W;
        /* static: a thread takes the same strips call after call, so a strip's x and y
         * stay in its core's L2 across calls on the same data (dynamic handed them to
         * the other core half the time: (256, 512) 11.7 -> 10.2 us on 2 threads) */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(bn_threads(nthreads, N, C, S))
#endif
        for (dlk_idx u = 0; u < nstrips; ++u) {
            dlk_idx c0 = u * W;
            dlk_idx w = DLK_MIN(W, C - c0);
            if (w == BN_STRIP) /* a literal width unrolls the channel loops: 1.2-1.5x */
                SUF(bn_strip_train)(x, y, N, C, c0, BN_STRIP, weight, bias, running_mean,
                                    running_var, momentum, eps, unbias);
            else
                SUF(bn_strip_train)(x, y, N, C, c0, w, weight, bias, running_mean,
                                    running_var, momentum, eps, unbias);
        }
        return DLK_OK;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(bn_threads(nthreads, N, C, S))
#endif
    {
        SUF(bn_scratch) *s = SUF(bn_scratch_new)(Lw_max);
        if (!s) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (dlk_idx u = 0; u < nunits; ++u) {
            if (!s) continue;
            dlk_idx c0 = u * B, bc = DLK_MIN(B, C - c0), P = bc * S;
            dlk_idx Lw = DLK_MIN(P, BN_WIDTH);
            const T *xu = x + c0 * S;
            SUF(bn_batch_stats)(xu, NULL, N, stride, S, bc, P, Lw, eps, B == 1, s);
            for (dlk_idx k = 0; k < bc; ++k) {
                dlk_idx c = c0 + k;
                if (running_mean) {
                    running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c]
                                          + momentum * s->mean[k]);
                    running_var[c] = (T)((1.0 - momentum) * (double)running_var[c]
                                         + momentum * s->var[k] * unbias);
                }
            }
            /* a, b: mean hi/lo; c: scale; d: shift */
            for (dlk_idx k = 0; k < bc; ++k) {
                dlk_idx c = c0 + k;
                double w = weight ? (double)weight[c] : 1.0;
                SUF(bn_split)(s->mean[k], &s->ca[k], &s->cb[k]);
                s->cc[k] = (T)(w * s->invstd[k]);
                s->cd[k] = bias ? bias[c] : (T)0;
            }
            if (B == 1) {
                SUF(bn1_apply)(xu, y + c0 * S, N, stride, S, s->ca[0], s->cb[0], s->cc[0],
                               s->cd[0], 0);
                continue;
            }
            SUF(bn_fill)(s->a, s->ca, bc, S, Lw);
            SUF(bn_fill)(s->b, s->cb, bc, S, Lw);
            SUF(bn_fill)(s->c, s->cc, bc, S, Lw);
            SUF(bn_fill)(s->d, s->cd, bc, S, Lw);
            SUF(bn_apply)(xu, y + c0 * S, N, stride, P, s->a, s->b, s->c, s->d);
        }
        SUF(bn_scratch_free)(s);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}

int SUF(dlk_batch_norm_eval)(const T *x, dlk_idx N, dlk_idx C, dlk_idx S,
                             const T *weight, const T *bias, const T *running_mean,
                             const T *running_var, double eps, T *y, int nthreads) {
    dlk_idx B = bn_block(C, S), nunits = (C + B - 1) / B, Lw_max = bn_width(B, S);
    dlk_idx stride = C * S;
    int failed = 0;
    if (C == 0 || N == 0 || S == 0) return DLK_OK;
#ifdef _OPENMP
#pragma omp parallel num_threads(bn_threads(nthreads, N, C, S))
#endif
    {
        SUF(bn_scratch) *s = SUF(bn_scratch_new)(Lw_max);
        if (!s) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (dlk_idx u = 0; u < nunits; ++u) {
            if (!s) continue;
            dlk_idx c0 = u * B, bc = DLK_MIN(B, C - c0), P = bc * S;
            dlk_idx Lw = DLK_MIN(P, BN_WIDTH);
            for (dlk_idx k = 0; k < bc; ++k) {
                dlk_idx c = c0 + k;
                double w = weight ? (double)weight[c] : 1.0;
                s->ca[k] = running_mean[c]; /* already a T: no low part */
                s->cb[k] = (T)0;
                s->cc[k] = (T)(w / sqrt((double)running_var[c] + eps));
                s->cd[k] = bias ? bias[c] : (T)0;
            }
            if (B == 1) {
                SUF(bn1_apply)(x + c0 * S, y + c0 * S, N, stride, S, s->ca[0], s->cb[0],
                               s->cc[0], s->cd[0], 1);
                continue;
            }
            SUF(bn_fill)(s->a, s->ca, bc, S, Lw);
            SUF(bn_fill)(s->b, s->cb, bc, S, Lw);
            SUF(bn_fill)(s->c, s->cc, bc, S, Lw);
            SUF(bn_fill)(s->d, s->cd, bc, S, Lw);
            SUF(bn_apply)(x + c0 * S, y + c0 * S, N, stride, P, s->a, s->b, s->c, s->d);
        }
        SUF(bn_scratch_free)(s);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}

int SUF(dlk_batch_norm_backward)(const T *grad_out, const T *x, dlk_idx N, dlk_idx C,
                                 dlk_idx S, const T *weight, const T *running_mean,
                                 const T *running_var, int training, double eps,
                                 T *grad_x, T *grad_weight, T *grad_bias,
                                 int nthreads) {
    dlk_idx B = bn_block(C, S), nunits = (C + B - 1) / B, Lw_max = bn_width(B, S);
    dlk_idx stride = C * S;
    double M = (double)N * (double)S;
    int failed = 0;
    if (C == 0) return DLK_OK;
    if (N == 0 || S == 0) {
        for (dlk_idx c = 0; c < C; ++c) grad_weight[c] = grad_bias[c] = (T)0;
        return DLK_OK;
    }
    if (training && bn_use_strips(C, S)) {
        dlk_idx W = bn_strip_width(C), nstrips = (C + W - 1) / W;
#ifdef _OPENMP /* static, as in the training forward: the same strips on the same core */
#pragma omp parallel for schedule(static) num_threads(bn_threads(nthreads, N, C, S))
#endif
        for (dlk_idx u = 0; u < nstrips; ++u) {
            dlk_idx c0 = u * W;
            dlk_idx w = DLK_MIN(W, C - c0);
            if (w == BN_STRIP)
                SUF(bn_strip_backward)(grad_out, x, grad_x, N, C, c0, BN_STRIP, weight, eps,
                                       grad_weight, grad_bias);
            else
                SUF(bn_strip_backward)(grad_out, x, grad_x, N, C, c0, w, weight, eps,
                                       grad_weight, grad_bias);
        }
        return DLK_OK;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(bn_threads(nthreads, N, C, S))
#endif
    {
        SUF(bn_scratch) *s = SUF(bn_scratch_new)(Lw_max);
        if (!s) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (dlk_idx u = 0; u < nunits; ++u) {
            if (!s) continue;
            dlk_idx c0 = u * B, bc = DLK_MIN(B, C - c0), P = bc * S;
            dlk_idx Lw = DLK_MIN(P, BN_WIDTH);
            const T *xu = x + c0 * S, *gu = grad_out + c0 * S;
            T *out = grad_x + c0 * S;
            if (training) {
                SUF(bn_batch_stats)(xu, gu, N, stride, S, bc, P, Lw, eps, B == 1, s);
                /* sum dy -> grad_bias, sum dy * (x - mean) * invstd -> grad_weight */
                for (dlk_idx k = 0; k < bc; ++k) {
                    dlk_idx c = c0 + k;
                    double sdy = s->sdy[k], sdyd = s->sdyd[k];
                    double is = s->invstd[k];
                    double w = weight ? (double)weight[c] : 1.0;
                    grad_bias[c] = (T)sdy;
                    grad_weight[c] = (T)(sdyd * is);
                    SUF(bn_split)(s->mean[k], &s->ca[k], &s->cb[k]);
                    s->cc[k] = (T)(w * is);
                    s->cd[k] = (T)(w * is * sdy / M);
                    s->ce[k] = (T)(w * is * is * is * sdyd / M);
                }
                if (B == 1) {
                    SUF(bn1_apply_grad)(gu, xu, out, N, stride, S, s->ca[0], s->cb[0],
                                        s->cc[0], s->cd[0], s->ce[0]);
                    continue;
                }
                SUF(bn_fill)(s->a, s->ca, bc, S, Lw);
                SUF(bn_fill)(s->b, s->cb, bc, S, Lw);
                SUF(bn_fill)(s->c, s->cc, bc, S, Lw);
                SUF(bn_fill)(s->d, s->cd, bc, S, Lw);
                SUF(bn_fill)(s->e, s->ce, bc, S, Lw);
                SUF(bn_apply_grad)(gu, xu, out, N, stride, P, s->a, s->b, s->c, s->d, s->e);
            } else {
                for (dlk_idx k = 0; k < bc; ++k) {
                    dlk_idx c = c0 + k;
                    double w = weight ? (double)weight[c] : 1.0;
                    s->invstd[k] = 1.0 / sqrt((double)running_var[c] + eps);
                    s->mean[k] = (double)running_mean[c];
                    s->cc[k] = (T)(w * s->invstd[k]);
                }
                if (B == 1) {
                    double sg, sgd;
                    SUF(bn1_eval_grad)(gu, xu, out, N, stride, S, s->mean[0], s->cc[0], &sg,
                                       &sgd);
                    grad_bias[c0] = (T)sg;
                    grad_weight[c0] = (T)(sgd * s->invstd[0]);
                    continue;
                }
                SUF(bn_fill_double)(s->mpos, s->mean, bc, S, Lw);
                SUF(bn_fill)(s->c, s->cc, bc, S, Lw);
                SUF(bn_eval_grad)(gu, xu, out, N, stride, P, Lw, s->mpos, s->c, s->acc1,
                                  s->acc2);
                for (dlk_idx k = 0; k < bc; ++k) {
                    dlk_idx c = c0 + k;
                    grad_bias[c] = (T)bn_chan_sum(s->acc1, k, S, Lw);
                    grad_weight[c] = (T)(bn_chan_sum(s->acc2, k, S, Lw) * s->invstd[k]);
                }
            }
        }
        SUF(bn_scratch_free)(s);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}
