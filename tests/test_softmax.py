"""softmax, log_softmax, cross_entropy: C kernels vs the NumPy reference vs PyTorch,
forward and backward, float32 and float64, the log-sum-exp guard, errors and threads."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close, numerical_gradient

DTYPES = [np.float32, np.float64]
BACKENDS = [F, R]
SOFTMAXES = ["softmax", "log_softmax"]

# (shape, dim): last axis, first axis, middle axis of a 4-D array, short and long rows,
# inner > 1 with column blocks that do not divide evenly, a 1-D and a 0-D array.
GRID = [
    ((7, 13), -1), ((7, 13), 0), ((4096 // 64, 10), 1), ((3, 1000), -1), ((2, 3, 65), 1),
    ((2, 5, 70, 3), 1), ((2, 5, 7, 3), 2), ((3, 4, 5, 6), 0), ((11,), 0), ((), 0),
    ((1, 1), -1), ((5, 1), 1), ((3, 200), 0), ((2, 7, 129), 1),
    # long rows (the fused exp-and-sum loop): 32-wide steps only, a full 16-wide tail
    # step, a masked tail
    ((4, 64), -1), ((3, 80), -1), ((2, 111), -1),
    # float32 lane sums folded every 1024 elements: a second chunk that is only a tail,
    # two full chunks plus 64-wide steps and a tail
    ((3, 1029), -1), ((2, 2048 + 64 + 17), -1),
]


def _x(shape, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)


def _ref64(name, x, dim):
    """The reference computed in float64 (the accuracy yardstick)."""
    return getattr(R, name)(x.astype(np.float64), dim)


# ---------------------------------------------------------------- softmax forward/backward

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", GRID)
@pytest.mark.parametrize("name", SOFTMAXES)
def test_forward_matches_reference(name, shape, dim, dtype):
    x = _x(shape, dtype, seed=len(shape) + dim)
    got = getattr(F, name)(x, dim)
    assert got.dtype == dtype and got.shape == x.shape
    assert_close(got, getattr(R, name)(x, dim), dtype=dtype)
    assert_close(got, _ref64(name, x, dim), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", GRID)
@pytest.mark.parametrize("name", SOFTMAXES)
def test_backward_matches_reference(name, shape, dim, dtype):
    x = _x(shape, dtype, seed=3)
    g = _x(shape, dtype, seed=4, scale=1.0)
    y = getattr(F, name)(x, dim)
    got = getattr(F, name + "_backward")(g, y, dim)
    assert got.dtype == dtype and got.shape == x.shape
    assert_close(got, getattr(R, name + "_backward")(g, y, dim), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((6, 9), -1), ((6, 9), 0), ((2, 3, 4, 5), 2),
                                       ((4096 // 32, 10), -1), ((2, 300), -1), ((7,), 0)])
@pytest.mark.parametrize("name", SOFTMAXES)
def test_softmax_matches_torch(name, shape, dim, dtype):
    torch = pytest.importorskip("torch")
    x = _x(shape, dtype, seed=5)
    g = _x(shape, dtype, seed=6, scale=1.0)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = getattr(torch.nn.functional, name)(tx, dim)
    ty.backward(torch.from_numpy(g))
    for B in BACKENDS:
        y = getattr(B, name)(x, dim)
        assert_close(y, ty.detach().numpy(), dtype=dtype)
        assert_close(getattr(B, name + "_backward")(g, y, dim), tx.grad.numpy(), dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("shape,dim", [((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1)])
def test_softmax_gradcheck(backend, shape, dim):
    """d/dx sum(softmax(x) * p) for a random projection p, against finite differences."""
    x = _x(shape, np.float64, seed=7, scale=1.0)
    p = _x(shape, np.float64, seed=8, scale=1.0)
    for name in SOFTMAXES:
        f = getattr(backend, name)
        numeric = numerical_gradient(lambda: float(np.sum(f(x, dim) * p)), x)
        analytic = getattr(backend, name + "_backward")(p, f(x, dim), dim)
        assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [13, 100, 1029])
def test_log_softmax_backward_of_any_output(dtype, D):
    """The backward takes the output as given: values > 0 (not a log-probability),
    -inf, nan, and very negative ones (exp below the smallest normal) all follow
    g - exp(y) * sum(g)."""
    y = _x((6, D), dtype, seed=11)
    g = _x((6, D), dtype, seed=12, scale=1.0)
    y[1, 5] = -np.inf
    y[2, 7] = np.nan
    y[3, :] = -np.abs(y[3, :]) - 80.0
    y[4, :] = np.abs(y[4, :])
    want = R.log_softmax_backward(g, y)
    got = F.log_softmax_backward(g, y)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = ~np.isnan(want)
    assert_close(got[fin], want[fin], dtype=dtype)


# ---------------------------------------------------------------- cross-entropy

def _ce_case(shape, dtype, seed=0, ignore=True):
    rng = np.random.default_rng(seed)
    logits = np.asarray(rng.standard_normal(shape) * 2, dtype=dtype)
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = np.asarray(rng.integers(0, C, tshape))
    if ignore and target.ndim:
        target.reshape(-1)[1::4] = -100
    weight = rng.uniform(0.2, 2.0, C).astype(dtype)
    return logits, target, weight


def _grad_out(reduction, target, dtype, seed=1):
    if reduction == "none":
        return np.asarray(np.random.default_rng(seed).standard_normal(target.shape), dtype)
    return 0.7


CE_SHAPES = [(16, 5), (9, 1000), (4096 // 16, 10), (4, 3, 5), (3, 4, 2, 5), (6,), (1, 1)]
CE_OPTIONS = [(red, w, ls) for red in ("mean", "sum", "none") for w in (False, True)
              for ls in (0.0, 0.25)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction,use_weight,ls", CE_OPTIONS)
def test_cross_entropy_matches_reference(shape, reduction, use_weight, ls, dtype):
    logits, target, weight = _ce_case(shape, dtype, seed=sum(shape))
    w = weight if use_weight else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=ls)
    got = F.cross_entropy(logits, target, **kw)
    want = R.cross_entropy(logits, target, **kw)
    assert got.dtype == dtype and got.shape == want.shape
    assert_close(got, want, dtype=dtype)
    g = _grad_out(reduction, target, dtype)
    grad = F.cross_entropy_backward(g, logits, target, **kw)
    assert grad.dtype == dtype and grad.shape == logits.shape
    assert_close(grad, R.cross_entropy_backward(g, logits, target, **kw), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
# (37, 10): even rows of at most 10 take the pair layout's own loss loop (float32,
# AVX-512), 37 rows a partial last group of 16
@pytest.mark.parametrize("shape", [(12, 7), (4, 3, 5), (2, 4, 3, 2), (5,), (37, 10)])
@pytest.mark.parametrize("reduction,use_weight,ls", CE_OPTIONS)
def test_cross_entropy_matches_torch(shape, reduction, use_weight, ls, dtype):
    torch = pytest.importorskip("torch")
    logits, target, weight = _ce_case(shape, dtype, seed=3)
    w = weight if use_weight else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=ls)
    tx = torch.from_numpy(logits.copy()).requires_grad_()
    tl = torch.nn.functional.cross_entropy(
        tx, torch.from_numpy(target.astype(np.int64)),
        weight=None if w is None else torch.from_numpy(w), reduction=reduction,
        label_smoothing=ls)
    g = _grad_out(reduction, target, dtype)
    tl.backward(torch.from_numpy(np.asarray(g, dtype=dtype)))
    for B in BACKENDS:
        assert_close(B.cross_entropy(logits, target, **kw), tl.detach().numpy(), dtype=dtype)
        assert_close(B.cross_entropy_backward(g, logits, target, **kw), tx.grad.numpy(),
                     dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2), (3,)])
@pytest.mark.parametrize("reduction,use_weight,ls", [("mean", True, 0.3), ("sum", False, 0.0),
                                                     ("none", True, 0.0), ("mean", False, 0.1)])
def test_cross_entropy_gradcheck(backend, shape, reduction, use_weight, ls):
    logits, target, weight = _ce_case(shape, np.float64, seed=11)
    if target.ndim:
        target.reshape(-1)[0] = -100
    kw = dict(weight=weight if use_weight else None, reduction=reduction, label_smoothing=ls)
    g = _grad_out(reduction, target, np.float64, seed=12)
    numeric = numerical_gradient(
        lambda: float(np.sum(backend.cross_entropy(logits, target, **kw) * g)), logits)
    analytic = backend.cross_entropy_backward(g, logits, target, **kw)
    assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("tdtype", [np.int8, np.uint8, np.int32, np.uint64, np.int64])
def test_cross_entropy_target_dtypes(tdtype):
    logits, target, _ = _ce_case((10, 6), np.float32, ignore=False)
    want = R.cross_entropy(logits, target)
    t = target.astype(tdtype)
    assert_close(F.cross_entropy(logits, t), want, dtype=np.float32)
    assert_close(F.cross_entropy_backward(1.0, logits, t),
                 R.cross_entropy_backward(1.0, logits, target), dtype=np.float32)


def test_cross_entropy_scalar_grad_out_forms():
    logits, target, _ = _ce_case((5, 4), np.float64)
    a = F.cross_entropy_backward(2.0, logits, target)
    b = F.cross_entropy_backward(np.array(2.0), logits, target)
    c = F.cross_entropy_backward(np.float32(2.0), logits, target)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_cross_entropy_all_ignored_and_empty_batch():
    torch = pytest.importorskip("torch")
    for B in BACKENDS:
        x = _x((3, 4), np.float32)
        t = np.full(3, -100)
        assert np.isnan(B.cross_entropy(x, t))  # 0/0, as torch
        assert np.isnan(B.cross_entropy(x, t, label_smoothing=0.2))
        assert B.cross_entropy(x, t, reduction="sum") == 0
        np.testing.assert_array_equal(B.cross_entropy_backward(1.0, x, t), np.zeros((3, 4)))
        empty = np.zeros((0, 4), np.float32)
        et = np.zeros(0, np.int64)
        assert np.isnan(B.cross_entropy(empty, et))
        assert B.cross_entropy(empty, et, reduction="sum") == 0
        assert B.cross_entropy(empty, et, reduction="none").shape == (0,)
        assert B.cross_entropy_backward(1.0, empty, et).shape == (0, 4)
    tl = torch.nn.functional.cross_entropy(torch.zeros(3, 4), torch.full((3,), -100))
    assert torch.isnan(tl)


def test_ignore_index_inside_class_range():
    logits, target, weight = _ce_case((20, 5), np.float64, ignore=False)
    for B in BACKENDS:
        got = B.cross_entropy(logits, target, weight, ignore_index=2, reduction="none")
        assert np.all(got[target == 2] == 0) and np.all(got[target != 2] > 0)
    assert_close(F.cross_entropy(logits, target, weight, ignore_index=2),
                 R.cross_entropy(logits, target, weight, ignore_index=2))


# ---------------------------------------------------------------- the log-sum-exp guard

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_guard_huge_logits_exact(backend, dtype):
    x = np.array([[1e30, -1e30, 0.0], [-1e30, -1e30, -1e30], [1e30, 1e30, -1e30],
                  [3e29, 3e29 * (1 + 1e-6), -5.0]], dtype=dtype)
    sm = backend.softmax(x)
    lsm = backend.log_softmax(x)
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(lsm))
    x64 = x.astype(np.float64)
    want_l = (x64 - x64.max(1, keepdims=True))
    want_l -= np.log(np.exp(want_l).sum(1, keepdims=True))
    assert_close(lsm, want_l, dtype=dtype, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert_close(sm, np.exp(want_l), dtype=dtype)
    np.testing.assert_array_equal(sm[0], [1, 0, 0])
    np.testing.assert_array_equal(lsm[0], np.array([0, -2e30, -1e30], dtype))
    # ties at 1e30: log(2) must survive next to 1e30
    assert_close(lsm[2, :2], [-np.log(2)] * 2, dtype=dtype)
    assert_close(sm[1], [1 / 3] * 3, dtype=dtype)
    t = np.array([1, 0, 2, 2])
    loss = backend.cross_entropy(x, t, reduction="none")
    assert np.all(np.isfinite(loss))
    assert_close(loss, -want_l[np.arange(4), t], dtype=dtype, rtol=1e-6)
    for ls in (0.0, 0.3):
        grad = backend.cross_entropy_backward(1.0, x, t, label_smoothing=ls)
        assert np.all(np.isfinite(grad))
    grad = backend.cross_entropy_backward(1.0, x, t, reduction="sum")
    onehot = np.eye(3)[t]
    assert_close(grad, np.exp(want_l) - onehot, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("D", [3, 100])
def test_guard_nonfinite_rows_are_nan_and_isolated(backend, dtype, D):
    x = _x((5, D), dtype, seed=9)
    x[1, 1] = np.inf
    x[2, 0] = np.nan
    x[3, :] = -np.inf
    x[4, 0] = -np.inf  # -inf among finite values is fine
    clean = [0, 4]
    t = np.array([0, 1, 2, 1, 1])
    for name in SOFTMAXES:
        y = getattr(backend, name)(x)
        assert np.all(np.isnan(y[1:4])), name
        assert_close(y[clean], _ref64(name, x[clean], -1), dtype=dtype)
    assert backend.softmax(x)[4, 0] == 0 and backend.log_softmax(x)[4, 0] == -np.inf
    loss = backend.cross_entropy(x, t, reduction="none")
    assert np.all(np.isnan(loss[1:4])) and np.all(np.isfinite(loss[clean]))
    assert np.isnan(backend.cross_entropy(x, t))
    grad = backend.cross_entropy_backward(1.0, x, t)
    assert np.all(np.isnan(grad[1:4])) and np.all(np.isfinite(grad[clean]))
    # ignored non-finite rows: loss 0, gradient nan (torch's log_softmax backward)
    ti = np.array([0, -100, -100, -100, 1])
    loss = backend.cross_entropy(x, ti, reduction="none")
    assert np.all(loss[1:4] == 0) and np.isfinite(backend.cross_entropy(x, ti))
    grad = backend.cross_entropy_backward(1.0, x, ti)
    assert np.all(np.isnan(grad[1:4])) and np.all(np.isfinite(grad[clean]))


def test_guard_nonfinite_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[np.nan, 0, 1], [1, 2, 3], [-np.inf] * 3, [np.inf, 0, 1], [-np.inf, 0, 2]],
                 np.float32)
    t = np.array([-100, 1, -100, 0, 2])
    tx = torch.from_numpy(x.copy()).requires_grad_()
    tl = torch.nn.functional.cross_entropy(tx, torch.from_numpy(t), reduction="none",
                                           label_smoothing=0.1)
    tl.sum().backward()
    for B in BACKENDS:
        for name in SOFTMAXES:
            want = getattr(torch.nn.functional, name)(torch.from_numpy(x), -1).numpy()
            np.testing.assert_array_equal(np.isnan(getattr(B, name)(x)), np.isnan(want))
        loss = B.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
        np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=1e-5)
        grad = B.cross_entropy_backward(np.ones(5, np.float32), x, t, reduction="none",
                                        label_smoothing=0.1)
        np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [2, 64])
def test_exp_accuracy_over_the_whole_range(dtype, D):
    """Row [0, v] (then -inf: long rows take the vectorized exp) for v from -ln(max) to 0:
    softmax's second entry is exp(v)/(1+exp(v))."""
    lo = -87.0 if dtype == np.float32 else -708.0
    v = np.linspace(lo, 0, 20001).astype(dtype)
    x = np.full((v.size, D), -np.inf, dtype)
    x[:, 0], x[:, 1] = 0, v
    got = F.softmax(x)[:, 1].astype(np.float64)
    v64 = v.astype(np.float64)
    want = np.exp(v64) / (1 + np.exp(v64))
    rel = np.abs(got - want) / want
    assert rel.max() < (4 * 2.0**-24 if dtype == np.float32 else 8 * 2.0**-53)


