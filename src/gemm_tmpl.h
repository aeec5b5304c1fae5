/* dlkern's GEMM, templated body (see gemm.c): included once per type with
 * T, SUF, DLK_GEMM_MR, DLK_GEMM_NV (vectors per tile row), DLK_GEMM_KC, DLK_GEMM_MC,
 * DLK_GEMM_NC defined. The structure is the GotoBLAS / BLIS one:
 *
 *   for jc (NC columns of C)                 B panel: KC x NC, shared, L3
 *     for pc (KC of K), in order             never split: fixes each sum's order
 *       pack op(B)[pc, jc] in NR-wide slivers (threads share the work)
 *       for mm (MM rows of C)                only for very tall C: bounds the buffer
 *         pack op(A)[mm, pc] in MR-tall slivers (threads share the work)
 *         parallel over fixed tiles (MC rows x DLK_GEMM_TILE_SLIVERS slivers):
 *           for jr (NR sliver)               B sliver KC x NR: L1
 *             for ir (MR sliver)             A block MC x KC: L2
 *               micro-kernel: MR x NR tile of C in registers over kc
 *
 * Slivers are zero-padded to full MR / NR, so the micro-kernel has no edges; a
 * partial tile of C goes through a small buffer. NR is DLK_GEMM_NV vectors, fewer
 * when C is narrower (a 10-column C would otherwise compute 48 columns); it depends
 * on N only, and every element's sum is the same whatever NR, so results do not
 * change with it either. */

#define FN(name) DLK_GEMM_CAT(name, SUF)
#define NRMAX (DLK_GEMM_NV * DLK_GEMM_VL)
#define MR DLK_GEMM_MR

typedef T FN(gvec) __attribute__((vector_size(DLK_GEMM_VBYTES)));

typedef DLK_GEMM_ITYPE FN(gmask) __attribute__((vector_size(DLK_GEMM_VBYTES)));

/* dst[k * dld + r] = src[r * ld + k] for k < VL, r < lanes: a VL x VL transpose in
 * registers (log2 VL rounds of two-input shuffles, each swapping the off-diagonal
 * h x h blocks of every 2h x 2h block). Only `rows` rows of src are read; the
 * others count as zero. Packing a transposed operand element by element costs
 * several cycles per element, as much as the GEMM itself when the other dimension
 * is small (conv2d's grad_weight, M = 64); this is a fraction of a cycle. */
