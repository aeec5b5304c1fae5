"""conv2d im2col grad_weight (src/conv2d_wgrad_tmpl.h) on strided and stride-1
geometries: phase planes built by one memset plus the rows inside x, samples
pooled up to 16 per lane reduction when a sample's stream is short, a plain pass
without slack masks and the masked pass when its result is not finite. Against
the NumPy reference and PyTorch, 1 vs 2 threads, sample chunking, non-contiguous
x, unread and non-finite x elements."""
import importlib

import numpy as np
import pytest

import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            conv2d_case, conv2d_case_id)

DTYPES = [np.float32, np.float64]
conv_module = importlib.import_module("dlkern.functional.conv2d")

# (x shape, weight shape, stride, padding, dilation, groups); the comment gives
# the samples per reduction group in float32 (wg_geometry)
CASES = [
    ((16, 8, 32, 32), (12, 8, 3, 3), 2, 1, 1, 1),        # the bench layer, narrower: 16
    ((17, 3, 15, 13), (5, 3, 3, 3), 2, 1, 1, 1),         # odd H, W: unequal phases; 16 + 1
    ((6, 4, 11, 9), (6, 4, 3, 3), 3, 2, 1, 1),           # stride 3, padding 2: 8 (2 empty)
    ((5, 4, 10, 12), (6, 4, 3, 3), 2, 0, 1, 1),          # padding 0: 8 (3 empty)
    ((4, 4, 13, 11), (6, 2, 3, 3), 2, 1, 2, 2),          # dilation 2, groups 2
    ((1, 5, 9, 9), (7, 5, 3, 3), 2, 1, 1, 1),            # batch of one: 4 (3 empty)
    ((3, 4, 3, 3), (5, 4, 3, 3), 2, 0, 1, 1),            # a single output pixel
    ((20, 3, 8, 8), (4, 3, 3, 3), 2, 1, 1, 1),           # 16 + 4 (12 empty)
    ((10, 3, 8, 8), (4, 3, 3, 3), 2, 1, 1, 1),           # 12 (2 empty)
    ((2, 3, 9, 9), (4, 3, 2, 2), 2, 1, 1, 1),            # even kernel
    ((3, 2, 7, 8), (3, 2, 3, 3), (2, 3), (1, 2), 1, 1),  # stride 2 rows, 3 columns
    ((2, 3, 10, 9), (4, 3, 3, 3), 2, 2, 1, 1),           # padding 2: an all-zero plane row
]

# stride 1 (the ResNet path: one phase plane per channel, groups of 4 samples);
# channel counts and K = C*kH*kW leave partial 4 x 6 register tiles
STRIDE1_CASES = [
    ((5, 3, 9, 11), (6, 3, 3, 3), 1, 1, 1, 1),       # odd H, W; 4 + 1 samples
    ((3, 5, 8, 8), (7, 5, 3, 3), 1, 0, 1, 1),        # padding 0
    ((2, 4, 7, 9), (5, 4, 3, 3), 1, 2, 1, 1),        # padding 2: all-zero plane rows
    ((4, 4, 10, 10), (6, 2, 3, 3), 1, 1, 2, 2),      # dilation 2, groups 2
    ((1, 6, 12, 12), (9, 6, 3, 3), 1, 1, 1, 1),      # batch of one (3 empty slots)
    ((3, 4, 3, 3), (5, 4, 3, 3), 1, 0, 1, 1),        # a single output pixel
    ((6, 8, 16, 16), (12, 8, 3, 3), 1, 1, 1, 1),     # whole tiles, 4 + 2 samples
    ((2, 3, 6, 13), (4, 3, 2, 5), 1, (0, 2), 1, 1),  # non-square kernel and padding
]