@pytest.mark.parametrize("D", [1, 2, 4, 5, 6, 8, 10, 12, 15, 16, 17, 33, 63])
@pytest.mark.parametrize("rows", [1, 15, 16, 17, 40, 300])
def test_short_rows_groups_and_tails(rows, D):
    """float32 rows shorter than 64 go 16 at a time (softmax_short_avx512.h; even D <= 10
    in the pair layout of softmax_pairs_avx512.h, every V = D/2 its own code): full
    groups, a padded last group, rows of one vector or several, several tasks of 128 rows
    (300); forward and backward against float64."""
    x = _x((rows, D), np.float32, seed=rows * 100 + D, scale=4.0)
    g = _x((rows, D), np.float32, seed=D, scale=1.0)
    for name in SOFTMAXES:
        y = getattr(F, name)(x)
        assert_close(y, _ref64(name, x, -1), dtype=np.float32)
        assert_close(getattr(F, name + "_backward")(g, y),
                     getattr(R, name + "_backward")(g.astype(np.float64), y.astype(np.float64)),
                     dtype=np.float32)
    t = np.arange(rows) % D
    assert_close(F.cross_entropy(x, t, reduction="none"),
                 R.cross_entropy(x.astype(np.float64), t, reduction="none"), dtype=np.float32)


