/* Template body shared by max_pool2d_impl.h and avg_pool2d_impl.h (T the element
 * type, TI the same-width integer, SUF the name suffix; included once per type in
 * each of max_pool2d.c and avg_pool2d.c): explicit vectors of the ISA's register
 * width (GCC vector extensions), the even/odd column split and merge of the
 * general stride-2 paths, and what the two 3x3/2 padding-1 even-plane paths have
 * in common (geometry test, tap columns read from x in place, interleaving store,
 * plane driver). */

/* The vector is one register of the ISA being compiled for: 64 bytes with
 * AVX-512, 32 with AVX/AVX2, 16 (SSE2) otherwise. A generic vector wider than the
 * registers is split by GCC, and its two-source shuffles become long sequences of
 * narrower shuffles and lane inserts (or scalar code): a portable build's v3 and
 * baseline kernels ran 10-20x slower than the AVX-512 ones with 64-byte vectors.
 * Every loop steps by POOL_VL and every shuffle mask is built from it, so the
 * width changes no result: each lane computes the same operations in the same
 * order. */
#ifndef POOL_BYTES
#define POOL_BYTES DLK_VEC_BYTES /* dlk_common.h */
#endif

typedef T DLK_CAT(pool_vec, SUF) __attribute__((vector_size(POOL_BYTES)));
typedef TI DLK_CAT(pool_ivec, SUF) __attribute__((vector_size(POOL_BYTES)));
#ifndef POOL_VL
#define POOL_VL ((dlk_idx)(POOL_BYTES / sizeof(T)))
#endif

/* VL lanes of int64 (two vectors for float): flat indices. */
typedef int64_t DLK_CAT(pool_wide, SUF) __attribute__((vector_size(POOL_VL * sizeof(int64_t))));

/* Saved indices are decoded POOL_DL lanes of int64 at a time, one register (a
 * float vector takes two): an int64 vector wider than the registers is decoded
 * lane by lane through the stack. The same type holds the validity masks, and-ed
 * over a plane and tested once at its end (pool_all). */
#ifndef POOL_DL
#define POOL_DL (POOL_BYTES / 8)
#endif
typedef int64_t DLK_CAT(pool_dvec, SUF) __attribute__((vector_size(POOL_DL * sizeof(int64_t))));

static inline int DLK_CAT(pool_all, SUF)(const DLK_CAT(pool_dvec, SUF) *m)
{
    int64_t r = -1;
    for (int k = 0; k < POOL_DL; k++)
        r &= (*m)[k];
    return r != 0;
}

static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(pool_load, SUF)(const T *p)
{
    DLK_CAT(pool_vec, SUF) v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Tap b of the vector of windows starting at column j of row r. mode: 0 = taps
 * r[j + b] (stride 1), 1 = split halves, 2 = stride 2 (de-interleaved in
 * registers from two loads). */
static DLK_INLINE DLK_CAT(pool_vec, SUF) DLK_CAT(pool_tap, SUF)(const T *restrict r, dlk_idx j,
                                                                dlk_idx b, int mode,
                                                                dlk_idx half)
{
    if (mode == 0)
        return DLK_CAT(pool_load, SUF)(r + j + b);
    if (mode == 1)
        return DLK_CAT(pool_load, SUF)(r + ((b & 1) ? half : 0) + j + b / 2);
    DLK_CAT(pool_ivec, SUF) sel;
    for (dlk_idx k = 0; k < POOL_VL; k++)
        sel[k] = (TI)(2 * k + (b & 1));
    return __builtin_shuffle(DLK_CAT(pool_load, SUF)(r + 2 * j + (b & ~(dlk_idx)1)),
                             DLK_CAT(pool_load, SUF)(r + 2 * j + (b & ~(dlk_idx)1) + POOL_VL),
                             sel);
}

/* De-interleave the n values of x: de[u] = x[2u], dodd[u] = x[2u + 1]. Whole pairs
 * of vectors go through one two-source shuffle each (vpermt2ps/pd with AVX-512,
 * narrower shuffles without); GCC's own vectorization of the strided loop peels a
 * scalar, branchy remainder. */
static DLK_INLINE void DLK_CAT(dlk_pool_split, SUF)(const T *restrict x, dlk_idx n,
                                                    T *restrict de, T *restrict dodd)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    DLK_CAT(pool_ivec, SUF) me, mo;
    for (dlk_idx k = 0; k < POOL_VL; k++) {
        me[k] = (TI)(2 * k);
        mo[k] = (TI)(2 * k + 1);
    }
    dlk_idx u = 0;
    for (; 2 * u + 2 * POOL_VL <= n; u += POOL_VL) {
        const vec a = DLK_CAT(pool_load, SUF)(x + 2 * u);
        const vec b = DLK_CAT(pool_load, SUF)(x + 2 * u + POOL_VL);
        const vec e = __builtin_shuffle(a, b, me), o = __builtin_shuffle(a, b, mo);
        memcpy(de + u, &e, sizeof e);
        memcpy(dodd + u, &o, sizeof o);
    }
    for (; 2 * u + 1 < n; u++) {
        de[u] = x[2 * u];
        dodd[u] = x[2 * u + 1];
    }
    if (2 * u < n)
        de[u] = x[2 * u];
}

