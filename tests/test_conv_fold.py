"""conv2d's folded path (dlkern.functional.conv2d._Fold): narrow planes run with
the batch laid side by side in one wide plane. Every shape that takes it (or is
kept off it) against the reference and PyTorch, forward and backward, the short
last group, non-contiguous inputs, output_mask, and 1 vs 2 threads."""
import importlib

import numpy as np
import pytest

import dlkern.functional as F
import dlkern.reference as R
from dlkern._args.conv2d import parse
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            conv2d_case, conv2d_case_id)

conv_module = importlib.import_module("dlkern.functional.conv2d")
DTYPES = [np.float32, np.float64]

# (x shape, weight shape, stride, padding, dilation, groups): all fold
FOLDED = [
    ((64, 32, 4, 4), (64, 32, 3, 3), 1, 1, 1, 1),        # the digits CNN's second conv
    ((5, 8, 4, 5), (6, 8, 3, 2), 1, 1, 1, 1),            # even kernel width, odd OW
    ((3, 8, 5, 6), (6, 8, 2, 4), 1, "same", (1, 2), 1),  # asymmetric "same", dilation
    ((3, 16, 3, 3), (12, 8, 3, 3), 1, 1, 1, 2),          # groups
    ((4, 8, 6, 6), (8, 8, 3, 3), 1, 0, 1, 1),            # no padding
    ((4, 8, 5, 5), (8, 8, 3, 3), 1, (2, 1), 1, 1),       # height padding only beyond
    ((2, 12, 3, 3), (7, 12, 3, 3), 1, (1, 0), 1, 1),     # less padding than reach
    ((6, 64, 4, 4), (10, 64, 1, 1), 1, 0, 1, 1),         # 1x1: no reach, no gap
    ((2, 40, 1, 1), (6, 40, 1, 1), 1, 0, 1, 1),          # 1x1 planes
]

# shapes kept off the fold, and why
UNFOLDED = [
    ((4, 8, 8, 8), (8, 8, 3, 3), 1, 1, 1, 1),            # output wider than FOLD_MAX_WIDTH
    ((4, 8, 8, 8), (8, 8, 3, 3), 2, 1, 1, 1),            # stride 2
    ((1, 32, 4, 4), (64, 32, 3, 3), 1, 1, 1, 1),         # one sample
    ((4, 8, 4, 4), (8, 8, 3, 3), 1, (1, 3), 1, 1),       # padding beyond the reach
    ((64, 1, 8, 8), (32, 1, 3, 3), 1, 1, 1, 1),          # direct (digits' first conv)
]


def _plan(x, w, kw, algo="auto"):
    a = parse("conv2d", x, w, None, kw["stride"], kw["padding"], kw["dilation"],
              kw["groups"], algo)
    return conv_module._fold_plan(a, conv_module._choose_algo(a) == "im2col")


def _run(gy, x, w, b, kw, **extra):
    return (F.conv2d(x, w, b, **kw),) + F.conv2d_backward(gy, x, w, **kw, **extra)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FOLDED + UNFOLDED, ids=conv2d_case_id)