@pytest.mark.parametrize("C", [1, 2, 3, 4, 6, 8, 10, 12, 16, 17, 63])
@pytest.mark.parametrize("ls", [0.0, 0.2])
@pytest.mark.parametrize("use_weight", [False, True])
def test_short_rows_cross_entropy_groups_and_tails(C, ls, use_weight):
    """float32 cross-entropy with fewer than 64 classes (cross_entropy_short_avx512.h):
    37 rows (two full groups and a padded one), ignored rows in full and padded groups,
    weights and label smoothing, every reduction, forward and backward vs float64."""
    logits, target, weight = _ce_case((37, C), np.float32, seed=C)
    target[[2, 20, 35]] = -100
    w = weight if use_weight else None
    for red in ("none", "mean", "sum"):
        kw = dict(weight=w, reduction=red, label_smoothing=ls)
        kw64 = dict(kw, weight=None if w is None else w.astype(np.float64))
        assert_close(F.cross_entropy(logits, target, **kw),
                     R.cross_entropy(logits.astype(np.float64), target, **kw64), dtype=np.float32)
        g = _grad_out(red, target, np.float32)
        g64 = g.astype(np.float64) if isinstance(g, np.ndarray) else g
        assert_close(F.cross_entropy_backward(g, logits, target, **kw),
                     R.cross_entropy_backward(g64, logits.astype(np.float64), target, **kw64),
                     dtype=np.float32)