/* Even and odd columns (e, o) back into 2 VL consecutive cells of dst. */
static DLK_INLINE void DLK_CAT(pool_store2, SUF)(T *restrict dst, DLK_CAT(pool_vec, SUF) e,
                                                 DLK_CAT(pool_vec, SUF) o)
{
    DLK_CAT(pool_ivec, SUF) lo, hi;
    for (dlk_idx k = 0; k < POOL_VL; k++) {
        lo[k] = (TI)(k / 2 + (k & 1) * POOL_VL);
        hi[k] = lo[k] + (TI)(POOL_VL / 2);
    }
    const DLK_CAT(pool_vec, SUF) a = __builtin_shuffle(e, o, lo), b = __builtin_shuffle(e, o, hi);
    memcpy(dst, &a, sizeof a);
    memcpy(dst + POOL_VL, &b, sizeof b);
}

/* Inverse of dlk_pool_split: x[2u] = de[u], x[2u + 1] = dodd[u] for the n values
 * of x (whole vectors interleaved by pool_store2, scalar tail). */
static DLK_INLINE void DLK_CAT(dlk_pool_merge, SUF)(const T *restrict de,
                                                    const T *restrict dodd, dlk_idx n,
                                                    T *restrict x)
{
    dlk_idx u = 0;
    for (; 2 * u + 2 * POOL_VL <= n; u += POOL_VL)
        DLK_CAT(pool_store2, SUF)(x + 2 * u, DLK_CAT(pool_load, SUF)(de + u),
                                  DLK_CAT(pool_load, SUF)(dodd + u));
    for (; 2 * u + 1 < n; u++) {
        x[2 * u] = de[u];
        x[2 * u + 1] = dodd[u];
    }
    if (2 * u < n)
        x[2 * u] = de[u];
}

/* Copy plane xp into the scratch plane (row stride g->len, input row ih at row ih
 * + ph), whose padding cells were set once and are never written; split rows for
 * DLK_POOL_SPLIT. Read straight from x: a staging row stalls on store forwarding. */
static void DLK_CAT(dlk_pool_prep, SUF)(const dlk_pool2d_shape *s, const dlk_pool_scratch *g,
                                        int mode, const T *restrict xp, T *restrict plane)
{
    const dlk_idx W = s->w, pw = s->pw, len = g->len, half = g->half;
    for (dlk_idx ih = 0; ih < s->h; ih++) {
        T *restrict r = plane + (ih + s->ph) * len;
        if (mode == DLK_POOL_SPLIT)
            DLK_POOL_SPLIT_ROW(SUF, xp + ih * W, W, pw, r, r + half);
        else
            memcpy(r + pw, xp + ih * W, (size_t)W * sizeof(T));
    }
}