static inline void FN(transpose_block)(const T *src, dlk_idx ld, dlk_idx rows, T *dst,
                                       dlk_idx dld, dlk_idx lanes) {
    FN(gvec) v[DLK_GEMM_VL];
    const FN(gvec) zero = {0};
#pragma GCC unroll 16
    for (int r = 0; r < DLK_GEMM_VL; r++) {
        if (r < rows)
            memcpy(&v[r], src + r * ld, sizeof v[r]);
        else
            v[r] = zero;
    }
    /* Fully unrolled, so the shuffle masks are constants. */
#pragma GCC unroll 4
    for (int round = 1; round <= DLK_GEMM_LOG2VL; round++) {
        const int h = DLK_GEMM_VL >> round;
        FN(gmask) lo, hi;
#pragma GCC unroll 16
        for (int l = 0; l < DLK_GEMM_VL; l++) {
            const int c = l - l % (2 * h), o = l % (2 * h);
            lo[l] = o < h ? c + o : DLK_GEMM_VL + c + o - h;
            hi[l] = o < h ? c + h + o : DLK_GEMM_VL + c + o;
        }
#pragma GCC unroll 8
        for (int p = 0; p < DLK_GEMM_VL / 2; p++) {
            const int i = p / h * 2 * h + p % h; /* the pairs (i, i + h) */
            const FN(gvec) a = v[i], b = v[i + h];
            v[i] = __builtin_shuffle(a, b, lo);
            v[i + h] = __builtin_shuffle(a, b, hi);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < DLK_GEMM_VL; k++)
        memcpy(dst + k * dld, &v[k], (size_t)lanes * sizeof(T));
}

/* Sliver of op(B)[pc:pc+kc, j0:j0+n] into dst[k * NR + j], zero past n; NR = nv
 * vectors. */
static void FN(pack_b)(int trans_b, const T *B, dlk_idx ldb, dlk_idx pc, dlk_idx kc,
                       dlk_idx j0, dlk_idx n, T *restrict dst, int nv) {
    const dlk_idx NR = (dlk_idx)nv * DLK_GEMM_VL;
    if (!trans_b) {
        const T *src = B + pc * ldb + j0;
        for (dlk_idx k = 0; k < kc; k++) {
            const T *row = src + k * ldb;
            T *d = dst + k * NR;
            dlk_idx j = 0;
            for (; j < n; j++) d[j] = row[j];
            for (; j < NR; j++) d[j] = 0;
        }
    } else {
        /* B stored N x K: column j of op(B) is row j of B, contiguous in k. */
        const T *src = B + j0 * ldb + pc;
        dlk_idx k0 = 0;
        for (; k0 + DLK_GEMM_VL <= kc; k0 += DLK_GEMM_VL)
            for (int jv = 0; jv < nv; jv++)
                FN(transpose_block)(src + jv * DLK_GEMM_VL * ldb + k0, ldb,
                                    DLK_MIN(DLK_GEMM_VL, DLK_MAX(0, n - jv * DLK_GEMM_VL)),
                                    dst + k0 * NR + jv * DLK_GEMM_VL, NR, DLK_GEMM_VL);
        for (dlk_idx k = k0; k < kc; k++) {
            dlk_idx j = 0;
            for (; j < n; j++) dst[k * NR + j] = src[j * ldb + k];
            for (; j < NR; j++) dst[k * NR + j] = 0;
        }
    }
}

/* Sliver of op(A)[i0:i0+m, pc:pc+kc] into dst[k * MR + i], zero past m. */
static void FN(pack_a)(int trans_a, const T *A, dlk_idx lda, dlk_idx i0, dlk_idx m, dlk_idx pc,
                       dlk_idx kc, T *restrict dst) {
    if (trans_a) {
        /* A stored K x M: the MR values of one k are contiguous. */
        const T *src = A + pc * lda + i0;
        for (dlk_idx k = 0; k < kc; k++) {
            const T *row = src + k * lda;
            T *d = dst + k * MR;
            dlk_idx i = 0;
            for (; i < m; i++) d[i] = row[i];
            for (; i < MR; i++) d[i] = 0;
        }
    } else {
        /* Row i of the sliver is contiguous in k: transpose VL x VL blocks, MR rows
         * in chunks of VL (the last chunk narrower), rows past m read as zero. */
        const T *src = A + i0 * lda + pc;
        dlk_idx k0 = 0;
        for (; k0 + DLK_GEMM_VL <= kc; k0 += DLK_GEMM_VL)
            for (dlk_idx r0 = 0; r0 < MR; r0 += DLK_GEMM_VL)
                FN(transpose_block)(src + r0 * lda + k0, lda,
                                    DLK_MIN(DLK_GEMM_VL, DLK_MAX(0, m - r0)),
                                    dst + k0 * MR + r0, MR, DLK_MIN(DLK_GEMM_VL, MR - r0));
        for (dlk_idx k = k0; k < kc; k++) {
            dlk_idx i = 0;
            for (; i < m; i++) dst[k * MR + i] = src[i * lda + k];
            for (; i < MR; i++) dst[k * MR + i] = 0;
        }
    }
}

/* C[0:m, 0:n] = alpha * (a_sliver @ b_sliver) + beta * C (+ rbias[r] on row r when
 * rbias is given, for dlk_gemm_rows); beta == 0 does not read C.
 * The MR x NR accumulator lives in MR * nv vector registers (nv is a constant at each
 * call site); each k loads nv vectors of B (row k of the sliver at b + k * ldbk:
 * NR when packed, ldb when read in place; for dlk_gemm_rows, given koff, vector v
 * of row k at b + koff[k] + voff[v]) and broadcasts MR values of A (MR * nv FMAs). */
static inline __attribute__((always_inline)) void FN(micro_kernel)(
    dlk_idx kc, const T *restrict a, const T *restrict b, T *restrict c, dlk_idx ldc,
    dlk_idx m, dlk_idx n, T alpha, T beta, const int nv, dlk_idx ldbk,
    const dlk_idx *restrict koff, const dlk_idx *restrict voff, const T *restrict rbias) {
    const int NR = nv * DLK_GEMM_VL;
    FN(gvec) acc[MR][DLK_GEMM_NV];
    const FN(gvec) zero = {0};
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = zero;
    /* The tile of C is needed only after the loop: start fetching it now (each row
     * spans NR elements: first and last cache line, and any between). */
    for (int r = 0; r < MR && r < m; r++)
        for (int j = 0; j < NR; j += 64 / (int)sizeof(T)) __builtin_prefetch(c + r * ldc + j, 1, 3);
    for (int r = 0; r < MR && r < m; r++) __builtin_prefetch(c + r * ldc + NR - 1, 1, 3);
#pragma GCC unroll 4
    for (dlk_idx k = 0; k < kc; k++) {
        FN(gvec) bv[DLK_GEMM_NV];
        const T *bk = koff ? b + koff[k] : b + k * ldbk;
        for (int v = 0; v < nv; v++)
            memcpy(&bv[v], bk + (koff ? voff[v] : v * DLK_GEMM_VL), sizeof bv[v]);
        for (int r = 0; r < MR; r++) {
            const T ar = a[k * MR + r];
            for (int v = 0; v < nv; v++) acc[r][v] += ar * bv[v];
        }
    }
    if (m == MR && n == NR) {
        for (int r = 0; r < MR; r++) {
            T *cr = c + r * ldc;
            for (int v = 0; v < nv; v++) {
                FN(gvec) cv;
                if (beta == 0) {
                    cv = alpha * acc[r][v];
                } else {
                    memcpy(&cv, cr + v * DLK_GEMM_VL, sizeof cv);
                    cv = alpha * acc[r][v] + beta * cv;
                }
                if (rbias) cv += rbias[r];
                memcpy(cr + v * DLK_GEMM_VL, &cv, sizeof cv);
            }
        }
    } else {
        /* Partial tile: spill the registers, then update only the m x n corner. */
        T buf[MR * NRMAX] __attribute__((aligned(64)));
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < nv; v++)
                memcpy(buf + r * NR + v * DLK_GEMM_VL, &acc[r][v], sizeof acc[r][v]);
        for (dlk_idx r = 0; r < m; r++) {
            T *cr = c + r * ldc;
            const T *br = buf + r * NR;
            if (beta == 0)
                for (dlk_idx j = 0; j < n; j++) cr[j] = alpha * br[j];
            else
                for (dlk_idx j = 0; j < n; j++) cr[j] = alpha * br[j] + beta * cr[j];
            if (rbias)
                for (dlk_idx j = 0; j < n; j++) cr[j] += rbias[r];
        }
    }
}