@pytest.mark.parametrize("C", [3, 10, 12, 40, 100])
@pytest.mark.parametrize("red", ["none", "mean", "sum"])
def test_cross_entropy_reports_the_first_bad_target(C, red):
    """float32 short rows validate the targets inside the loss pass (each task of 128
    rows its own first bad row): the error names the first one in row order wherever the
    bad targets sit (a later task, a full group, the padded last group), and a call
    that raises returns nothing."""
    logits = _x((300, C), np.float32, seed=C)
    for bad_rows in ([299], [290, 5], [130, 140], [16, 15], [0]):
        target = np.arange(300) % C
        target[7] = -100
        for i, r in enumerate(bad_rows):
            target[r] = C + i if i % 2 == 0 else -3
        first = min(bad_rows)
        with pytest.raises(ValueError, match=rf"target value {target[first]} at position "
                                             rf"\({first},\) is out of range"):
            F.cross_entropy(logits, target, reduction=red)
        with pytest.raises(ValueError, match=rf"at position \({first},\)"):
            F.cross_entropy_backward(_grad_out(red, target, np.float32), logits, target,
                                     reduction=red)


def test_cross_entropy_mean_and_sum_over_many_tasks():
    """float32 short rows reduce per task of 128 rows, then in task order: the mean's
    denominator counts only kept rows (ignored ones anywhere, weighted or not)."""
    logits, target, weight = _ce_case((1000, 10), np.float32, seed=11)
    target[[3, 500, 999]] = -100
    for w in (None, weight):
        w64 = None if w is None else w.astype(np.float64)
        for red in ("mean", "sum"):
            assert_close(F.cross_entropy(logits, target, weight=w, reduction=red),
                         R.cross_entropy(logits.astype(np.float64), target, weight=w64,
                                         reduction=red), dtype=np.float32)
    target[:] = -100
    assert np.isnan(F.cross_entropy(logits, target))


