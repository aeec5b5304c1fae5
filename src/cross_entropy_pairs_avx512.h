/* Cross-entropy loss of float32 rows of even length C <= DLK_PAIRS_MAX_D without label
 * smoothing, in the pair layout of softmax_pairs_avx512.h: the (4096, 10) case.
 *
 * Why a separate loop: the generic short-row loss (cross_entropy_short_avx512.h) gathers
 * x[target] (16 loads a group), keeps two groups in flight and goes through memory for
 * the per-row losses; with the pair layout's 20 vectors live, gcc spilled most of it
 * (profile: stack reloads and the gather's wait were the hottest instructions). Here:
 *   - x_t - max is picked from the shifted logits the exp needs anyway: the target of
 *     pair vector j's lane is column 2j + (lane / 8), so one compare and one masked
 *     move a vector; a row's two column halves are then added (one of them is 0, exact);
 *   - a class weight comes from one vpermps of the (C <= 16) weights by target;
 *   - the task's sums stay in registers; the next group's exps are issued before this
 *     group's log (measured: 8.5 us on one thread for (4096, 10), against 9.1 us for
 *     halves of 8 rows one after the other with fewer live registers).
 * The per-row arithmetic is the generic loop's ((max - x_t) + log(sum) = log(sum) -
 * (x_t - max)), the sum's terms from dlk_avx512_expneg_tab_term_ps (the loss needs only
 * their sum; softmax_exptab_avx512.h bounds its extra error). Every row is computed by
 * the same instructions (the array's last group, if partial, through a padded copy), so
 * results do not depend on blocking or thread count. */
#ifndef DLK_CROSS_ENTROPY_PAIRS_AVX512_H
#define DLK_CROSS_ENTROPY_PAIRS_AVX512_H

/* Included by cross_entropy_short_avx512.h, after dlk_ce_short_args and
 * dlk_ce_short_targets. */
#include "softmax_pairs_avx512.h"

/* The first half of a group's loss (16 rows at x, lane r = row r): the targets checked
 * (keep, bad: see dlk_ce_short_targets), the sums of exps and x_t - max. */
typedef struct {
    __m512 sum, dt;
    __m512i tc;
    __mmask16 keep, bad;
} dlk_ce_pairs_stage;

static inline __attribute__((always_inline)) void
dlk_ce_pairs_group_stats(const dlk_pairs *pr, const float *x, const int64_t *t,
                         int64_t ignore_index, dlk_ce_pairs_stage *st, const int V) {
    st->tc = dlk_ce_short_targets(t, ignore_index, 2 * V, &st->keep, &st->bad);
    __m512 p[2 * DLK_PAIRS_MAX_V];
    __m512 mr = dlk_pairs_load(pr, x, p, V);
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    __m512 sel[2];
    DLK_UNROLL
    for (int h = 0; h < 2; h++) {
        __m512 mb = dlk_pairs_bcast(mr, h);
        __m512i tb = _mm512_castps_si512(dlk_pairs_bcast(_mm512_castsi512_ps(st->tc), h));
        __m512 s = _mm512_setzero_ps();
        DLK_UNROLL
        for (int j = 0; j < V; j++) {
            __m512 d = _mm512_sub_ps(p[h * V + j], mb);
            __mmask16 hit = _mm512_cmpeq_epi32_mask(
                tb, _mm512_add_epi32(half, _mm512_set1_epi32(2 * j)));
            s = _mm512_mask_mov_ps(s, hit, d);
            p[h * V + j] = dlk_avx512_expneg_tab_term_ps(d);
        }
        sel[h] = s;
    }
    st->sum = dlk_pairs_rows_sum(dlk_pairs_vsum(p, V), dlk_pairs_vsum(p + V, V));
    st->dt = dlk_pairs_rows_sum(sel[0], sel[1]); /* x_t - max: one half is 0 */
}

