"""conv2d, direct algorithm: shapes that hit each branch of the register-blocked
kernels (src/conv2d_direct_tmpl.h) against the NumPy reference and PyTorch,
float32 and float64, forward and backward, 1 vs 2 threads, and non-finite input
in columns no output reads."""
import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import (assert_close, assert_conv2d_matches_reference, conv2d_case,
                            conv2d_case_id, torch_or_none)

DTYPES = [np.float32, np.float64]

# (x shape, weight shape, stride, padding, dilation, groups), with the branch each hits.
# Forward tiles: 8/4/2/1 output channels; 1 or 2 vectors of 16 columns per row; 2, 4
# or 8 rows per tile plus leftover rows. grad_weight tiles: 4 channels x 6 taps,
# 2 x 8, 1 x 12, each with a shorter last tap block; full vectors plus a masked tail.
CASES = [
    ((2, 1, 28, 28), (6, 1, 5, 5), 1, 0, 1, 1),        # LeNet-like: OW 24 (16 + tail 8), 4+2 ch, 25 taps
    ((2, 3, 32, 32), (32, 3, 3, 3), 1, 1, 1, 1),       # CIFAR-like: 8-channel tiles, 27 taps = 4x6 + 3
    ((2, 8, 13, 17), (8, 1, 3, 3), 1, 1, 1, 8),        # depthwise: 13 rows = 8 + 5, OW 17 = 16 + 1
    ((1, 4, 9, 33), (8, 1, 3, 3), 1, 1, 1, 4),         # depthwise x2: 2-channel tiles, OW 33 (3 vectors)
    ((2, 3, 10, 16), (3, 3, 3, 3), 1, 1, 1, 1),        # 3 output channels: 2 + 1, OW exactly 16
    ((2, 2, 11, 40), (9, 2, 3, 2), 1, (0, 1), 1, 1),   # 9 = 8 + 1 channels, 2 vectors + tail
    ((2, 5, 12, 12), (7, 5, 3, 3), 1, 1, 1, 1),        # 7 = 4 + 2 + 1, 45 taps
    ((2, 6, 15, 21), (6, 2, 2, 5), (2, 3), 2, 1, 3),   # strides 2x3 (column phases), groups 3
    ((1, 2, 9, 9), (4, 2, 2, 2), 3, 0, 1, 1),          # stride > kernel, batch of one
    ((2, 3, 14, 19), (5, 3, 3, 3), 1, 2, 2, 1),        # dilation 2 with padding
    ((1, 3, 7, 30), (4, 3, 3, 3), 1, 1, (3, 2), 1),    # dilation (3, 2)
    ((3, 2, 1, 1), (3, 2, 1, 1), 1, 0, 1, 1),          # single pixel
    ((2, 4, 1, 1), (5, 4, 3, 3), 1, 1, 1, 1),          # single pixel, padded 3x3
    ((1, 1, 3, 50), (1, 1, 1, 13), 1, 0, 1, 1),        # 13 taps on one channel: 12 + 1
    ((2, 24, 48, 48), (4, 24, 3, 3), 1, 1, 1, 1),      # grad_weight in two channel slabs
    ((9, 2, 6, 7), (3, 2, 3, 3), 1, 1, 1, 1),          # 9 samples: chunks of 2, last of 1
    ((8, 48, 5, 5), (48, 48, 3, 3), 1, 1, 1, 1),       # grad_weight partials too big for vectors
    ((2, 1, 5, 30), (4, 1, 1, 11), 1, 0, 1, 1),        # 11 taps: grad_weight 4 x 6 then 4 x 5
    ((2, 2, 6, 20), (4, 2, 2, 2), 1, 0, 1, 1),         # 8 taps: 4 x 6 then 4 x 2
    ((2, 1, 6, 20), (5, 1, 2, 5), 1, 1, 1, 1),         # 10 taps: 4 x 6 + 4 x 4, then 1 x 10
    # forward weights packed per block of <= 8 channels within each group:
    ((2, 4, 9, 18), (20, 2, 3, 3), 1, 1, 1, 2),        # 10 per group = 8 + 2, both groups
    ((1, 6, 7, 35), (32, 3, 3, 3), 1, 2, 1, 2),        # 16 per group = 8 + 8; pad 2 > k - 1, OW 37
    ((2, 3, 1, 40), (12, 3, 1, 3), (1, 2), 0, 1, 1),   # H 1, 12 = 8 + 4 channels, stride 2: OW 19
    ((1, 3, 9, 1), (8, 3, 3, 3), 1, 1, 1, 1),          # W 1: one partial vector of one column
    # depthwise 3x3 row-sliding forward (stride 1, dilation 1, one channel per group):
    ((2, 3, 32, 32), (3, 1, 3, 3), 1, 1, 1, 3),        # whole 4-row tiles, whole vectors
    ((1, 2, 7, 45), (2, 1, 3, 3), 1, 1, 1, 2),         # 7 rows = 4 + 3 single; OW 45 = 2 x 16 + 13
    ((2, 2, 5, 3), (2, 1, 3, 3), 1, 0, 1, 2),          # unpadded: 3 x 1 output, one partial vector
    ((1, 2, 4, 6), (2, 1, 3, 3), 1, (2, 3), 1, 2),     # padding beyond the kernel reach
    ((2, 3, 1, 1), (3, 1, 3, 3), 1, 1, 1, 3),          # single pixel
    # below AVX-512 (vectors of 8 / 4 float32 lanes, 4 / 2 float64; forward tiles of
    # 6, 5 channels x 2 rows, 4 and 3 x 3 rows, 2 x 4, 1 x 8; grad_weight 3 x 4 taps,
    # 2 x 6, 1 x 12): row tails that need every store piece, leftover rows of each tile
    ((2, 2, 9, 7), (11, 2, 3, 3), 1, 1, 1, 1),         # 11 = 6 + 5 ch; OW 7 = 4+2+1; OH 9 = 8 + 1
    ((2, 3, 10, 13), (4, 3, 3, 3), 1, 1, 1, 1),        # 4 ch: OH 10 = 9 + 1; OW 13 = 8 + 4+1
    ((1, 2, 11, 6), (3, 2, 3, 3), 1, 1, 1, 1),         # 3 ch: OH 11 = 9 + 2; OW 6 = 4+2; gw 3 x 4
    ((2, 1, 7, 11), (2, 1, 3, 3), 1, 1, 1, 1),         # 2 ch: OH 7 = 4 + 3; OW 11 = 8+2+1
    ((1, 2, 9, 3), (13, 2, 2, 2), 1, 0, 1, 1),         # 13 = 6 + 6 + 1 (8 + 5); OW 2
    ((2, 5, 6, 10), (5, 5, 3, 3), 1, 1, 1, 1),         # gw 5 = 3 + 2 ch, 45 taps = 11 x 4 + 1
    ((2, 4, 6, 11), (4, 2, 2, 5), 1, 1, 1, 2),         # gw 2 ch per group, 20 taps = 3 x 6 + 2
    ((2, 3, 9, 23), (7, 3, 3, 3), 2, 1, 1, 1),         # stride 2: OW 12 = 8 + 4, 7 = 6 + 1 ch
    ((1, 2, 4, 70), (6, 2, 1, 3), 1, 0, 1, 1),         # OW 68: many vectors + a half one
    ((2, 2, 6, 9), (2, 1, 3, 3), 1, 1, 1, 2),          # depthwise: OH 6 = 4 + 2, OW 9 = 8 + 1
    ((1, 3, 5, 5), (3, 1, 3, 3), 1, 1, 1, 3),          # depthwise: OW 5 = 4 + 1
    ((1, 2, 9, 2), (2, 1, 3, 3), 1, 1, 1, 2),          # depthwise: OW 2, one piece of 2
]