def test_fast_and_full_argument_paths_agree():
    """Plain calls take the bindings' C-level fast paths (_softmax.pyx); the same values
    in forms they decline (np.int64 dim, int32 targets, an int label_smoothing, a weight of
    ones, a Python float vs a 0-d grad_out, an ndarray subclass) take the full parse.
    Results are bit-identical."""
    from dlkern import _softmax

    class Sub(np.ndarray):
        pass

    nt = dlkern.get_num_threads()
    for shape in [(37, 10), (5, 300)]:
        x = _x(shape, np.float32, seed=4)
        g = _x(shape, np.float32, seed=5, scale=1.0)
        assert _softmax.softmax_fast(x, -1, False, nt) is not None
        assert _softmax.softmax_fast(x, np.int64(-1), False, nt) is None
        assert _softmax.softmax_fast(x.view(Sub), -1, False, nt) is None
        for name in SOFTMAXES:
            fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
            y = fwd(x, -1)
            np.testing.assert_array_equal(y, fwd(x, np.int64(-1)))
            np.testing.assert_array_equal(y, fwd(x.view(Sub), 1))
            np.testing.assert_array_equal(bwd(g, y, -1), bwd(g, y, np.int64(1)))
        t = np.arange(shape[0]) % shape[1]
        t[3] = -100
        ones = np.ones(shape[1], np.float32)
        for red in ("mean", "sum", "none"):
            assert _softmax.cross_entropy_fast(x, t, None, -100, red, 0.0, nt) is not None
            want = F.cross_entropy(x, t, reduction=red)
            assert want.shape == ((shape[0],) if red == "none" else ())
            for kw in (dict(target=t.astype(np.int32)), dict(label_smoothing=0),
                       dict(weight=ones)):
                got = F.cross_entropy(x, kw.get("target", t), weight=kw.get("weight"),
                                      reduction=red, label_smoothing=kw.get("label_smoothing", 0.0))
                np.testing.assert_array_equal(got, want)
            go = _grad_out(red, t, np.float32)
            want = F.cross_entropy_backward(go, x, t, reduction=red)
            got = F.cross_entropy_backward(go, x, t.astype(np.int32), reduction=red)
            np.testing.assert_array_equal(got, want)
            if red != "none":
                got = F.cross_entropy_backward(np.asarray(go, np.float64), x, t, reduction=red)
                np.testing.assert_array_equal(got, want)


