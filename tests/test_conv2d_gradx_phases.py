"""Strided im2col grad_x: the merged path (all phases of a (sample, group) in one
task, one grad_out window) against the per-phase fallback it takes when its
working set exceeds IM2COL_MAX_BYTES, the reference, and 1 vs 2 threads."""
import importlib

import numpy as np
import pytest

import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            conv2d_case, conv2d_case_id)

DTYPES = [np.float32, np.float64]
conv_module = importlib.import_module("dlkern.functional.conv2d")

# (x shape, weight shape, stride, padding, dilation, groups)
CASES = [
    ((2, 4, 32, 32), (10, 4, 3, 3), 2, 1, 1, 1),        # every phase in place (Wr 16)
    ((2, 4, 15, 15), (10, 4, 3, 3), 2, 1, 1, 1),        # every phase packed
    ((2, 4, 32, 33), (10, 4, 3, 3), 2, 1, 1, 1),        # column phase 0 packs (17), 1 in place
    ((3, 4, 17, 17), (6, 4, 3, 3), 2, 1, 1, 1),         # float64: Wr 9 packs, Wr 8 in place
    ((2, 3, 9, 11), (5, 3, 2, 2), 3, 0, 1, 1),          # stride > kernel: phases without taps
    ((1, 2, 1, 5), (4, 2, 1, 3), 2, (0, 1), 1, 1),      # one row: row phase 1 is empty
    ((2, 4, 13, 14), (6, 2, 5, 4), (2, 3), (3, 1), (3, 2), 2),  # dilation, groups
    ((1, 3, 8, 8), (4, 3, 3, 3), 2, 4, 1, 1),           # padding beyond the kernel
    ((2, 3, 12, 10), (7, 3, 4, 2), (4, 2), (1, 0), 1, 1),  # one row tap per phase
    ((2, 3, 6, 6), (260, 3, 1, 1), 2, 1, 1, 1),         # 2 reduction blocks, 1x1 taps
    ((1, 2, 7, 40), (3, 2, 3, 3), (1, 3), (1, 2), 1, 1),  # stride 3 columns: scalar interleave
    ((1, 20, 9, 10), (5, 20, 3, 3), 2, 1, 1, 1),        # batch 1: channel blocks 8, 8, 4
    ((3, 12, 8, 16), (4, 6, 3, 3), 2, 1, 1, 2),         # 6 pairs, groups of 6: one block each
]


def _grad_x(case, dtype):
    x, w, _, gy, kw = conv2d_case(case, dtype, seed=21, bias=False)
    expected = R.conv2d_backward(gy, x, w, **kw)[0]
    got = F.conv2d_backward(gy, x, w, algo="im2col", output_mask=(True, False, False), **kw)
    return got[0], expected, (gy, x, w, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_merged_and_per_phase_grad_x_same_bits_and_match_reference(monkeypatch, case, dtype):
    merged, expected, _ = _grad_x(case, dtype)
    assert_close(merged, expected)
    # a budget of 1 byte sends grad_x phase by phase: the same GEMM per pixel
    monkeypatch.setattr(conv_module, "IM2COL_MAX_BYTES", 1)
    per_phase, _, _ = _grad_x(case, dtype)
    np.testing.assert_array_equal(merged, per_phase)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[2], CASES[6], CASES[10], CASES[11]], ids=conv2d_case_id)
def test_merged_grad_x_one_and_two_threads_bit_identical(case, dtype):
    assert_same_bits_on_one_and_two_threads(lambda: [_grad_x(case, dtype)[0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case, top", [
    # in place (Wr 16): 8 pairs, one task per pair unless the budget leaves room
    # for only 8 or 16 of the 20 channels' planes beside the window
    (((8, 20, 6, 32), (5, 20, 3, 3), 2, 1, 1, 1), 5000),
    # packed (Wr 5): whole pairs or phase by phase
    (((8, 20, 9, 10), (5, 20, 3, 3), 2, 1, 1, 1), 8000),
], ids=["in-place", "packed"])
def test_merged_grad_x_channel_blocks_by_budget_same_bits(monkeypatch, case, top, dtype):
    # the smallest budgets fall back to phase by phase; every split, same bits
    full, expected, _ = _grad_x(case, dtype)
    assert_close(full, expected)
    item = np.dtype(dtype).itemsize
    for limit in range(1, top * item, 40 * item):
        monkeypatch.setattr(conv_module, "IM2COL_MAX_BYTES", limit)
        np.testing.assert_array_equal(_grad_x(case, dtype)[0], full)