/* The micro-kernel with nv as a compile-time constant (registers, unrolling), B's
 * rows ldbk apart; rbias (dlk_gemm_rows' packed slivers) may be NULL. */
static void FN(micro_kernel_nv)(dlk_idx kc, const T *a, const T *b, dlk_idx ldbk, T *c,
                                dlk_idx ldc, dlk_idx m, dlk_idx n, T alpha, T beta,
                                int nv, const T *rbias) {
    if (nv == DLK_GEMM_NV)
        FN(micro_kernel)(kc, a, b, c, ldc, m, n, alpha, beta, DLK_GEMM_NV, ldbk, NULL, NULL,
                         rbias);
    else if (nv == 1)
        FN(micro_kernel)(kc, a, b, c, ldc, m, n, alpha, beta, 1, ldbk, NULL, NULL, rbias);
    else
        FN(micro_kernel)(kc, a, b, c, ldc, m, n, alpha, beta, 2, ldbk, NULL, NULL, rbias);
}

/* The micro-kernel reading vector v of row k of B at b + koff[k] + voff[v]
 * (dlk_gemm_rows, in place). */
static void FN(micro_kernel_rows)(dlk_idx kc, const T *a, const T *b, const dlk_idx *koff,
                                  const dlk_idx *voff, T *c, dlk_idx ldc, dlk_idx m,
                                  dlk_idx n, T alpha, T beta, int nv, const T *rbias) {
    if (nv == DLK_GEMM_NV)
        FN(micro_kernel)(kc, a, b, c, ldc, m, n, alpha, beta, DLK_GEMM_NV, 0, koff, voff,
                         rbias);
    else if (nv == 1)
        FN(micro_kernel)(kc, a, b, c, ldc, m, n, alpha, beta, 1, 0, koff, voff, rbias);
    else
        FN(micro_kernel)(kc, a, b, c, ldc, m, n, alpha, beta, 2, 0, koff, voff, rbias);
}