# the register tiles below AVX-512 (src/conv2d_im2col.c: 3 output channels x 4 taps
# on AVX2, 2 x 6 on SSE) and their vectors of 8 / 4 float32: output channels and
# K = C*kH*kW not a multiple of either tile, streams of 4 and 8 lanes
NARROW_TILE_CASES = [
    ((3, 3, 9, 9), (7, 3, 3, 3), 1, 1, 1, 1),        # 7 = 2 x 3 + 1 = 3 x 2 + 1; K 27
    ((5, 5, 12, 6), (5, 5, 3, 1), 1, (1, 0), 1, 1),  # K 15: 4 x 4 - 1, 3 x 6 - 3
    ((2, 2, 8, 8), (9, 2, 2, 3), 1, 0, 1, 1),        # K 12: whole AVX2 taps, 2 x 6 SSE
    ((6, 4, 11, 10), (8, 4, 3, 3), 2, 1, 1, 1),      # strided, 8 rows: 3 x 3 - 1
    ((9, 3, 7, 7), (10, 3, 3, 3), 2, 0, 1, 1),       # strided, pooled groups, OW 3
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", NARROW_TILE_CASES, ids=conv2d_case_id)
def test_narrow_tiles_match_reference_and_threads(case, dtype):
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=28, bias=False)
    for name, got, exp in zip(("grad_x", "grad_weight", "grad_bias"),
                              F.conv2d_backward(gy, x, w, algo="im2col", **kw),
                              R.conv2d_backward(gy, x, w, **kw)):
        assert_close(got, exp, err_msg=name)
    assert_same_bits_on_one_and_two_threads(
        lambda: F.conv2d_backward(gy, x, w, algo="im2col", **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES + STRIDE1_CASES, ids=conv2d_case_id)
def test_strided_backward_matches_reference(case, dtype):
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=21, bias=False)
    for name, got, exp in zip(("grad_x", "grad_weight", "grad_bias"),
                              F.conv2d_backward(gy, x, w, algo="im2col", **kw),
                              R.conv2d_backward(gy, x, w, **kw)):
        assert got.dtype == dtype
        assert_close(got, exp, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[4], STRIDE1_CASES[0],
                                  STRIDE1_CASES[3], STRIDE1_CASES[6]], ids=conv2d_case_id)
def test_strided_grad_weight_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=22, bias=False)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, **kw).backward(torch.from_numpy(gy))
    gx, gw, _ = F.conv2d_backward(gy, x, w, algo="im2col", **kw)
    assert_close(gw, tw.grad.numpy())
    assert_close(gx, tx.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES + STRIDE1_CASES, ids=conv2d_case_id)
def test_strided_grad_weight_one_and_two_threads_bit_identical(case, dtype):
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=23, bias=False)
    assert_same_bits_on_one_and_two_threads(
        lambda: F.conv2d_backward(gy, x, w, algo="im2col", **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[1], CASES[7], CASES[2], STRIDE1_CASES[0]],
                         ids=conv2d_case_id)
def test_pooled_groups_independent_of_budget(monkeypatch, dtype, case):
    # a 1-byte budget takes one reduction group per chunk (two chunks for 17 or
    # 20 samples in groups of 16, or 5 in groups of 4); a large one takes all
    # groups at once
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=24, bias=False)
    results = []
    for limit in (1, 2**30):
        monkeypatch.setattr(conv_module, "IM2COL_MAX_BYTES", limit)
        results.append(F.conv2d_backward(gy, x, w, algo="im2col", **kw))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[1], STRIDE1_CASES[0]], ids=conv2d_case_id)
def test_strided_non_contiguous_x(case, dtype):
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=25, bias=False)
    big = np.zeros(x.shape[:2] + (2 * x.shape[2], 2 * x.shape[3]), dtype)
    big[:, :, ::2, ::2] = x
    xs = big[:, :, ::2, ::2]
    assert not xs.flags.c_contiguous
    for got, exp in zip(F.conv2d_backward(gy, xs, w, algo="im2col", **kw),
                        R.conv2d_backward(gy, x, w, **kw)):
        assert_close(got, exp)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("case", [
    ((5, 2, 12, 14), (4, 2, 3, 3), 2, 0, 1, 1),   # last row and column unread; groups of 8
    ((17, 2, 9, 12), (3, 2, 2, 2), 3, 0, 1, 1),   # stride 3: gaps; groups of 16 + 1
], ids=["stride2-pooled", "stride3-pooled"])
def test_unread_x_elements_stay_out_of_grad_weight(case, bad, dtype):
    """x elements that no output reads sit in the masked slack of the pooled
    groups' streams: they must not reach grad_weight (0 * inf is NaN)."""
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=26, bias=False)
    y = R.conv2d(x, w, **kw)
    read = R.conv2d_backward(np.ones_like(y), np.ones_like(x), np.ones_like(w), **kw)[0] != 0
    assert not read.all()
    x_bad = np.where(read, x, dtype(bad))
    clean = F.conv2d_backward(gy, x, w, algo="im2col", **kw)
    got = F.conv2d_backward(gy, x_bad, w, algo="im2col", **kw)
    for name, g, c in zip(("grad_x", "grad_weight", "grad_bias"), got, clean):
        assert np.all(np.isfinite(g)), name
        np.testing.assert_array_equal(g, c, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["x", "grad_out"])
