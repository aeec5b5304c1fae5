"""cross_entropy on short float32 rows without label smoothing: the loss loop of
src/cross_entropy_pairs_avx512.h (even C <= 10) and the generic short rows around it (odd
C, C > 10), its table exp (src/softmax_exptab_avx512.h), against float64, at the edges:
row counts that are not a multiple of the group of 16 or the task of 128, one row,
class counts around 10, weights, ignored and bad targets, extreme logits, non-contiguous
input, 1 vs 2 threads."""
import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close

CLASSES = [2, 4, 6, 8, 9, 10, 11, 15, 16, 17]
ROWS = [1, 15, 16, 17, 129, 300]


def _case(rows, C, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, C)) * scale).astype(np.float32)
    t = rng.integers(0, C, rows)
    t[2::7] = -100
    w = rng.uniform(0.2, 2.0, C).astype(np.float32)
    return x, t, w


def _ref(x, t, w, red):
    return R.cross_entropy(x.astype(np.float64), t, None if w is None else w.astype(np.float64),
                           reduction=red)


@pytest.mark.parametrize("C", CLASSES)
@pytest.mark.parametrize("rows", ROWS)
def test_loss_matches_float64(rows, C):
    x, t, w = _case(rows, C, seed=rows * 31 + C)
    for weight in (None, w):
        for red in ("none", "mean", "sum"):
            got = F.cross_entropy(x, t, weight=weight, reduction=red)
            assert got.dtype == np.float32
            assert_close(got, _ref(x, t, weight, red), dtype=np.float32)


@pytest.mark.parametrize("C", [2, 8, 10])
def test_loss_is_float32_accurate(C):
    """Per-row losses within a few float32 ulps of float64 (rows of 1e4 random logits;
    the table exp is ~1 ulp, the sum of exps <= 2.4e-7 relative, the log < 2 ulp)."""
    x, t, _ = _case(10000, C, seed=C, scale=4.0)
    t[t < 0] = 0
    got = F.cross_entropy(x, t, reduction="none").astype(np.float64)
    want = _ref(x, t, None, "none")
    err = np.abs(got - want)
    assert np.all(err <= 4e-7 * (1 + np.abs(want)) + 2.0**-23 * np.abs(want))


@pytest.mark.parametrize("C", [2, 9, 10, 11, 16])
def test_extreme_logits_stay_finite(C):
    """Logits of +-1e30 and +-3e38 (the log-sum-exp guard: every term of the sum is
    exp(x - max) <= 1); -inf among finite logits; a padded last group."""
    rows = 37
    x = np.zeros((rows, C), np.float32)
    x[0, :] = 1e30
    x[1, 0], x[1, 1:] = 1e30, -1e30
    x[2, 0], x[2, 1:] = -3e38, 3e38
    x[3, :] = -3e38
    x[4, 0], x[4, 1:] = 3e38, -3e38
    x[5, 1] = -np.inf
    x[6:, :] = np.random.default_rng(C).standard_normal((rows - 6, C)) * 1e4
    x[36, 0] = 3e38  # in the padded last group
    t = np.arange(rows) % C
    # targets whose loss is a float32 (x_t = -3e38 next to 3e38 or x_t = -inf is inf)
    t[[2, 4, 5, 36]] = [1, 0, 0, 0]
    loss = F.cross_entropy(x, t, reduction="none")
    assert np.all(np.isfinite(loss))
    assert_close(loss, _ref(x, t, None, "none"), dtype=np.float32, rtol=1e-6)
    assert np.isfinite(F.cross_entropy(x, t))
    grad = F.cross_entropy_backward(1.0, x, t)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("C", [10, 11])
def test_noncontiguous_and_float64(C):
    x, t, w = _case(300, C, seed=5)
    big = np.zeros((300, 2 * C), np.float32)
    big[:, ::2] = x
    xs = big[:, ::2]
    assert not xs.flags.c_contiguous
    np.testing.assert_array_equal(F.cross_entropy(xs, t, w), F.cross_entropy(x, t, w))
    x64 = x.astype(np.float64)
    assert_close(F.cross_entropy(x64, t, reduction="none"), _ref(x, t, None, "none"),
                 dtype=np.float64)


@pytest.mark.parametrize("C", [2, 9, 10])
def test_bad_target_in_the_loss_loop(C):
    x, t, _ = _case(300, C, seed=7)
    for bad_row in (0, 17, 140, 299):
        tb = t.copy()
        tb[bad_row] = C
        tb[bad_row + 1 if bad_row < 299 else 0] = -5
        first = min(bad_row, bad_row + 1 if bad_row < 299 else 0)
        for red in ("mean", "none"):
            with pytest.raises(ValueError, match=rf"at position \({first},\)"):
                F.cross_entropy(x, tb, reduction=red)


def test_one_and_two_threads_bit_identical_without_smoothing():
    results = {}
    try:
        for n in (1, 2):
            dlkern.set_num_threads(n)
            out = []
            for rows, C in [(4096, 10), (1000, 8), (4099, 2), (3000, 9)]:
                x, t, w = _case(rows, C, seed=rows + C)
                for weight in (None, w):
                    for red in ("mean", "sum", "none"):
                        out.append(F.cross_entropy(x, t, weight=weight, reduction=red))
                        out.append(F.cross_entropy_backward(
                            np.ones(rows, np.float32) if red == "none" else 1.0, x, t,
                            weight=weight, reduction=red))
            results[n] = out
    finally:
        dlkern.set_num_threads(None)
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b)