/* C = beta * C (0 when beta == 0, whatever C holds): K == 0 or alpha == 0. */
static void FN(scale_c)(dlk_idx M, dlk_idx N, T beta, T *C, dlk_idx ldc) {
    for (dlk_idx i = 0; i < M; i++) {
        T *cr = C + i * ldc;
        if (beta == 0)
            for (dlk_idx j = 0; j < N; j++) cr[j] = 0;
        else if (beta != 1)
            for (dlk_idx j = 0; j < N; j++) cr[j] = beta * cr[j];
    }
}

int FN(dlk_gemm)(int trans_a, int trans_b, dlk_idx M, dlk_idx N, dlk_idx K, T alpha,
                 const T *A, dlk_idx lda, const T *B, dlk_idx ldb, T beta, T *C, dlk_idx ldc,
                 int nthreads) {
    if (M <= 0 || N <= 0) return DLK_OK;
    if (K <= 0 || alpha == 0) {
        FN(scale_c)(M, N, beta, C, ldc);
        return DLK_OK;
    }
    /* Vectors per B sliver: all DLK_GEMM_NV unless C is narrower. */
    const int nv = (int)DLK_MIN(DLK_GEMM_NV, (N + DLK_GEMM_VL - 1) / DLK_GEMM_VL);
    const dlk_idx NR = (dlk_idx)nv * DLK_GEMM_VL;
    /* With few rows of C each B sliver serves few micro-kernel calls, and packing it
     * costs a sizable part of the work (16% of the time at 64 x 1024 x 192): full
     * slivers of an untransposed B are then read in place (row stride ldb); only a
     * partial last sliver is packed, for its zero padding. The FMAs are the same
     * either way. */
    const int direct_b = !trans_b && M <= DLK_GEMM_DIRECT_B_MAX_M;
    /* K in near-equal blocks of at most KC, rounded up to whole vectors (the packing
     * transposes VL x VL blocks): K = 224 runs 112 + 112, not 192 + 32 (a thin block
     * pays a whole pass over C for little work). Depends on K only. */
    const dlk_idx kblocks = (K + DLK_GEMM_KC - 1) / DLK_GEMM_KC;
    const dlk_idx kcb = DLK_MIN(
        DLK_GEMM_KC, ((K + kblocks - 1) / kblocks + DLK_GEMM_VL - 1) / DLK_GEMM_VL * DLK_GEMM_VL);
    /* Buffers sized for this problem, not for the largest blocks. */
    const dlk_idx kcmax = kcb;
    const dlk_idx ncmax = (DLK_MIN(N, DLK_GEMM_NC) + NR - 1) / NR * NR;
    const dlk_idx mmmax = (DLK_MIN(M, DLK_GEMM_MM) + MR - 1) / MR * MR;
    const size_t nb = (size_t)(kcmax * ncmax), na = (size_t)(kcmax * mmmax);
    void *raw = malloc((nb + na) * sizeof(T) + 64);
    if (!raw) return DLK_ENOMEM;
    /* 64-byte alignment: every packed sliver load is one aligned vector. */
    T *Bp = (T *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    T *Ap = Bp + nb;
    /* Fixed threshold: one thread below it, whatever nthreads says; the tiling and
     * order of operations are the same either way, so results do not change. */
    if ((double)M * N * K < DLK_GEMM_PARALLEL_WORK) nthreads = 1;
    (void)nthreads; /* unused without OpenMP */

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        for (dlk_idx jc = 0; jc < N; jc += DLK_GEMM_NC) {
            const dlk_idx nc = DLK_MIN(DLK_GEMM_NC, N - jc);
            const dlk_idx nsl = (nc + NR - 1) / NR;
            for (dlk_idx pc = 0; pc < K; pc += kcb) {
                const dlk_idx kc = DLK_MIN(kcb, K - pc);
                /* Later K blocks add to what the first one wrote. */
                const T beff = pc == 0 ? beta : (T)1;
                dlk_idx s;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
                for (s = 0; s < nsl; s++)
                    if (!direct_b || (s + 1) * NR > nc)
                        FN(pack_b)(trans_b, B, ldb, pc, kc, jc + s * NR,
                               DLK_MIN(NR, nc - s * NR), Bp + s * NR * kc, nv);
                for (dlk_idx i0 = 0; i0 < M; i0 += DLK_GEMM_MM) {
                    const dlk_idx mm = DLK_MIN(DLK_GEMM_MM, M - i0);
                    const dlk_idx msl = (mm + MR - 1) / MR;
                    /* The barrier after this loop also waits for the B slivers. */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                    for (s = 0; s < msl; s++)
                        FN(pack_a)(trans_a, A, lda, i0 + s * MR, DLK_MIN(MR, mm - s * MR), pc,
                                   kc, Ap + s * MR * kc);
                    const dlk_idx mblocks = (mm + DLK_GEMM_MC - 1) / DLK_GEMM_MC;
                    const dlk_idx nblocks =
                        (nsl + DLK_GEMM_TILE_SLIVERS - 1) / DLK_GEMM_TILE_SLIVERS;
                    dlk_idx t;
                    /* Dynamic: on a shared machine a descheduled thread does not hold
                     * the others up. Which thread runs a tile never changes its sums. */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                    for (t = 0; t < mblocks * nblocks; t++) {
                        const dlk_idx ib = t / nblocks, jb = t % nblocks;
                        const dlk_idx r0 = ib * DLK_GEMM_MC;
                        const dlk_idx r1 = DLK_MIN(mm, r0 + DLK_GEMM_MC);
                        const dlk_idx s0 = jb * DLK_GEMM_TILE_SLIVERS;
                        const dlk_idx s1 = DLK_MIN(nsl, s0 + DLK_GEMM_TILE_SLIVERS);
                        for (dlk_idx js = s0; js < s1; js++) {
                            const dlk_idx n = DLK_MIN(NR, nc - js * NR);
                            const int in_place = direct_b && n == NR;
                            const T *bs = in_place ? B + pc * ldb + jc + js * NR
                                                   : Bp + js * NR * kc;
                            const dlk_idx ldbk = in_place ? ldb : NR;
                            for (dlk_idx r = r0; r < r1; r += MR) {
                                T *c = C + (i0 + r) * ldc + jc + js * NR;
                                FN(micro_kernel_nv)(kc, Ap + r * kc, bs, ldbk, c, ldc,
                                                    DLK_MIN(MR, r1 - r), n, alpha, beff, nv,
                                                    NULL);
                            }
                        }
                    }
                }
            }
        }
    }
    free(raw);
    return DLK_OK;
}