def test_short_rows_nonfinite_isolated_in_full_and_padded_groups():
    x = _x((37, 10), np.float32, seed=3)
    bad = {3: np.nan, 17: np.inf, 36: np.nan}
    for r, v in bad.items():
        x[r, r % 10] = v
    x[20, :] = -np.inf
    x[5, 2] = -np.inf
    nan_rows = [3, 17, 20, 36]
    clean = [r for r in range(37) if r not in nan_rows]
    for name in SOFTMAXES:
        y = F.log_softmax(x) if name == "log_softmax" else F.softmax(x)
        assert np.all(np.isnan(y[nan_rows]))
        assert_close(y[clean], _ref64(name, x[clean], -1), dtype=np.float32)
    assert F.softmax(x)[5, 2] == 0 and F.log_softmax(x)[5, 2] == -np.inf


@pytest.mark.parametrize("D", [2, 3, 7, 10, 16, 63])
def test_short_rows_log_of_the_sum_is_float32_exact(D):
    """Equal logits: log_softmax is -log(D), formed with the vectorized log of the sum
    (< 2 ulp measured over every positive normal float); allow 2 ulp."""
    x = np.full((20, D), 1.5, np.float32)
    got = F.log_softmax(x).astype(np.float64)
    want = -np.log(D)
    assert np.max(np.abs(got - want)) <= 2 * abs(float(np.spacing(np.float32(want))))


@pytest.mark.parametrize("case", ["huge_plus_tiny", "equal", "long_random"])
def test_float32_sum_of_exps_accuracy(case):
    """float32 sums exps in float32 lanes folded into double every 1024 elements: the
    sum's relative error stays ~1e-6 for any row length (softmax.h). Rows: one term 1 and
    1e5 terms e^-12 (the lane holding the 1 drops them), 1e5 + 3 equal terms (tail in the
    last chunk), 1e6 + 7 N(0,1) logits. Float32 accuracy: softmax to 2.5e-6 relative,
    log_softmax to 2e-6 absolute plus its own rounding."""
    rng = np.random.default_rng(7)
    if case == "huge_plus_tiny":
        x = np.concatenate([[0.0], np.full(100000, -12.0)])
    elif case == "equal":
        x = np.zeros(100003)
    else:
        x = rng.standard_normal(1000007)
    x = x.astype(np.float32)[None]
    z = x.astype(np.float64) - x.max()
    s = np.exp(z).sum()
    p = F.softmax(x).astype(np.float64)
    assert np.max(np.abs(p - np.exp(z) / s) / (np.exp(z) / s)) < 2.5e-6
    want = z - np.log(s)
    lsm = F.log_softmax(x).astype(np.float64)
    assert np.all(np.abs(lsm - want) <= 2e-6 + 2.0**-23 * np.abs(want))
    t = np.array([0, 1, 2])
    loss = F.cross_entropy(np.repeat(x, 3, 0), t, reduction="none").astype(np.float64)
    assert_close(loss, -want[0, t], dtype=np.float32, rtol=2e-6, atol=1e-6)


# ---------------------------------------------------------------- hypothesis

@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), data=st.data(),
       dtype=st.sampled_from(DTYPES), scale=st.sampled_from([1.0, 30.0, 1e4]))
