"""output_mask of the backward functions (conv2d_backward; causal_conv1d_backward
where it has landed): the entries asked for equal those of the full call, bit for
bit, on the C kernels and on the reference; the others are None; the computed ones
match PyTorch's aten convolution_backward with the same mask; bad masks are rejected
with the same error on both floors."""
import inspect
import itertools

import numpy as np
import pytest

import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            conv2d_case, conv2d_case_id)

DTYPES = [np.float32, np.float64]
MASKS = list(itertools.product((False, True), repeat=3))

# (x shape, weight shape, stride, padding, dilation, groups, algo): each C path
# (direct and im2col, with and without groups, strided, 1x1) and the digits
# CNN's first layer (1 input channel, batch 64), whose input gradient nobody needs.
CONV_CASES = [
    ((64, 1, 8, 8), (32, 1, 3, 3), 1, 1, 1, 1, "auto"),
    ((2, 3, 7, 9), (4, 3, 2, 5), 1, 0, 1, 1, "direct"),
    ((2, 3, 7, 9), (4, 3, 2, 5), 1, 0, 1, 1, "im2col"),
    ((2, 6, 7, 7), (9, 2, 3, 2), (2, 1), 1, 1, 3, "auto"),
    ((2, 4, 8, 8), (8, 1, 3, 3), 2, 1, 1, 4, "auto"),
    ((2, 16, 6, 11), (16, 16, 3, 3), 1, 1, (1, 2), 1, "im2col"),
    ((2, 8, 6, 5), (4, 8, 1, 1), 1, 0, 1, 1, "auto"),
]


def _conv_data(case, dtype):
    x, w, _, gy, kw = conv2d_case(case[:6], dtype, bias=False)
    return gy, x, w, dict(kw, algo=case[6])


def _check_masked(full, masked, mask):
    assert len(masked) == 3
    for want, f, m in zip(mask, full, masked):
        if want:
            np.testing.assert_array_equal(m, f)
            assert m.dtype == f.dtype
        else:
            assert m is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=conv2d_case_id)
def test_conv2d_backward_masked_entries_equal_the_full_call(case, dtype):
    gy, x, w, kw = _conv_data(case, dtype)
    full_c = F.conv2d_backward(gy, x, w, **kw)
    full_ref = R.conv2d_backward(gy, x, w, **kw)
    for mask in MASKS:
        _check_masked(full_c, F.conv2d_backward(gy, x, w, output_mask=mask, **kw), mask)
        _check_masked(full_ref, R.conv2d_backward(gy, x, w, output_mask=mask, **kw), mask)
    for got, exp in zip(full_c, full_ref):
        assert_close(got, exp)


@pytest.mark.parametrize("case", CONV_CASES[:2], ids=conv2d_case_id)
def test_conv2d_backward_mask_is_identical_for_1_and_2_threads(case):
    gy, x, w, kw = _conv_data(case, np.float32)
    assert_same_bits_on_one_and_two_threads(
        lambda: F.conv2d_backward(gy, x, w, output_mask=(False, True, True), **kw))


def test_conv2d_backward_mask_takes_numpy_bools_and_non_contiguous_inputs():
    gy, x, w, kw = _conv_data(CONV_CASES[3], np.float64)
    xf, gyf = np.asfortranarray(x), np.asfortranarray(gy)
    mask = np.array([False, True, False])
    _check_masked(F.conv2d_backward(gy, x, w, **kw),
                  F.conv2d_backward(gyf, xf, w, output_mask=mask, **kw), mask)
    _check_masked(R.conv2d_backward(gyf, xf, w, **kw),
                  R.conv2d_backward(gyf, xf, w, output_mask=list(mask), **kw), mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=conv2d_case_id)
def test_conv2d_backward_mask_matches_torch_convolution_backward(case, dtype):
    torch = pytest.importorskip("torch")
    gy, x, w, kw = _conv_data(case, dtype)
    s, p, d = (kw["stride"], kw["padding"], kw["dilation"])
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    for mask in MASKS:
        expected = torch.ops.aten.convolution_backward(
            torch.from_numpy(gy), torch.from_numpy(x), torch.from_numpy(w), [w.shape[0]],
            pair(s), pair(p), pair(d), False, [0, 0], kw["groups"], list(mask))
        for backend in (F, R):
            got = backend.conv2d_backward(gy, x, w, output_mask=mask, **kw)
            for want, g, e in zip(mask, got, expected):
                if want:
                    assert_close(g, e.numpy(), dtype=dtype)
                else:
                    assert g is None


BAD_MASKS = [
    ((True, True), ValueError, "output_mask must have 3 entries"),
    ([True] * 4, ValueError, "output_mask must have 3 entries"),
    (True, TypeError, "output_mask must be a sequence of 3 bools"),
    (None, TypeError, "output_mask must be a sequence of 3 bools"),
    ("TTT", TypeError, "output_mask must be a sequence of 3 bools"),
    ((1, 1, 1), TypeError, "output_mask must be a sequence of 3 bools"),
    ((True, None, True), TypeError, "output_mask must be a sequence of 3 bools"),
]


@pytest.mark.parametrize("backend", [F, R], ids=["c", "reference"])
@pytest.mark.parametrize("mask,error,message", BAD_MASKS)
def test_conv2d_backward_rejects_bad_masks(backend, mask, error, message):
    gy, x, w, kw = _conv_data(CONV_CASES[1], np.float32)
    with pytest.raises(error, match=f"conv2d_backward: {message}"):
        backend.conv2d_backward(gy, x, w, output_mask=mask, **kw)


def test_conv2d_backward_output_mask_is_keyword_only_on_both_floors():
    for backend in (F, R):
        param = inspect.signature(backend.conv2d_backward).parameters["output_mask"]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY
        assert param.default == (True, True, True)