/* K in near-equal blocks of at most KC, whole vectors: dlk_gemm's rule (see there). */
static dlk_idx FN(gemm_kc)(dlk_idx K) {
    const dlk_idx kblocks = (K + DLK_GEMM_KC - 1) / DLK_GEMM_KC;
    return DLK_MIN(DLK_GEMM_KC, ((K + kblocks - 1) / kblocks + DLK_GEMM_VL - 1) /
                                    DLK_GEMM_VL * DLK_GEMM_VL);
}

/* Where column j of dlk_gemm_rows' B starts (add boff[k]): columns come in groups of
 * cw, group g at goff[g]; contiguous when goff is NULL. */
static inline dlk_idx FN(rows_col)(dlk_idx j, dlk_idx cw, const dlk_idx *goff) {
    return goff ? goff[j / cw] + j % cw : j;
}

/* Sliver of B(pc:pc+kc, j0:j0+NR) of dlk_gemm_rows into dst[k * NR + j], zero outside
 * each row's valid range (and past N); a run inside one column group is one copy. */
static void FN(pack_b_rows)(const T *B, const dlk_idx *boff, dlk_idx cw, const dlk_idx *goff,
                            const dlk_idx *lo, const dlk_idx *hi, dlk_idx N, dlk_idx pc,
                            dlk_idx kc, dlk_idx j0, dlk_idx NR, T *restrict dst) {
    for (dlk_idx k = pc; k < pc + kc; k++) {
        T *d = dst + (k - pc) * NR;
        const dlk_idx rlo = lo ? lo[k] : 0, rhi = hi ? DLK_MIN(hi[k], N) : N;
        const dlk_idx a = DLK_MIN(DLK_MAX(rlo - j0, 0), NR);
        const dlk_idx e = DLK_MAX(a, DLK_MIN(rhi - j0, NR));
        for (dlk_idx j = 0; j < a; j++) d[j] = 0;
        for (dlk_idx j = a; j < e;) {
            const dlk_idx col = j0 + j;
            const dlk_idx len = goff ? DLK_MIN(e - j, cw - col % cw) : e - j;
            memcpy(d + j, B + (boff[k] + FN(rows_col)(col, cw, goff)), (size_t)len * sizeof(T));
            j += len;
        }
        for (dlk_idx j = e; j < NR; j++) d[j] = 0;
    }
}