def test_hypothesis_softmax(shape, data, dtype, scale):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _x(tuple(shape), dtype, seed=len(shape), scale=scale)
    g = _x(tuple(shape), dtype, seed=1, scale=1.0)
    for name in SOFTMAXES:
        y = getattr(F, name)(x, dim)
        assert_close(y, _ref64(name, x, dim), dtype=dtype)
        assert_close(getattr(F, name + "_backward")(g, y, dim),
                     getattr(R, name + "_backward")(g, y, dim), dtype=dtype)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), c=st.integers(1, 70), extra=st.lists(st.integers(1, 4), max_size=2),
       dtype=st.sampled_from(DTYPES), ls=st.sampled_from([0.0, 0.2]),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_hypothesis_cross_entropy(n, c, extra, dtype, ls, reduction):
    logits, target, weight = _ce_case((n, c) + tuple(extra), dtype, seed=n * c)
    kw = dict(weight=weight, reduction=reduction, label_smoothing=ls)
    assert_close(F.cross_entropy(logits, target, **kw), R.cross_entropy(logits, target, **kw),
                 dtype=dtype)
    g = _grad_out(reduction, target, dtype)
    assert_close(F.cross_entropy_backward(g, logits, target, **kw),
                 R.cross_entropy_backward(g, logits, target, **kw), dtype=dtype)


# ---------------------------------------------------------------- layouts and threads

@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_and_fortran_inputs(dtype):
    base = _x((40, 30), dtype, seed=2)
    for x in (base.T, base[::2, 1::3], np.asfortranarray(base)):
        for dim in (0, -1):
            for name in SOFTMAXES:
                y = getattr(F, name)(x, dim)
                assert_close(y, getattr(R, name)(np.ascontiguousarray(x), dim), dtype=dtype)
                g = x[::-1]
                assert_close(getattr(F, name + "_backward")(g, y.T.copy().T, dim),
                             getattr(R, name + "_backward")(np.ascontiguousarray(g), y, dim),
                             dtype=dtype)
    t = np.arange(30)[::-1] % 40
    w = _x((80,), dtype, seed=3)[::2] ** 2
    x = base.T  # (30, 40), non-contiguous
    assert_close(F.cross_entropy(x, t[::1], w, label_smoothing=0.1),
                 R.cross_entropy(np.ascontiguousarray(x), t, w.copy(), label_smoothing=0.1),
                 dtype=dtype)
    assert_close(F.cross_entropy_backward(1.0, x, t, w),
                 R.cross_entropy_backward(1.0, np.ascontiguousarray(x), t, w.copy()),
                 dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_bit_identical(dtype):
    cases = [((300, 1000), -1), ((4096, 10), -1), ((8, 600, 9), 1), ((64, 300, 3), 0)]
    results = {}
    try:
        for n in (1, 2):
            dlkern.set_num_threads(n)
            out = []
            for shape, dim in cases:
                x = _x(shape, dtype, seed=1)
                g = _x(shape, dtype, seed=2, scale=1.0)
                for name in SOFTMAXES:
                    y = getattr(F, name)(x, dim)
                    out += [y, getattr(F, name + "_backward")(g, y, dim)]
            for shape in [(300, 1000), (4096, 10), (64, 10, 40)]:
                logits, target, weight = _ce_case(shape, dtype)
                for red in ("mean", "none"):
                    kw = dict(weight=weight, reduction=red, label_smoothing=0.1)
                    out.append(F.cross_entropy(logits, target, **kw))
                    out.append(F.cross_entropy_backward(_grad_out(red, target, dtype), logits,
                                                        target, **kw))
            results[n] = out
    finally:
        dlkern.set_num_threads(None)
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_softmax_rejects_bad_input(backend):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="softmax: x must be float32 or float64, got dtype int64"):
        backend.softmax(np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match="log_softmax: x must be float32 or float64, got dtype bool"):
        backend.log_softmax(np.zeros(3, bool))
    with pytest.raises(TypeError, match="must be a NumPy array"):
        backend.softmax([1.0, 2.0])
    with pytest.raises(IndexError, match=r"softmax: dim 2 is out of range for a 2-D array "
                                         r"\(expected in \[-2, 1\]\)"):
        backend.softmax(x, 2)
    with pytest.raises(IndexError, match="out of range"):
        backend.log_softmax(x, -3)
    with pytest.raises(TypeError, match="dim must be an int"):
        backend.softmax(x, 1.0)
    with pytest.raises(TypeError, match="dim must be an int"):
        backend.softmax(x, True)
    with pytest.raises(TypeError, match="output has dtype float64 but grad_out has dtype float32"):
        backend.softmax_backward(x, x.astype(np.float64))
    with pytest.raises(ValueError, match="output has shape"):
        backend.log_softmax_backward(x, x[:, :2].copy())
    with pytest.raises(TypeError, match="grad_out must be float32 or float64"):
        backend.softmax_backward(x.astype(np.int32), x)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("fn", ["cross_entropy", "cross_entropy_backward"])
