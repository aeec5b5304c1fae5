"""The packed-GEMM im2col engine's branches (src/conv2d_packed_tmpl.h,
src/conv2d_im2col_tmpl.h): x itself as the window (stride 1, no padding), the
stride-2 window rows split by shuffles (vector part, scalar edges, every
padding parity), the generic strided rows, the flipped grad_x kernel packed
from the weights, and the 1x1 grad_weight's sample chunks. Each case against
the reference, float32 and float64, and 1 vs 2 threads bit for bit."""
import numpy as np
import pytest

import dlkern.functional as F
from dlkern.testing import (assert_conv2d_matches_reference,
                            assert_same_bits_on_one_and_two_threads, conv2d_case, conv2d_case_id)

DTYPES = [np.float32, np.float64]

# (x shape, weight shape, stride, padding, dilation, groups)
WINDOW_IS_X = [
    ((2, 5, 18, 18), (9, 5, 3, 3), 1, 0, 1, 1),        # OW 16: read in place; 9 rows of A
    ((2, 3, 9, 13), (4, 3, 2, 2), 1, 0, 1, 1),         # OW 12: packed panels
    ((2, 4, 20, 36), (6, 4, 3, 3), 1, 0, (2, 2), 1),   # dilation, OW 32
    ((3, 6, 16, 16), (8, 3, 3, 3), 1, 0, 1, 2),        # groups, OW 14
    ((2, 3, 8, 16), (4, 3, 2, 2), 1, "same", 1, 1),    # no top/left padding, right/bottom 1
    ((2, 3, 5, 1), (4, 3, 3, 1), 1, 0, 1, 1),          # one column
]
STRIDE2_ROWS = [
    ((2, 8, 32, 32), (16, 8, 3, 3), 2, 1, 1, 1),       # the benchmark's geometry, in place
    ((2, 3, 10, 70), (5, 3, 3, 3), 2, 1, 1, 1),        # two vectors per row, odd padding
    ((2, 3, 9, 67), (5, 3, 3, 3), 2, 0, 1, 1),         # no padding, odd width
    ((2, 3, 9, 66), (5, 3, 5, 5), 2, 2, 1, 1),         # even padding 2
    ((2, 3, 9, 40), (5, 3, 3, 4), 2, 3, 1, 1),         # padding 3: both phases shifted
    ((1, 2, 6, 64), (3, 2, 3, 3), (1, 2), 1, (1, 2), 1),  # stride (1, 2), dilation 2
    ((2, 3, 7, 33), (4, 3, 3, 3), 2, (1, 0), 1, 1),    # width 33: scalar tail
    ((2, 3, 9, 50), (4, 3, 3, 3), 3, 1, 1, 1),         # stride 3: generic rows
    ((2, 3, 9, 10), (4, 3, 3, 3), 2, 1, 1, 1),         # narrower than a vector
]
GRAD_WEIGHT_1X1 = [
    ((1, 7, 5, 5), (13, 7, 1, 1), 1, 0, 1, 1),         # batch of one, 13 x 7
    ((3, 40, 4, 5), (20, 40, 1, 1), 1, 0, 1, 1),       # 3 chunks, partial A and B panels
    ((17, 33, 21, 20), (24, 33, 1, 1), 1, 0, 1, 1),    # 6 chunks of 3 (last of 2), K blocks
    ((5, 12, 6, 6), (18, 4, 1, 1), 1, 0, 1, 3),        # groups
    ((2, 8, 1, 1), (9, 8, 1, 1), 1, 0, 1, 1),          # single pixel
    ((9, 16, 8, 8), (16, 16, 1, 1), 1, 0, 1, 1),       # 9 samples: chunks of 2, last of 1
]
# The tiles of the levels below AVX-512 (src/conv2d_im2col.c): 6 output channels x 2
# vectors, vectors of 8 float32 / 4 float64 (AVX2) or 4 / 2 (SSE). The cases run at
# whatever level is loaded (DLKERN_ISA in a portable build) and straddle each
# level's edges: channel counts not a multiple of 6 (or 8), pixel blocks ending in a
# lone vector, in-place rows of 4, 8 and 24 columns, and stride-2 rows whose shuffled
# part is one or two vectors of each width with scalar edges of either parity.
NARROW_TILES = [
    ((2, 7, 10, 10), (13, 7, 3, 3), 1, 1, 1, 1),       # OW 10: packed, 13 = 2 x 6 + 1 rows
    ((2, 5, 6, 26), (7, 5, 3, 3), 1, 0, 1, 1),         # OW 24: three 8-lane vectors a row
    ((2, 4, 8, 8), (20, 4, 3, 3), 1, 1, 1, 1),         # OW 8: 64 pixels, 20 = 3 x 6 + 2
    ((3, 6, 6, 4), (11, 6, 3, 3), 1, 1, 1, 1),         # OW 4: one SSE vector a row
    ((2, 9, 5, 12), (5, 9, 1, 1), 1, 0, 1, 1),         # 1x1, 60 pixels, 5 rows of 6
    ((2, 16, 7, 7), (26, 8, 3, 3), 1, 1, 1, 2),        # groups: 13 = 2 x 6 + 1 rows each
    ((2, 3, 9, 17), (14, 3, 3, 3), 2, 1, 1, 1),        # stride 2, W 17: 8 + 1 per phase
    ((2, 3, 9, 18), (7, 3, 3, 3), 2, 0, 1, 1),         # W 18, no padding: 9 per phase
    ((2, 3, 9, 36), (7, 3, 3, 3), 2, 1, 1, 1),         # W 36, odd padding: 18 per phase
    ((2, 3, 7, 35), (7, 3, 5, 5), 2, 2, 1, 1),         # W 35, even padding 2
    ((2, 3, 9, 20), (6, 3, 3, 3), 2, 3, 1, 1),         # padding 3: both phases shifted
    ((2, 3, 9, 16), (9, 3, 3, 3), 2, 1, 1, 1),         # OW 8 in place, strided grad_x
    ((2, 3, 10, 24), (6, 3, 3, 3), 2, 1, 1, 1),        # OW 12: in place on SSE only
]
CASES = WINDOW_IS_X + STRIDE2_ROWS + GRAD_WEIGHT_1X1 + NARROW_TILES