/* The second half: per-row losses (1 - eps) w_t (log(sum) - (x_t - max)), 0 for ignored
 * rows; wt_out the target weights. */
static inline __attribute__((always_inline)) __m512
dlk_ce_pairs_group_loss(const dlk_ce_pairs_stage *st, __m512 wvec, int weighted, __m512 keep_w,
                        __m512 *wt_out) {
    __m512 wt = weighted ? _mm512_permutexvar_ps(st->tc, wvec) : _mm512_set1_ps(1.0f);
    __m512 nll = _mm512_sub_ps(dlk_avx512_log_ps(st->sum), st->dt);
    *wt_out = wt;
    return _mm512_maskz_mul_ps(st->keep, _mm512_mul_ps(wt, keep_w), nll);
}

/* The first half for the group at row g of a task ending at r1 (rows of 2V, a constant). */
static inline __attribute__((always_inline)) void
dlk_ce_pairs_stats_at(const dlk_ce_short_args *a, dlk_idx g, dlk_idx r1, float *xp, int64_t *tp,
                      dlk_ce_pairs_stage *st, const int V) {
    const float *xg;
    const int64_t *tg;
    dlk_ce_short_group_at(a, 2 * V, g, r1, xp, tp, &xg, &tg);
    dlk_ce_pairs_group_stats(a->pr, xg, tg, a->ignore_index, st, V);
}

/* Forward task over rows [r0, r1) (args and outputs as dlk_ce_short_forward_rows). */
static inline __attribute__((always_inline)) void
dlk_ce_pairs_forward_rows(const dlk_ce_short_args *a, dlk_idx r0, dlk_idx r1, const int V) {
    const dlk_pairs *pr = a->pr;
    const int D = 2 * V, weighted = a->weight != NULL;
    const __m512 wvec = weighted ? _mm512_maskz_loadu_ps((__mmask16)((1u << D) - 1u), a->weight)
                                 : _mm512_setzero_ps();
    const __m512 keep_w = _mm512_set1_ps((float)(1.0 - a->eps));
    float *loss_rows = a->loss_rows;
    dlk_idx task = r0 / DLK_SHORT_TASK, first_bad = -1;
    int64_t count = 0;
    __m512d acc0 = _mm512_setzero_pd(), acc1 = acc0, w0 = acc0, w1 = acc0;
    float xp[DLK_PAIRS_MAX_D * 16];
    int64_t tp[16];
    /* software-pipelined: the next group's exps are issued before this group's log and
     * loss, whose dependent chain (a division, a polynomial) would otherwise stall */
    dlk_ce_pairs_stage cur, next;
    dlk_ce_pairs_stats_at(a, r0, r1, xp, tp, &cur, V);
    next = cur;
    for (dlk_idx g = r0; g < r1; g += 16) {
        dlk_idx nr = DLK_MIN((dlk_idx)16, r1 - g);
        if (g + 16 < r1) dlk_ce_pairs_stats_at(a, g + 16, r1, xp, tp, &next, V);
        __mmask16 keep = cur.keep, bad = cur.bad;
        __m512 wt;
        __m512 l = dlk_ce_pairs_group_loss(&cur, wvec, weighted, keep_w, &wt);
        cur = next;
        if (bad && first_bad < 0) first_bad = g + __builtin_ctz(bad);
        if (loss_rows) {
            _mm512_mask_storeu_ps(loss_rows + g, (__mmask16)((1u << nr) - 1u), l);
            continue;
        }
        acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(l)));
        acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                       _mm512_extractf64x4_pd(_mm512_castps_pd(l), 1))));
        __mmask16 valid = (__mmask16)(keep & ~bad);
        dlk_ce_short_tally(valid, wt, weighted, &w0, &w1, &count);
    }
    a->first_bad[task] = first_bad;
    if (!loss_rows) dlk_ce_short_store_part(a, task, acc0, acc1, w0, w1, count, weighted);
}

#endif