def test_cross_entropy_rejects_bad_input(backend, fn):
    logits = np.zeros((4, 3), np.float32)
    t = np.array([0, 1, 2, 1])

    def call(logits=logits, target=t, **kw):
        if fn == "cross_entropy":
            return backend.cross_entropy(logits, target, **kw)
        red = kw.get("reduction", "mean")
        g = np.ones(target.shape, logits.dtype) if red == "none" else 1.0
        return backend.cross_entropy_backward(g, logits, target, **kw)

    with pytest.raises(TypeError, match=f"{fn}: logits must be float32 or float64"):
        call(logits=np.zeros((4, 3), np.int32))
    with pytest.raises(TypeError, match="target must be an integer array"):
        call(target=t.astype(np.float32))
    with pytest.raises(TypeError, match="target must be an integer array"):
        call(target=t.astype(bool))
    with pytest.raises(TypeError, match="target must be an integer NumPy array"):
        call(target=[0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"target must have shape \(4,\) for logits of shape "
                                         r"\(4, 3\), got \(3,\)"):
        call(target=t[:3])
    with pytest.raises(ValueError, match=r"target value 3 at position \(2,\) is out of range"):
        call(target=np.array([0, 1, 3, 7]))
    with pytest.raises(ValueError, match=r"target value -1 at position \(1, 0\)"):
        call(logits=np.zeros((2, 3, 2), np.float32), target=np.array([[0, -100], [-1, 5]]))
    with pytest.raises(ValueError, match=r"target value 18446744073709551615 at position \(0,\)"):
        call(target=np.array([2**64 - 1, 0, 0, 0], np.uint64))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        call(weight=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="weight has dtype float64 but logits has dtype float32"):
        call(weight=np.ones(3))
    with pytest.raises(ValueError, match="reduction must be 'none', 'mean' or 'sum', got 'avg'"):
        call(reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        call(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got -0.1"):
        call(label_smoothing=-0.1)
    with pytest.raises(TypeError, match="label_smoothing must be a real number, got '0.1'"):
        call(label_smoothing="0.1")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got nan"):
        call(label_smoothing=float("nan"))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        call(ignore_index=1.5)
    with pytest.raises(ValueError, match="got a 0-D array"):
        call(logits=np.zeros((), np.float32), target=np.array(0))


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_cross_entropy_backward_rejects_bad_grad_out(backend):
    logits = np.zeros((4, 3), np.float64)
    t = np.array([0, 1, 2, 1])
    with pytest.raises(ValueError, match="grad_out must have the target's shape"):
        backend.cross_entropy_backward(np.ones(3), logits, t, reduction="none")
    with pytest.raises(TypeError, match="grad_out has dtype float32 but logits has dtype float64"):
        backend.cross_entropy_backward(np.ones(4, np.float32), logits, t, reduction="none")
    with pytest.raises(ValueError, match="grad_out must be a scalar"):
        backend.cross_entropy_backward(np.ones(4), logits, t)
    with pytest.raises(TypeError, match="grad_out must be a real number"):
        backend.cross_entropy_backward("1", logits, t)


def test_both_backends_raise_identical_messages():
    bad_calls = [
        lambda B: B.softmax(np.zeros((2, 2)), 5),
        lambda B: B.cross_entropy(np.zeros((2, 3)), np.array([0, 9])),
        lambda B: B.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="x"),
    ]
    for call in bad_calls:
        messages = []
        for B in BACKENDS:
            with pytest.raises(Exception) as info:
                call(B)
            messages.append((type(info.value), str(info.value)))
        assert messages[0] == messages[1]


def test_unbatched_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    x = _x((7,), np.float64, seed=4)
    for B in BACKENDS:
        got = B.cross_entropy(x, np.array(3), label_smoothing=0.1)
        assert got.shape == ()
        want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.tensor(3),
                                                 label_smoothing=0.1)
        assert_close(got, want.numpy())
        assert B.cross_entropy(x, np.int64(3), reduction="none").shape == ()
        assert B.cross_entropy_backward(np.array(1.0), x, np.array(3),
                                        reduction="none").shape == (7,)


def test_empty_softmax_axes():
    for B in BACKENDS:
        for shape, dim in [((0, 5), -1), ((3, 0), -1), ((3, 0, 2), 1), ((0, 4), 0)]:
            x = np.zeros(shape, np.float32)
            assert B.softmax(x, dim).shape == shape
            assert B.log_softmax_backward(x, x, dim).shape == shape