def _direct(x, w, b, gy, kw):
    y = F.conv2d(x, w, b, algo="direct", **kw)
    return (y,) + tuple(F.conv2d_backward(gy, x, w, algo="direct", **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_direct_matches_reference(case, dtype):
    x, w, b, gy, kw = conv2d_case(case, dtype)
    assert_conv2d_matches_reference(_direct(x, w, b, gy, kw), x, w, b, gy, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_direct_matches_torch(case, dtype):
    torch = torch_or_none()
    if torch is None:
        pytest.skip("torch not installed")
    x, w, b, gy, kw = conv2d_case(case, dtype, seed=1)
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    expected = (ty.detach().numpy(),) + tuple(
        t.numpy() for t in torch.autograd.grad(ty, (tx, tw, tb), torch.from_numpy(gy)))
    for name, got, exp in zip(("y", "grad_x", "grad_weight", "grad_bias"),
                              _direct(x, w, b, gy, kw), expected):
        assert_close(got, exp, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_direct_one_and_two_threads_bit_identical(case):
    x, w, b, gy, kw = conv2d_case(case, np.float32, seed=2)
    results = {}
    try:
        for n in (1, 2):
            dlkern.set_num_threads(n)
            results[n] = _direct(x, w, b, gy, kw)
    finally:
        dlkern.set_num_threads(None)
    for a, c in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("case", [
    ((2, 2, 9, 20), (3, 2, 3, 3), 2, 0, 1, 1),    # OW 9 (tail only): column 19 unread
    ((1, 2, 4, 111), (2, 2, 2, 2), 3, 0, 1, 1),   # OW 37 (2 vectors + tail): column 110 unread
], ids=["stride2", "stride3-wide"])
def test_direct_unread_columns_do_not_reach_results(case, bad, dtype):
    """x values in columns no output reads influence no result (as in torch): the
    grad_weight tile's tail lanes must not multiply them by zero-filled grad_out."""
    xs, ws, s, p, d, g = case
    x, w, b, gy, kw = conv2d_case(case, dtype, seed=3)
    last_read = (gy.shape[3] - 1) * s + (ws[3] - 1) * d
    assert last_read + 1 < xs[3]
    x_bad = x.copy()
    x_bad[:, :, :, last_read + 1:] = bad
    for name, got, exp in zip(("y", "grad_x", "grad_weight", "grad_bias"),
                              _direct(x_bad, w, b, gy, kw), _direct(x, w, b, gy, kw)):
        assert np.all(np.isfinite(got)), name
        np.testing.assert_array_equal(got, exp, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    ((2, 3, 32, 32), (32, 3, 3, 3), 1, 1, 1, 1),       # CIFAR-like: four 8-channel blocks
    ((2, 4, 9, 18), (20, 2, 3, 3), 1, 1, 1, 2),        # 8 + 2 channels in each of 2 groups
], ids=conv2d_case_id)
def test_direct_forward_non_contiguous_inputs(case, dtype):
    """Strided views of x, weight and bias give the bits of their contiguous copies
    (the forward packs the weights it is given, not a view's base)."""
    x, w, b, gy, kw = conv2d_case(case, dtype, seed=4)
    xs = np.empty(x.shape[:3] + (2 * x.shape[3],), dtype)[..., ::2]
    xs[...] = x
    ws = np.asfortranarray(w)
    bs = np.repeat(b, 2)[::2]
    assert not (xs.flags.c_contiguous or ws.flags.c_contiguous or bs.flags.c_contiguous)
    y = F.conv2d(xs, ws, bs, algo="direct", **kw)
    np.testing.assert_array_equal(y, F.conv2d(x, w, b, algo="direct", **kw))
    assert_close(y, R.conv2d(x, w, b, **kw))
