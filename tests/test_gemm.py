"""dlkern's own GEMM (src/gemm.c) against NumPy's matmul in float64.

Sizes straddle every blocking edge of the packed kernel (the register tile MR x NR,
the cache blocks KC and MC and NC), so partial tiles, tails and zero padding are all
exercised; threads must never change a single bit."""
import numpy as np
import pytest

from dlkern import _gemm
from dlkern.testing import assert_close

DTYPES = [np.float32, np.float64]
TRANS = [(False, False), (False, True), (True, False), (True, True)]


def blocking(dtype):
    return _gemm.blocking(dtype)


def operands(M, N, K, dtype, ta, tb, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


def oracle(a, b, ta, tb):
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return (a64.T if ta else a64) @ (b64.T if tb else b64)


def check(M, N, K, dtype, ta, tb, nthreads=None, seed=0, tol_k=None):
    a, b = operands(M, N, K, dtype, ta, tb, seed)
    got = _gemm.gemm(a, b, trans_a=ta, trans_b=tb, nthreads=nthreads)
    assert got.dtype == dtype and got.shape == (M, N)
    # float32 error grows with K: scale the tolerance with sqrt(K) past a few hundred
    rtol = None
    if dtype == np.float32 and K > 256:
        rtol = 2e-4 * np.sqrt(K / 256)
    assert_close(got, oracle(a, b, ta, tb), dtype=dtype, rtol=rtol,
                 err_msg=f"M={M} N={N} K={K} ta={ta} tb={tb}")


def edge_sizes(dtype):
    mr, nr, kc, mc, nc = blocking(dtype)
    return mr, nr, kc, mc, nc


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (2, 3, 4), (5, 1, 7), (1, 9, 3), (17, 33, 65),
                                   (64, 64, 128), (100, 37, 19)])