@pytest.mark.parametrize("case", [
    ((5, 3, 9, 11), (6, 3, 3, 3), 1, 1, 1, 1),    # stride 1: the ResNet path, groups of 4
    ((17, 2, 9, 12), (5, 2, 3, 3), 2, 1, 1, 1),   # stride 2: pooled groups of 16 + 1
], ids=["stride1", "stride2-pooled"])
def test_non_finite_input_takes_the_masked_pass(case, where, dtype):
    """The plain pass multiplies slack x elements by zeros unmasked; a non-finite
    result sends the whole gradient through the masked pass, which must give
    what the reference gives: the same inf and NaN entries, the rest close."""
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=27, bias=False)
    if where == "x":
        x = x.copy()
        x[3, 1, 4, x.shape[3] - 1] = np.inf   # read by some taps only
    else:
        gy = gy.copy()
        gy[2, 4, 1, 0] = np.nan
    got = F.conv2d_backward(gy, x, w, algo="im2col", output_mask=(False, True, False), **kw)[1]
    exp = R.conv2d_backward(gy, x, w, **kw)[1]
    assert not np.isfinite(exp).all() and np.isfinite(exp).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exp))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(exp))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(exp))
    finite = np.isfinite(exp)
    assert_close(got[finite], exp[finite])


MASKS = [(True, True, True), (False, True, True), (True, False, True), (False, False, True),
         (True, True, False), (False, True, False), (True, False, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES + STRIDE1_CASES + [
    ((3, 8, 6, 5), (10, 8, 1, 1), 1, 0, 1, 1),    # plain 1x1: its own grad_weight, bias pass
    ((3, 8, 6, 5), (10, 8, 1, 1), 2, 0, 1, 1),    # strided 1x1: the shifted dots
], ids=conv2d_case_id)
def test_each_output_mask_gives_the_full_call_bits(case, dtype):
    """grad_bias is summed inside grad_weight's grad_out copy when both are asked,
    by its own pass otherwise: every mask gives the full call's bits, and the
    entries it does not ask for come back as None."""
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=28, bias=False)
    full = F.conv2d_backward(gy, x, w, algo="im2col", **kw)
    assert_close(full[2], R.conv2d_backward(gy, x, w, **kw)[2], err_msg="grad_bias")
    for mask in MASKS:
        got = F.conv2d_backward(gy, x, w, algo="im2col", output_mask=mask, **kw)
        for name, want, g, f in zip(("grad_x", "grad_weight", "grad_bias"), mask, got, full):
            if want:
                np.testing.assert_array_equal(g, f, err_msg=f"{name} {mask}")
            else:
                assert g is None, (name, mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[1], CASES[4], STRIDE1_CASES[0]], ids=conv2d_case_id)
def test_folded_grad_bias_one_and_two_threads_and_budget(monkeypatch, case, dtype):
    """The folded grad_bias: same bits on 1 and 2 threads and for any sample
    chunking (one reduction group per chunk or all at once)."""
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=29, bias=False)
    mask = (False, True, True)
    assert_same_bits_on_one_and_two_threads(
        lambda: F.conv2d_backward(gy, x, w, algo="im2col", output_mask=mask, **kw))
    results = []
    for limit in (1, 2**30):
        monkeypatch.setattr(conv_module, "IM2COL_MAX_BYTES", limit)
        results.append(F.conv2d_backward(gy, x, w, algo="im2col", output_mask=mask, **kw)[2])
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("dtype", DTYPES)
def test_folded_grad_bias_non_finite_grad_out(dtype):
    """A NaN in grad_out sends grad_weight through the masked rerun; grad_bias,
    summed once in the first pass's copy, still matches the bias pass bit for bit."""
    x, w, _, gy, kw = conv2d_case(((6, 3, 9, 11), (5, 3, 3, 3), 2, 1, 1, 1), dtype, seed=30,
                                  bias=False)
    gy = gy.copy()
    gy[2, 4, 1, 0] = np.nan
    gy[4, 1, 0, 2] = np.inf
    _, gw, gb = F.conv2d_backward(gy, x, w, algo="im2col", output_mask=(False, True, True), **kw)
    alone = F.conv2d_backward(gy, x, w, algo="im2col", output_mask=(False, False, True), **kw)[2]
    np.testing.assert_array_equal(gb, alone)
    assert np.isnan(gb[4]) and np.isposinf(gb[1]) and np.isfinite(gb[[0, 2, 3]]).all()