/* ---- 3x3 windows, stride 2, padding 1, dilation 1 on planes of even H and W, W a
 * whole number of double vectors (W % (2 VL) == 0), without ceil_mode's extra
 * window (OH = H / 2, OW = W / 2): ResNet's stem pooling. The only padding is row
 * -1 and column -1, so each block of VL windows reads its input rows straight from
 * x, and the backward writes each cell of grad_x once from registers. */
static int DLK_CAT(pool_k3s2_ok, SUF)(const dlk_pool2d_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->sh == 2 && s->sw == 2 && s->ph == 1 &&
           s->pw == 1 && s->dh == 1 && s->dw == 1 && s->h % 2 == 0 && s->h > 0 &&
           s->w % (2 * POOL_VL) == 0 && s->w > 0 && s->oh == s->h / 2 &&
           s->ow == s->w / 2 && (double)s->w < 1e9;  /* max: in-window offsets in TI */
}

/* Tap columns of the windows j0 .. j0 + VL - 1 in row xr: t0 = column 2j - 1, t1 =
 * 2j, t2 = 2j + 1. Two loads and two shuffles give the even and odd columns;
 * column 2j - 1 is the odd vector shifted by one lane, the lane shifted in being
 * x[2 j0 - 1], or pad (the padding value) at the left edge. */
static DLK_INLINE void DLK_CAT(pool_k3s2_taps, SUF)(const T *restrict xr, dlk_idx j0, T pad,
                                                    DLK_CAT(pool_vec, SUF) *t0,
                                                    DLK_CAT(pool_vec, SUF) *t1,
                                                    DLK_CAT(pool_vec, SUF) *t2)
{
    typedef DLK_CAT(pool_vec, SUF) vec;
    DLK_CAT(pool_ivec, SUF) ev, od, sh;
    for (dlk_idx k = 0; k < POOL_VL; k++) {
        ev[k] = (TI)(2 * k);
        od[k] = (TI)(2 * k + 1);
        sh[k] = (TI)(k == 0 ? POOL_VL : k - 1);  /* (odd, left) -> left[0], odd[0 .. VL-2] */
    }
    const vec a = DLK_CAT(pool_load, SUF)(xr + 2 * j0);
    const vec b = DLK_CAT(pool_load, SUF)(xr + 2 * j0 + POOL_VL);
    *t1 = __builtin_shuffle(a, b, ev);
    *t2 = __builtin_shuffle(a, b, od);
    const vec left = (vec){0} + (j0 ? xr[2 * j0 - 1] : pad);
    *t0 = __builtin_shuffle(*t2, left, sh);
}

/* One call's arguments, for the plane functions of both families. */
typedef struct {
    const dlk_pool2d_shape *s;
    const T *x, *grad_out;
    T *out, *grad_x;
    int64_t *ind;           /* max forward: argmax indices (nullable) */
    const int64_t *saved;   /* max backward: the forward's indices (nullable) */
    int cip;                /* avg: count_include_pad */
    dlk_idx ovr;            /* avg: divisor_override, <= 0 for none */
} DLK_CAT(pool_k3s2_job, SUF);

/* Runs plane(job, p, rows) for every plane p, in parallel over planes (one thread
 * a plane, a fixed order inside it, so any thread count gives the same bits), rows
 * being nrows zeroed values of per-thread scratch. DLK_ENOMEM if it cannot be
 * allocated. */
static int DLK_CAT(pool_k3s2_planes, SUF)(
    const DLK_CAT(pool_k3s2_job, SUF) *job, size_t nrows,
    void (*plane)(const DLK_CAT(pool_k3s2_job, SUF) *, dlk_idx, T *), int nthreads)
{
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
#endif
    {
        T *rows = calloc(nrows ? nrows : 1, sizeof(T));
        failed = !rows;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (dlk_idx p = 0; p < job->s->planes; p++)
            if (rows)
                plane(job, p, rows);
        free(rows);
    }
    return failed ? DLK_ENOMEM : DLK_OK;
}