def test_small_shapes(M, N, K, dtype, ta, tb):
    check(M, N, K, dtype, ta, tb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_register_tile_edges(dtype, ta, tb):
    mr, nr, kc, mc, nc = blocking(dtype)
    # K = 5: packing by scalar tails only; K = 37: vector transposes of partial
    # slivers (rows past M or N read as zero) plus a tail
    for M in (1, mr - 1, mr, mr + 1, 2 * mr + 1):
        for N in (1, nr - 1, nr, nr + 1, 2 * nr - 1):
            for K in (5, 37):
                check(M, N, K, dtype, ta, tb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_narrow_c(dtype, ta, tb):
    # C narrower than the full sliver runs 1- or 2-vector slivers: every width across
    # those edges (for 4-, 8- and 16-lane vectors), with K past one block
    mr, nr, kc, mc, nc = blocking(dtype)
    for N in (1, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 24, 31, 32, 33):
        check(2 * mr + 3, N, kc + 37, dtype, ta, tb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_narrow_c_any_thread_count(dtype):
    # a tall narrow C (linear's 10-class head) is parallel over its row blocks
    a, b = operands(2000, 10, 1500, dtype, False, True, seed=12)
    one = _gemm.gemm(a, b, False, True, nthreads=1)
    for n in (2, 3):
        assert np.array_equal(one, _gemm.gemm(a, b, False, True, nthreads=n))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_kc_edges(dtype, ta, tb):
    mr, nr, kc, mc, nc = blocking(dtype)
    for K in (kc - 1, kc, kc + 1, 2 * kc + 3):
        check(mr + 3, nr + 5, K, dtype, ta, tb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_mc_edges(dtype, ta, tb):
    mr, nr, kc, mc, nc = blocking(dtype)
    for M in (mc - 1, mc + 1):
        check(M, 2 * nr + 1, 9, dtype, ta, tb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True)])
def test_nc_edges(dtype, ta, tb):
    mr, nr, kc, mc, nc = blocking(dtype)
    for N in (nc - 1, nc + 1):
        check(mr + 1, N, 7, dtype, ta, tb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_big_odd(dtype, ta, tb):
    check(517, 389, 611, dtype, ta, tb, seed=3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_shapes(dtype):
    # conv2d im2col forward, grad_weight, grad_col; linear forward / grad_w
    check(64, 1024, 576, dtype, False, False)
    check(64, 576, 1024, dtype, False, True)
    check(576, 1024, 64, dtype, True, False)
    check(256, 1000, 512, dtype, False, True)
    check(1000, 512, 256, dtype, True, False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_alpha_beta(dtype, ta, tb):
    M, N, K = 37, 45, 29
    a, b = operands(M, N, K, dtype, ta, tb, seed=4)
    c0 = np.random.default_rng(5).standard_normal((M, N)).astype(dtype)
    for alpha, beta in [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.0), (0.0, 3.0), (2.0, 0.5)]:
        c = c0.copy()
        got = _gemm.gemm(a, b, ta, tb, alpha=alpha, beta=beta, out=c)
        assert got is c
        want = alpha * oracle(a, b, ta, tb) + beta * c0.astype(np.float64)
        assert_close(c, want, dtype=dtype, err_msg=f"alpha={alpha} beta={beta}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_beta_zero_ignores_nan(dtype, ta, tb):
    for M, N, K in [(7, 9, 5), (130, 70, 300)]:
        a, b = operands(M, N, K, dtype, ta, tb, seed=6)
        c = np.full((M, N), np.nan, dtype=dtype)
        _gemm.gemm(a, b, ta, tb, beta=0.0, out=c)
        assert np.isfinite(c).all()
        assert_close(c, oracle(a, b, ta, tb), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_one_accumulates(dtype):
    # grad_weight over samples: C += A_s @ B_s^T, as conv2d's backward does
    rng = np.random.default_rng(7)
    c = np.zeros((40, 70), dtype=dtype)
    want = np.zeros((40, 70))
    for s in range(4):
        a = rng.standard_normal((40, 300)).astype(dtype)
        b = rng.standard_normal((70, 300)).astype(dtype)
        _gemm.gemm(a, b, False, True, beta=1.0, out=c)
        want += a.astype(np.float64) @ b.astype(np.float64).T
    assert_close(c, want, dtype=dtype, rtol=5e-4 if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(0, 5, 3), (4, 0, 3), (0, 0, 0), (4, 5, 0)])
def test_empty(M, N, K, dtype):
    for ta, tb in TRANS:
        a, b = operands(M, N, K, dtype, ta, tb)
        got = _gemm.gemm(a, b, ta, tb)
        assert got.shape == (M, N)
        assert (got == 0).all()
    if M and N:  # K == 0: C = beta * C, and beta == 0 clears NaN
        a, b = operands(M, N, K, dtype, False, False)
        c = np.full((M, N), 2.0, dtype=dtype)
        _gemm.gemm(a, b, beta=0.5, out=c)
        assert (c == 1.0).all()
        c[:] = np.nan
        _gemm.gemm(a, b, beta=0.0, out=c)
        assert (c == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_leading_dimensions(dtype, ta, tb):
    # column slices of wider matrices: row strides larger than the rows
    M, N, K = 50, 41, 67
    rng = np.random.default_rng(8)
    wa = rng.standard_normal((K, M + 13) if ta else (M, K + 13)).astype(dtype)
    wb = rng.standard_normal((N, K + 7) if tb else (K, N + 7)).astype(dtype)
    a = wa[:, :M] if ta else wa[:, :K]
    b = wb[:, :K] if tb else wb[:, :N]
    wc = np.full((M, N + 9), 5.0, dtype=dtype)
    c = wc[:, 3:3 + N]
    _gemm.gemm(a, b, ta, tb, beta=0.0, out=c)
    assert_close(c, oracle(a, b, ta, tb), dtype=dtype)
    assert (wc[:, :3] == 5).all() and (wc[:, 3 + N:] == 5).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((60, 80)).astype(dtype)[::2, ::3]
    b = np.asfortranarray(rng.standard_normal((27, 33)).astype(dtype))
    assert_close(_gemm.gemm(a, b), oracle(a, b, False, False), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_one_and_two_threads_bit_identical(dtype, ta, tb):
    a, b = operands(700, 900, 1100, dtype, ta, tb, seed=10)
    one = _gemm.gemm(a, b, ta, tb, nthreads=1)
    two = _gemm.gemm(a, b, ta, tb, nthreads=2)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta", [False, True])
def test_b_in_place_same_bits_as_packed(dtype, ta):
    # C with few rows reads an untransposed B in place, taller C packs it: the rows
    # both compute must agree to the bit (K past one block, a partial last sliver)
    mr, nr, kc, mc, nc = blocking(dtype)
    M, N, K = 300, 3 * nr + 5, 2 * kc + 7
    a, b = operands(M, N, K, dtype, ta, False, seed=13)
    full = _gemm.gemm(a, b, ta, False)
    for rows in (1, mr + 3, 64):
        part = _gemm.gemm(a[:, :rows] if ta else a[:rows], b, ta, False)
        assert np.array_equal(part, full[:rows]), rows
    check(64, N, K, dtype, ta, False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_thread_count_same_result(dtype):
    for M, N, K, tb in [(300, 500, 700, True), (64, 1024, 576, True), (33, 20, 2000, True),
                        (64, 1000, 576, False), (130, 700, 400, False)]:
        a, b = operands(M, N, K, dtype, False, tb, seed=11)
        one = _gemm.gemm(a, b, False, tb, nthreads=1)
        for n in (2, 3, 4):
            assert np.array_equal(one, _gemm.gemm(a, b, False, tb, nthreads=n)), (M, N, K, n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(dtype):
    rng = np.random.default_rng(14)
    for rows, cols in [(1, 1), (3, 5), (16, 16), (17, 33), (40, 15), (64, 1030)]:
        a = rng.standard_normal((rows, cols + 3)).astype(dtype)[:, 2:2 + cols]  # strided rows
        assert np.array_equal(_gemm.transpose(a), a.T)


def test_bad_arguments():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        _gemm.gemm(a, a.astype(np.float64).T)
    with pytest.raises(TypeError, match="float32 or float64"):
        _gemm.gemm(a.astype(np.int32), a.T.astype(np.int32))
    with pytest.raises(ValueError, match="2-D"):
        _gemm.gemm(a[0], a.T)
    with pytest.raises(ValueError, match="inner dimensions"):
        _gemm.gemm(a, a)
    with pytest.raises(ValueError, match="needs out"):
        _gemm.gemm(a, a.T, beta=1.0)
    with pytest.raises(ValueError, match="shape"):
        _gemm.gemm(a, a.T, out=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="out must be"):
        _gemm.gemm(a, a.T, out=np.zeros((3, 3), np.float64))
    with pytest.raises(ValueError, match="contiguous rows"):
        _gemm.gemm(a, a.T, out=np.zeros((3, 6), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="nthreads"):
        _gemm.gemm(a, a.T, nthreads=0)
    with pytest.raises(TypeError, match="NumPy arrays"):
        _gemm.gemm([[1.0]], a)


def rows_operands(M, K, N, dtype, cw=0, groups=False, ranges=False, seed=0):
    """a (M x K) and a B for dlk_gemm_rows: rows at random offsets of a flat b (rows
    overlap, as shifted rows of a signal do), optional column groups and zero ranges."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K)).astype(dtype)
    ngroups = -(-N // cw) if groups else 0
    span = cw * ngroups if groups else N
    b = rng.standard_normal(span + 3 * K + 50).astype(dtype)
    goff = rng.integers(0, 40, ngroups) + cw * np.arange(ngroups) if groups else None
    boff = rng.integers(0, 3 * K + 10, K)
    lo = hi = None
    if ranges:
        lo = np.maximum(rng.integers(-N, N, K), 0) * (rng.random(K) < 0.3)
        hi = np.where(rng.random(K) < 0.3, rng.integers(0, N + 5, K), N + 5)
        # rows with zeros may start before b: only valid elements are read
        boff = boff - np.where(lo > 0, np.minimum(lo, boff), 0)
    return a, b, boff, goff, lo, hi


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ranges", [False, True])
def test_gemm_rows_same_bits_as_gemm(dtype, ranges):
    # dlk_gemm_rows has dlk_gemm's tile, K blocks and micro-kernel: on the materialized
    # B it must give the same bits, in place or packed, across every edge.
    mr, nr, kc, mc, nc = blocking(dtype)
    seed = 0
    for M in (1, mr - 1, mr + 1, 64, mc + mr + 3):
        for N in (1, nr - 1, nr, 3 * nr + 5, 1024):
            for K in (5, kc, kc + 37):
                seed += 1
                a, b, boff, _, lo, hi = rows_operands(M, K, N, dtype, ranges=ranges, seed=seed)
                got = _gemm.gemm_rows(a, b, boff, N, lo=lo, hi=hi)
                bm = _gemm.rows_matrix(b, boff, N, lo=lo, hi=hi)
                assert np.array_equal(got, _gemm.gemm(a, bm, nthreads=1)), (M, N, K)
                if K == kc + 37 and M == 64:
                    check_close = oracle(a, bm, False, False)
                    assert_close(got, check_close, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cw", [1, 5, 8, 16, 24, 48, 64])
def test_gemm_rows_column_groups(dtype, cw):
    # Groups a multiple of the vector width are read in place, others packed; both
    # equal dlk_gemm on the materialized B, with and without zero ranges.
    mr, nr, kc, mc, nc = blocking(dtype)
    for i, (M, N, K) in enumerate([(64, 192, 1024), (13, 3 * cw + 1, kc + 5), (9, nr, 40)]):
        for ranges in (False, True):
            a, b, boff, goff, lo, hi = rows_operands(M, K, N, dtype, cw, groups=True,
                                                     ranges=ranges, seed=100 + i)
            got = _gemm.gemm_rows(a, b, boff, N, cw, goff, lo, hi)
            bm = _gemm.rows_matrix(b, boff, N, cw, goff, lo, hi)
            assert np.array_equal(got, _gemm.gemm(a, bm, nthreads=1)), (M, N, K, ranges)
            assert_close(got, oracle(a, bm, False, False), dtype=dtype,
                         rtol=2e-4 * np.sqrt(K / 256) if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_rows_trans_a_alpha_beta_and_empty(dtype):
    a, b, boff, _, lo, hi = rows_operands(20, 70, 50, dtype, ranges=True, seed=7)
    bm = _gemm.rows_matrix(b, boff, 50, lo=lo, hi=hi)
    c0 = np.random.default_rng(8).standard_normal((20, 50)).astype(dtype)
    got = _gemm.gemm_rows(np.ascontiguousarray(a.T), b, boff, 50, lo=lo, hi=hi, trans_a=True,
                          alpha=0.5, beta=2.0, out=c0.copy())
    want = _gemm.gemm(a, bm, alpha=0.5, beta=2.0, out=c0.copy(), nthreads=1)
    assert np.array_equal(got, want)
    # K = 0: C = beta * C without reading B
    out = _gemm.gemm_rows(np.zeros((20, 0), dtype), b, np.zeros(0, np.intp), 50, beta=0.0,
                          out=np.full((20, 50), np.nan, dtype))
    assert np.array_equal(out, np.zeros((20, 50), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_rows_bias_same_bits_as_prefilled_c(dtype):
    # bias joins the first K block's store: the bits of C prefilled with the bias and
    # beta = 1, in place and packed slivers, one and several K blocks, partial tiles
    mr, nr, kc, mc, nc = blocking(dtype)
    for M, N, K, ranges in [(64, 1024, 192, True), (mr + 3, 2 * nr + 5, kc + 37, True),
                            (13, 50, 40, False)]:
        a, b, boff, _, lo, hi = rows_operands(M, K, N, dtype, ranges=ranges, seed=M + K)
        bias = np.random.default_rng(K).standard_normal(M).astype(dtype)
        got = _gemm.gemm_rows(a, b, boff, N, lo=lo, hi=hi, bias=bias)
        pre = np.repeat(bias[:, None], N, axis=1)
        want = _gemm.gemm_rows(a, b, boff, N, lo=lo, hi=hi, beta=1.0, out=pre)
        assert np.array_equal(got, want), (M, N, K)
        # with beta: alpha A B + beta C + bias
        c0 = np.random.default_rng(1).standard_normal((M, N)).astype(dtype)
        got = _gemm.gemm_rows(a, b, boff, N, lo=lo, hi=hi, alpha=0.5, beta=2.0,
                              out=c0.copy(), bias=bias)
        bm = _gemm.rows_matrix(b, boff, N, lo=lo, hi=hi)
        assert_close(got, 0.5 * oracle(a, bm, False, False) + 2.0 * c0 + bias[:, None],
                     dtype=dtype, rtol=2e-4 * np.sqrt(K / 256) if dtype == np.float32 else None)
    # K = 0: C = beta C + bias
    got = _gemm.gemm_rows(np.zeros((3, 0), dtype), np.zeros(4, dtype), np.zeros(0, np.intp), 5,
                          bias=np.arange(3, dtype=dtype))
    assert np.array_equal(got, np.repeat(np.arange(3, dtype=dtype)[:, None], 5, axis=1))