int FN(dlk_gemm_rows)(int trans_a, dlk_idx M, dlk_idx N, dlk_idx K, T alpha, const T *A,
                      dlk_idx lda, const T *B, const dlk_idx *boff, dlk_idx cw,
                      const dlk_idx *goff, const dlk_idx *lo, const dlk_idx *hi, T beta,
                      const T *bias, T *C, dlk_idx ldc) {
    if (M <= 0 || N <= 0) return DLK_OK;
    if (K <= 0 || alpha == 0) {
        FN(scale_c)(M, N, beta, C, ldc);
        for (dlk_idx i = 0; bias && i < M; i++)
            for (dlk_idx j = 0; j < N; j++) C[i * ldc + j] += bias[i];
        return DLK_OK;
    }
    /* dlk_gemm's tile, K blocks and micro-kernel: the same sums in the same order. */
    const int nv = (int)DLK_MIN(DLK_GEMM_NV, (N + DLK_GEMM_VL - 1) / DLK_GEMM_VL);
    const dlk_idx NR = (dlk_idx)nv * DLK_GEMM_VL;
    const dlk_idx kblocks = (K + DLK_GEMM_KC - 1) / DLK_GEMM_KC;
    const dlk_idx kcb = DLK_MIN(
        DLK_GEMM_KC, ((K + kblocks - 1) / kblocks + DLK_GEMM_VL - 1) / DLK_GEMM_VL * DLK_GEMM_VL);
    const dlk_idx mmmax = (DLK_MIN(M, DLK_GEMM_MM) + MR - 1) / MR * MR;
    const size_t nb = (size_t)(kcb * NR), na = (size_t)(kcb * mmmax);
    void *raw = malloc((nb + na) * sizeof(T) + 64);
    if (!raw) return DLK_ENOMEM;
    T *Bp = (T *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    T *Ap = Bp + nb;
    const dlk_idx nsl = (N + NR - 1) / NR;
    /* A sliver is read in place when its vectors are whole runs of B: every vector
     * inside one column group, and the sliver inside every row's valid range. */
    const int groups_ok = !goff || (cw > 0 && cw % DLK_GEMM_VL == 0);
    for (dlk_idx pc = 0; pc < K; pc += kcb) {
        const dlk_idx kc = DLK_MIN(kcb, K - pc);
        const T beff = pc == 0 ? beta : (T)1;
        dlk_idx maxlo = 0, minhi = N;
        for (dlk_idx k = pc; lo && k < pc + kc; k++) maxlo = DLK_MAX(maxlo, lo[k]);
        for (dlk_idx k = pc; hi && k < pc + kc; k++) minhi = DLK_MIN(minhi, hi[k]);
        for (dlk_idx i0 = 0; i0 < M; i0 += DLK_GEMM_MM) {
            const dlk_idx mm = DLK_MIN(DLK_GEMM_MM, M - i0);
            for (dlk_idx s = 0; s * MR < mm; s++)
                FN(pack_a)(trans_a, A, lda, i0 + s * MR, DLK_MIN(MR, mm - s * MR), pc, kc,
                           Ap + s * MR * kc);
            for (dlk_idx r0 = 0; r0 < mm; r0 += DLK_GEMM_MC) {
                const dlk_idx r1 = DLK_MIN(mm, r0 + DLK_GEMM_MC);
                for (dlk_idx js = 0; js < nsl; js++) {
                    const dlk_idx j0 = js * NR, n = DLK_MIN(NR, N - j0);
                    const int in_place = groups_ok && j0 >= maxlo && j0 + NR <= minhi;
                    dlk_idx voff[DLK_GEMM_NV] = {0}; /* used in place only: columns < N */
                    for (int v = 0; v < nv && j0 + v * DLK_GEMM_VL < N; v++)
                        voff[v] = FN(rows_col)(j0 + v * DLK_GEMM_VL, cw, goff);
                    if (!in_place)
                        FN(pack_b_rows)(B, boff, cw, goff, lo, hi, N, pc, kc, j0, NR, Bp);
                    /* Rows of B in place can be more streams than the hardware
                     * prefetchers follow (192 for causal_conv1d's forward): fetch the
                     * next sliver into L2 while this one is computed. */
                    const dlk_idx jn = j0 + NR;
                    if (r0 == 0 && groups_ok && jn >= maxlo && jn + NR <= minhi) {
                        dlk_idx von[DLK_GEMM_NV];
                        for (int v = 0; v < nv; v++)
                            von[v] = FN(rows_col)(jn + v * DLK_GEMM_VL, cw, goff);
                        for (dlk_idx k = pc; k < pc + kc; k++)
                            for (int v = 0; v < nv; v++) {
                                const T *vec = B + (boff[k] + von[v]);
                                __builtin_prefetch(vec, 0, 2);
                                __builtin_prefetch(vec + DLK_GEMM_VL - 1, 0, 2);
                            }
                    }
                    for (dlk_idx r = r0; r < r1; r += MR) {
                        T *c = C + (i0 + r) * ldc + j0;
                        const dlk_idx m = DLK_MIN(MR, r1 - r);
                        /* The bias joins the first K block's store: no pass over C. */
                        const T *rb = pc == 0 && bias ? bias + i0 + r : NULL;
                        if (in_place)
                            FN(micro_kernel_rows)(kc, Ap + r * kc, B, boff + pc, voff, c, ldc,
                                                  m, n, alpha, beff, nv, rb);
                        else
                            FN(micro_kernel_nv)(kc, Ap + r * kc, Bp, NR,
                                                c, ldc, m, n, alpha, beff, nv, rb);
                    }
                }
            }
        }
    }
    free(raw);
    return DLK_OK;
}

void FN(dlk_transpose)(dlk_idx rows, dlk_idx cols, const T *src, dlk_idx lds, T *dst,
                       dlk_idx ldd) {
    dlk_idx c0 = 0;
    for (; c0 + DLK_GEMM_VL <= cols; c0 += DLK_GEMM_VL)
        for (dlk_idx r0 = 0; r0 < rows; r0 += DLK_GEMM_VL) {
            const dlk_idx nr = DLK_MIN(DLK_GEMM_VL, rows - r0);
            /* Full blocks with a constant width: whole-vector stores, not memcpy calls. */
            if (nr == DLK_GEMM_VL)
                FN(transpose_block)(src + r0 * lds + c0, lds, DLK_GEMM_VL, dst + c0 * ldd + r0,
                                    ldd, DLK_GEMM_VL);
            else
                FN(transpose_block)(src + r0 * lds + c0, lds, nr, dst + c0 * ldd + r0, ldd, nr);
        }
    for (; c0 < cols; c0++)
        for (dlk_idx r = 0; r < rows; r++) dst[c0 * ldd + r] = src[r * lds + c0];
}

void FN(dlk_gemm_blocking)(dlk_idx sizes[5]) {
    sizes[0] = MR;
    sizes[1] = NRMAX;
    sizes[2] = DLK_GEMM_KC;
    sizes[3] = DLK_GEMM_MC;
    sizes[4] = DLK_GEMM_NC;
}

#undef FN
#undef NRMAX
#undef MR