def test_fold_matches_reference_and_the_unfolded_call(case, dtype, monkeypatch):
    x, w, b, gy, kw = conv2d_case(case, dtype)
    assert (_plan(x, w, kw) is not None) == (case in FOLDED)
    got = _run(gy, x, w, b, kw)
    expected = (R.conv2d(x, w, b, **kw),) + R.conv2d_backward(gy, x, w, **kw)
    monkeypatch.setattr(conv_module, "FOLD_MAX_WIDTH", 0)
    assert _plan(x, w, kw) is None
    unfolded = _run(gy, x, w, b, kw)
    for name, g, e, u in zip(("y", "grad_x", "grad_weight", "grad_bias"), got, expected,
                             unfolded):
        assert g.dtype == dtype and g.shape == e.shape and g.flags.c_contiguous
        assert_close(g, e, err_msg=name)
        assert_close(g, u, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row", [12, 30, 10000])
def test_fold_groups_of_samples_and_a_short_last_group(row, dtype, monkeypatch):
    # row 12 at period 5: groups of 2 (7 samples: 4 groups, the last short);
    # 30: groups of 6 (one full, one of 1); 10000: all 7 in one row
    monkeypatch.setattr(conv_module, "_FOLD_ROW", row)
    case = ((7, 8, 4, 4), (9, 8, 3, 3), 1, 1, 1, 1)
    x, w, b, gy, kw = conv2d_case(case, dtype)
    plan = _plan(x, w, kw)
    assert plan.groups_of == min(7, row // 5)
    got = _run(gy, x, w, b, kw)
    expected = (R.conv2d(x, w, b, **kw),) + R.conv2d_backward(gy, x, w, **kw)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert_close(g, e)


def test_fold_takes_non_contiguous_inputs():
    x, w, b, gy, kw = conv2d_case(FOLDED[1], np.float64)
    want = _run(gy, x, w, b, kw)
    got = _run(np.asfortranarray(gy), x[:, ::-1][:, ::-1], np.asfortranarray(w), b[::1],
               kw)
    for g, e in zip(got, want):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("case", FOLDED[:4], ids=conv2d_case_id)
def test_fold_output_mask_entries_equal_the_full_call(case):
    x, w, b, gy, kw = conv2d_case(case, np.float32)
    full = F.conv2d_backward(gy, x, w, **kw)
    for mask in [(False, True, True), (True, False, False), (False, False, True),
                 (True, True, False)]:
        got = F.conv2d_backward(gy, x, w, output_mask=mask, **kw)
        for want, g, f in zip(mask, got, full):
            if want:
                np.testing.assert_array_equal(g, f)
            else:
                assert g is None


@pytest.mark.parametrize("case", FOLDED[:3], ids=conv2d_case_id)
def test_fold_is_identical_for_1_and_2_threads(case):
    x, w, b, gy, kw = conv2d_case(case, np.float32)
    assert_same_bits_on_one_and_two_threads(lambda: _run(gy, x, w, b, kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FOLDED[:2] + FOLDED[3:5], ids=conv2d_case_id)
def test_fold_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, gy, kw = conv2d_case(case, dtype)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    ty.backward(torch.from_numpy(gy))
    got = _run(gy, x, w, b, kw)
    for g, e in zip(got, (ty.detach(), tx.grad, tw.grad, tb.grad)):
        assert_close(g, e.numpy(), dtype=dtype)


def test_explicit_algo_is_never_folded():
    x, w, b, gy, kw = conv2d_case(FOLDED[0], np.float32)
    for algo in ("direct", "im2col"):
        assert _plan(x, w, kw, algo) is None


def test_auto_runs_short_reductions_direct_on_small_planes_and_masks(monkeypatch):
    # the digits CNN's first layer: 1 channel, 8x8, 32 out; direct both ways, and
    # the backward's choice does not follow the mask
    calls = []
    real = conv_module._conv2d

    class Spy:
        def forward(self, *args):
            calls.append(("forward", args[-2]))
            return real.forward(*args)

        def backward(self, *args):
            calls.append(("backward", args[7], args[-1]))
            return real.backward(*args)

    x, w, b, gy, kw = conv2d_case(((16, 1, 8, 8), (32, 1, 3, 3), 1, 1, 1, 1), np.float32)
    monkeypatch.setattr(conv_module, "_conv2d", Spy())
    y = F.conv2d(x, w, b, **kw)
    full = F.conv2d_backward(gy, x, w, **kw)
    weight_only = F.conv2d_backward(gy, x, w, output_mask=(False, True, True), **kw)
    # (kind, im2col) for forward; (kind, im2col, parts) for backward
    assert calls == [("forward", False), ("backward", False, 7), ("backward", False, 6)]
    assert_close(y, R.conv2d(x, w, b, **kw))
    expected = R.conv2d_backward(gy, x, w, **kw)
    for got, exp in zip(full, expected):
        assert_close(got, exp)
    assert_close(weight_only[1], expected[1])
    assert_close(weight_only[2], expected[2])
    np.testing.assert_array_equal(weight_only[1], full[1])
    # 16x16 planes: direct throughout
    calls.clear()
    x, w, b, gy, kw = conv2d_case(((4, 1, 16, 16), (32, 1, 3, 3), 1, 1, 1, 1), np.float32)
    F.conv2d(x, w, b, **kw)
    F.conv2d_backward(gy, x, w, output_mask=(False, True, True), **kw)
    assert calls == [("forward", False), ("backward", False, 6)]