def _run(x, w, b, gy, kw):
    return (F.conv2d(x, w, b, algo="im2col", **kw),) + tuple(
        F.conv2d_backward(gy, x, w, algo="im2col", **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_packed_engine_matches_reference(case, dtype):
    x, w, b, gy, kw = conv2d_case(case, dtype, seed=31)
    assert_conv2d_matches_reference(_run(x, w, b, gy, kw), x, w, b, gy, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_packed_engine_one_and_two_threads_bit_identical(case, dtype):
    x, w, b, gy, kw = conv2d_case(case, dtype, seed=32)
    assert_same_bits_on_one_and_two_threads(lambda: _run(x, w, b, gy, kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_1x1_non_contiguous_inputs(dtype):
    """x, grad_out and weight as strided views: copied once, same result."""
    case = ((3, 24, 6, 7), (20, 24, 1, 1), 1, 0, 1, 1)
    x, w, b, gy, kw = conv2d_case(case, dtype, seed=33)
    xs = np.zeros((3, 48, 6, 7), dtype)[:, ::2]
    xs[...] = x
    gys = np.asfortranarray(gy)
    ws = np.zeros((20, 24, 1, 2), dtype)[..., :1]
    ws[...] = w
    assert not xs.flags.c_contiguous and not ws.flags.c_contiguous
    for got, exp in zip(_run(xs, ws, b, gys, kw), _run(x, w, b, gy, kw)):
        np.testing.assert_array_equal(got, exp)
