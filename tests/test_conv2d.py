"""conv2d forward and backward: both C algorithms against the NumPy reference,
finite differences, PyTorch, bad inputs, layouts, threads and im2col chunking."""
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close, conv2d_case_id, numerical_gradient

ALGOS = ["direct", "im2col", "auto"]
DTYPES = [np.float32, np.float64]
conv_module = importlib.import_module("dlkern.functional.conv2d")

# (x shape, weight shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 7, 9), (4, 3, 2, 5), 1, 0, 1, 1),                 # non-square kernel 2x5
    ((2, 2, 8, 6), (3, 2, 3, 1), 1, (1, 0), 1, 1),            # 3x1 kernel, padding pair
    ((1, 3, 11, 10), (2, 3, 2, 2), 3, 0, 1, 1),               # stride > kernel, batch 1
    ((2, 2, 9, 9), (4, 2, 3, 3), 1, 2, 2, 1),                 # dilation with padding
    ((2, 4, 8, 7), (6, 2, 3, 3), 1, 1, 1, 2),                 # groups=2
    ((2, 6, 7, 7), (9, 2, 3, 2), (2, 1), 1, 1, 3),            # groups=3, odd OC per group
    ((2, 5, 9, 8), (5, 1, 3, 3), 1, 1, 1, 5),                 # depthwise
    ((2, 4, 8, 8), (8, 1, 3, 3), 2, 1, 1, 4),                 # depthwise, multiplier 2
    ((3, 2, 1, 1), (5, 2, 1, 1), 1, 0, 1, 1),                 # 1x1 input, 1x1 kernel
    ((2, 3, 1, 1), (4, 3, 3, 3), 1, 1, 1, 1),                 # 1x1 input, padded 3x3
    ((2, 8, 6, 5), (4, 8, 1, 1), 1, 0, 1, 1),                 # pointwise (no im2col)
    ((2, 8, 6, 5), (4, 4, 1, 1), 1, 0, 1, 2),                 # pointwise grouped
    ((2, 4, 7, 7), (4, 4, 1, 1), 2, 1, 1, 1),                 # 1x1 strided and padded
    ((2, 3, 12, 11), (4, 3, 3, 2), (3, 2), (2, 0), (1, 3), 1),  # asymmetric everything
    ((1, 2, 5, 20), (3, 2, 2, 4), (1, 4), (0, 3), (2, 2), 1),   # wide input, stride 4
    ((2, 3, 6, 6), (4, 3, 6, 6), 1, 0, 1, 1),                 # kernel == input: 1x1 output
    ((2, 3, 5, 5), (4, 3, 4, 4), 2, 3, 2, 1),                 # kernel bigger than input, padded
    ((2, 3, 7, 6), (4, 3, 2, 4), 1, "same", (2, 1), 1),       # "same", asymmetric padding
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, "valid", 1, 1),           # "valid"
    ((2, 3, 5, 5), (4, 3, 2, 2), 1, 2, 1, 1),                 # padding beyond the kernel reach
    ((2, 16, 6, 40), (16, 16, 3, 3), 1, 1, 1, 1),             # 8-channel tiles, wide rows
    ((1, 9, 5, 33), (9, 3, 2, 3), (1, 3), (1, 2), (2, 1), 3),   # stride-3 tiles, 2+1 channels
]


def _data(case, dtype, seed=0, bias=True):
    xs, ws, s, p, d, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=conv2d_case_id)
def test_forward_and_backward_match_reference(case, dtype):
    x, w, b, kw = _data(case, dtype)
    y_ref = R.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    grads_ref = R.conv2d_backward(gy, x, w, **kw)
    assert grads_ref[2].shape == (w.shape[0],)
    for algo in ALGOS:
        y = F.conv2d(x, w, b, algo=algo, **kw)
        assert y.dtype == dtype
        assert_close(y, y_ref, err_msg=f"forward {algo}")
        grads = F.conv2d_backward(gy, x, w, algo=algo, **kw)
        for name, got, exp in zip(("grad_x", "grad_weight", "grad_bias"), grads, grads_ref):
            assert got.dtype == dtype
            assert_close(got, exp, err_msg=f"{name} {algo}")


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 3))
    ocg = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - 2 * ph), 12))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - 2 * pw), 12))
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    return ((n, groups * cg, h, w), (groups * ocg, cg, kh, kw), (sh, sw), (ph, pw),
            (dh, dw), groups), dtype, seed


@settings(max_examples=25, deadline=None)
@given(conv_configs())
def test_hypothesis_configs_match_reference(config):
    case, dtype, seed = config
    x, w, b, kw = _data(case, dtype, seed)
    y_ref = R.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(seed + 1).standard_normal(y_ref.shape).astype(dtype)
    grads_ref = R.conv2d_backward(gy, x, w, **kw)
    for algo in ("direct", "im2col"):
        assert_close(F.conv2d(x, w, b, algo=algo, **kw), y_ref)
        for got, exp in zip(F.conv2d_backward(gy, x, w, algo=algo, **kw), grads_ref):
            assert_close(got, exp)


GRADCHECK_CASES = [
    ((2, 2, 5, 4), (3, 2, 2, 3), (2, 1), 1, (1, 2), 1),
    ((1, 4, 4, 5), (4, 2, 3, 2), 1, (0, 1), 1, 2),
    ((2, 3, 4, 4), (3, 1, 3, 3), 2, 1, 1, 3),
]


@pytest.mark.parametrize("impl", ["reference", "direct", "im2col"])
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=conv2d_case_id)
def test_finite_difference_gradients(case, impl):
    x, w, b, kw = _data(case, np.float64, seed=3)
    mod, algo = (R, "auto") if impl == "reference" else (F, impl)
    y = mod.conv2d(x, w, b, algo=algo, **kw)
    # L = sum(y * c) for a fixed random c, so dL/dy = c
    c = np.random.default_rng(4).standard_normal(y.shape)

    def loss():
        return float(np.sum(mod.conv2d(x, w, b, algo=algo, **kw) * c))

    gx, gw, gb = mod.conv2d_backward(c, x, w, algo=algo, **kw)
    for analytic, param in ((gx, x), (gw, w), (gb, b)):
        assert_close(analytic, numerical_gradient(loss, param), rtol=1e-6, atol=1e-7)


def _torch_random_config(rng):
    groups = int(rng.integers(1, 4))
    cg, ocg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    s = tuple(int(v) for v in rng.integers(1, 4, 2))
    d = tuple(int(v) for v in rng.integers(1, 3, 2))
    p = tuple(int(v) for v in rng.integers(0, 3, 2))
    hw = tuple(max(int(rng.integers(1, 14)), (kk - 1) * dd + 1 - 2 * pp)
               for kk, dd, pp in zip(k, d, p))
    n = int(rng.integers(1, 4))
    return ((n, groups * cg) + hw, (groups * ocg, cg) + k, s, p, d, groups)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(8))
def test_torch_oracle_forward_and_autograd(seed, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 + seed)
    case = _torch_random_config(rng)
    x, w, b, kw = _data(case, dtype, seed)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    for algo in ALGOS:
        assert_close(F.conv2d(x, w, b, algo=algo, **kw), ty.detach().numpy())
        grads = F.conv2d_backward(gy, x, w, algo=algo, **kw)
        for got, t in zip(grads, (tx, tw, tb)):
            assert_close(got, t.grad.numpy())
    assert_close(R.conv2d(x, w, b, **kw), ty.detach().numpy())


def test_torch_oracle_padding_strings():
    torch = pytest.importorskip("torch")
    case = ((2, 3, 7, 6), (4, 3, 2, 4), 1, "same", (2, 1), 1)
    x, w, b, kw = _data(case, np.float64)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                          torch.from_numpy(b), **kw).numpy()
    for mod in (F, R):
        assert_close(mod.conv2d(x, w, b, **kw), expected)
    assert F.conv2d(x, w, padding="valid").shape == (2, 4, 6, 3)


@pytest.mark.parametrize("algo", ["direct", "im2col"])
@pytest.mark.parametrize("order", ["F", "strided"])
def test_non_contiguous_and_fortran_inputs(order, algo):
    x, w, b, kw = _data(((2, 4, 7, 6), (6, 2, 3, 2), (2, 1), 1, (1, 2), 2), np.float32)
    y_ref = R.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(5).standard_normal(y_ref.shape).astype(np.float32)
    grads_ref = R.conv2d_backward(gy, x, w, **kw)

    def relayout(a):
        if order == "F":
            return np.asfortranarray(a)
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        big[tuple(slice(None, None, 2) for _ in a.shape)] = a
        return big[tuple(slice(None, None, 2) for _ in a.shape)]

    xs, ws, bs, gys = relayout(x), relayout(w), relayout(b), relayout(gy)
    assert not xs.flags.c_contiguous and not gys.flags.c_contiguous
    assert_close(F.conv2d(xs, ws, bs, algo=algo, **kw), y_ref)
    assert_close(R.conv2d(xs, ws, bs, **kw), y_ref)
    for got, exp in zip(F.conv2d_backward(gys, xs, ws, algo=algo, **kw), grads_ref):
        assert_close(got, exp)


@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_one_and_two_threads_bit_identical(algo):
    x, w, b, kw = _data(((5, 6, 17, 15), (8, 3, 3, 3), 1, 1, 1, 2), np.float32)
    gy = np.random.default_rng(6).standard_normal((5, 8, 17, 15)).astype(np.float32)
    results = []
    try:
        for n in (1, 2):
            dlkern.set_num_threads(n)
            results.append((F.conv2d(x, w, b, algo=algo, **kw),)
                           + F.conv2d_backward(gy, x, w, algo=algo, **kw))
    finally:
        dlkern.set_num_threads(None)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_chunked_equals_unchunked(monkeypatch, dtype):
    case = ((7, 4, 9, 8), (6, 2, 3, 2), (1, 2), 1, (2, 1), 2)
    x, w, b, kw = _data(case, dtype)
    gy = np.random.default_rng(7).standard_normal(R.conv2d(x, w, **kw).shape).astype(dtype)
    whole = (F.conv2d(x, w, b, algo="im2col", **kw),) + F.conv2d_backward(
        gy, x, w, algo="im2col", **kw)
    # one sample of one group: 2*3*2 rows x 9*4 columns; allow 3 samples -> chunks 3, 3, 1
    per_sample = 2 * 3 * 2 * 9 * 4 * np.dtype(dtype).itemsize
    for limit in (3 * per_sample, 1):
        monkeypatch.setattr(conv_module, "IM2COL_MAX_BYTES", limit)
        chunked = (F.conv2d(x, w, b, algo="im2col", **kw),) + F.conv2d_backward(
            gy, x, w, algo="im2col", **kw)
        for a, c in zip(whole, chunked):
            # grad_weight sums samples in the same order either way: bitwise equal
            np.testing.assert_array_equal(a, c)


def test_auto_choice_documented_rule():
    choose = conv_module._choose_algo
    from dlkern._args.conv2d import parse

    def pick(xs, ws, groups=1, stride=1, padding=1):
        return choose(parse("conv2d", np.zeros(xs, np.float32), np.zeros(ws, np.float32),
                            None, stride, padding, 1, groups, "auto"))
    # short reductions and thin GEMMs: direct
    assert pick((1, 64, 32, 32), (64, 1, 3, 3), groups=64) == "direct"  # depthwise
    assert pick((1, 3, 32, 32), (32, 3, 3, 3)) == "direct"  # 27 taps
    assert pick((1, 1, 28, 28), (6, 1, 5, 5), padding=0) == "direct"  # 25 taps
    assert pick((1, 64, 32, 32), (4, 64, 3, 3)) == "direct"  # 4 output channels
    assert pick((1, 64, 32, 32), (8, 8, 3, 3), groups=8) == "direct"  # 1 per group
    # every GEMM-bound layer: im2col
    assert pick((1, 33, 8, 8), (5, 33, 1, 1), padding=0) == "im2col"  # 33 taps, 5 out
    assert pick((1, 64, 32, 32), (64, 64, 3, 3)) == "im2col"
    assert pick((1, 64, 32, 32), (128, 64, 3, 3), stride=2) == "im2col"
    assert pick((1, 128, 16, 16), (256, 128, 1, 1), padding=0) == "im2col"
    assert pick((1, 64, 8, 8), (64, 64, 3, 3)) == "im2col"
    assert pick((1, 128, 224, 224), (64, 128, 3, 3)) == "im2col"
    # an explicit algo is taken as given
    a = parse("conv2d", np.zeros((1, 64, 8, 8), np.float32), np.zeros((64, 64, 3, 3),
              np.float32), None, 1, 1, 1, 1, "direct")
    assert choose(a) == "direct"


@pytest.mark.parametrize("dtype", DTYPES)
def test_auto_matches_reference_on_each_branch(dtype):
    # one shape per branch of the rule: short reduction, thin GEMM, GEMM-bound
    for case in [((2, 3, 9, 17), (8, 3, 3, 3), 1, 1, 1, 1),
                 ((2, 12, 9, 17), (4, 12, 3, 2), 1, (1, 0), (2, 1), 1),
                 ((2, 12, 9, 17), (10, 12, 3, 2), 1, (1, 0), (2, 1), 1)]:
        x, w, b, kw = _data(case, dtype)
        y = R.conv2d(x, w, b, **kw)
        assert_close(F.conv2d(x, w, b, **kw), y)
        gy = np.random.default_rng(9).standard_normal(y.shape).astype(dtype)
        for got, exp in zip(F.conv2d_backward(gy, x, w, **kw), R.conv2d_backward(gy, x, w, **kw)):
            assert_close(got, exp)
    x = np.zeros((1, 64, 8, 8), np.float32)
    with pytest.raises(ValueError, match="algo must be one of"):
        F.conv2d(x, np.zeros((64, 64, 3, 3), np.float32), algo="Direct")


# Shapes aimed at the branches of the im2col kernels (src/conv2d_im2col.c): the
# micro-kernel tile is 8 output channels x 2 vectors of 16 float32 / 8 float64
# pixels; blocks of 256 / 128 pixels; reduction blocks of <= 256; the column
# panels are read in place when OW is a multiple of the vector width, packed
# otherwise; grad_weight tiles are 4 channels x 6 taps over groups of 4 samples.
IM2COL_CASES = [
    ((2, 5, 3, 16), (13, 5, 3, 3), 1, 1, 1, 1),      # in place, 48 px: lone last vector, 13 out
    ((3, 4, 3, 8), (9, 4, 3, 3), 1, 1, 1, 1),        # float64 in place, 24 px: lone vector
    ((1, 3, 20, 16), (8, 3, 3, 3), 1, 1, 1, 1),      # 320 px: two blocks, second window lower
    ((1, 3, 19, 17), (8, 3, 3, 3), 1, 1, 1, 1),      # packed, 323 px, runs split at panels
    ((2, 4, 32, 32), (10, 4, 3, 3), 2, 1, 1, 1),     # strided, in place (OW 16), phases
    ((2, 4, 15, 15), (10, 4, 3, 3), 2, 1, 1, 1),     # strided, packed (OW 8 in float32)
    ((2, 4, 16, 32), (6, 2, 3, 3), 1, 2, 2, 2),      # dilation and groups, in place
    ((1, 32, 6, 7), (12, 32, 3, 3), 1, 1, 1, 1),     # K = 288: two reduction blocks
    ((2, 3, 6, 6), (260, 3, 1, 1), 2, 1, 1, 1),      # strided grad_x, 2 reduction blocks
    # strided grad_x by input phase: taps per phase, shifts, empty phases
    ((2, 3, 9, 11), (5, 3, 2, 2), 3, 0, 1, 1),       # stride > kernel: a phase no tap reaches
    ((1, 2, 1, 5), (4, 2, 1, 3), 2, (0, 1), 1, 1),   # one row: row phase 1 is empty
    ((2, 4, 13, 14), (6, 2, 5, 4), (2, 3), (3, 1), (3, 2), 2),  # dilation across phases, groups
    ((1, 3, 8, 8), (4, 3, 3, 3), 2, 4, 1, 1),        # padding beyond the kernel: shifts > 0
    ((2, 3, 12, 10), (7, 3, 4, 2), (4, 2), (1, 0), 1, 1),  # stride 4 rows: one tap per phase
    ((5, 6, 7, 9), (7, 6, 2, 3), (2, 3), (1, 2), (2, 1), 1),  # 5 samples: a group of 1
    ((6, 4, 5, 16), (5, 4, 1, 1), 1, 0, 1, 1),       # 1x1, in place, 6 samples
    # grad_weight of a plain 1x1 as one dlk_gemm per (sample, group)
    ((3, 10, 13, 17), (19, 10, 1, 1), 1, 0, 1, 1),   # partial tiles, HW 221: two K blocks
    ((2, 6, 5, 7), (9, 2, 1, 1), 1, 0, 2, 3),        # groups, dilation (no effect at 1x1)
    ((1, 50, 1, 3), (3, 50, 1, 1), 1, 0, 1, 1),      # one sample, 3 pixels, 3 outputs
    ((2, 4, 5, 5), (6, 4, 3, 3), 1, 3, 1, 1),        # padding beyond the kernel: grad_x pad < 0
    ((1, 2, 1, 1), (3, 2, 1, 1), 1, 0, 1, 1),        # single pixel, batch of one
    ((1, 70, 40, 1), (9, 70, 5, 1), (3, 1), (2, 0), 1, 1),  # one column, stride 3 rows
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", IM2COL_CASES, ids=conv2d_case_id)
def test_im2col_branches_match_reference(case, dtype):
    x, w, b, kw = _data(case, dtype, seed=11)
    y_ref = R.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(12).standard_normal(y_ref.shape).astype(dtype)
    assert_close(F.conv2d(x, w, b, algo="im2col", **kw), y_ref)
    assert_close(F.conv2d(x, w, None, algo="im2col", **kw), R.conv2d(x, w, None, **kw))
    for name, got, exp in zip(("grad_x", "grad_weight", "grad_bias"),
                              F.conv2d_backward(gy, x, w, algo="im2col", **kw),
                              R.conv2d_backward(gy, x, w, **kw)):
        assert_close(got, exp, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_grad_weight_independent_of_budget(monkeypatch, dtype):
    # 9 samples: chunks of 4+4+1 (tiny budget), 8+1 or 9 must give the same bits
    case = ((9, 4, 6, 8), (6, 4, 3, 3), 1, 1, 1, 1)
    x, w, b, kw = _data(case, dtype)
    gy = np.random.default_rng(13).standard_normal(R.conv2d(x, w, **kw).shape).astype(dtype)
    results = []
    for limit in (1, 8 * 5000 * np.dtype(dtype).itemsize, 2**30):
        monkeypatch.setattr(conv_module, "IM2COL_MAX_BYTES", limit)
        results.append(F.conv2d_backward(gy, x, w, algo="im2col", **kw))
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    ((3, 64, 32, 32), (64, 64, 3, 3), 1, 1, 1, 1),    # in place, several blocks
    ((3, 64, 32, 32), (128, 64, 3, 3), 2, 1, 1, 1),   # strided: col2im grad_x
    ((5, 128, 16, 16), (256, 128, 1, 1), 1, 0, 1, 1),  # 1x1, 5 samples
    ((2, 48, 28, 28), (40, 24, 3, 3), 1, 1, 1, 2),    # packed panels, groups
    ((3, 96, 24, 24), (160, 48, 1, 1), 1, 0, 1, 2),   # 1x1 grad_weight GEMMs, parallel
], ids=conv2d_case_id)
def test_im2col_one_and_two_threads_bit_identical_gemm_sized(case, dtype):
    x, w, b, kw = _data(case, dtype, seed=14)
    gy = np.random.default_rng(15).standard_normal(R.conv2d(x[:1], w, **kw).shape[1:])
    gy = np.broadcast_to(gy, (x.shape[0],) + gy.shape).astype(dtype)
    results = []
    try:
        for threads in (1, 2):
            dlkern.set_num_threads(threads)
            results.append((F.conv2d(x, w, b, algo="im2col", **kw),)
                           + F.conv2d_backward(gy, x, w, algo="im2col", **kw))
    finally:
        dlkern.set_num_threads(None)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


#: DLK_DIRECT_PAD_BYTES in src/conv2d_direct.c: the blocked direct forward copies
#: one (sample, group) into zero-padded planes of at most this size per thread,
#: else it runs the copy-free plane-axpy forward.
DIRECT_PAD_BYTES = 16 * 2**20


def _direct_pad_bytes(cg, h, w, oh, ow, kh, kw, stride, dilation, top, left, itemsize):
    """Bytes of the direct forward's padded, phase-split planes for one (sample,
    group): direct_phase_dims in src/conv2d_direct_tmpl.h, rows of whole pairs of
    16-column vectors plus the kernel's reach."""
    (sh, sw), (dh, dw) = stride, dilation
    wq = max(-(-(w + left) // sw), 2 * -(-ow // 32) * 16 + (kw - 1) * dw // sw)
    hp = max(h + top, (oh - 1) * sh + (kh - 1) * dh + 1)
    return cg * hp * sw * wq * itemsize


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_large_planes_fallback(dtype):
    # padded planes above the direct forward's 16 MiB per-thread budget (many
    # channels, each padded to 6 x 34): the copy-free plane-axpy forward runs.
    x, w, b, kw = _data(((1, 25000, 4, 4), (2, 25000, 3, 3), 1, 1, 1, 1), dtype)
    assert _direct_pad_bytes(25000, 4, 4, 4, 4, 3, 3, (1, 1), (1, 1), 1, 1,
                             x.itemsize) > DIRECT_PAD_BYTES
    y_ref = R.conv2d(x, w, b, **kw)
    assert_close(F.conv2d(x, w, b, algo="direct", **kw), y_ref)
    gy = np.random.default_rng(8).standard_normal(y_ref.shape).astype(dtype)
    for got, exp in zip(F.conv2d_backward(gy, x, w, algo="direct", **kw),
                        R.conv2d_backward(gy, x, w, **kw)):
        assert_close(got, exp)


def test_empty_batch():
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    for algo in ("direct", "im2col"):
        assert F.conv2d(x, w, algo=algo).shape == (0, 3, 3, 3)
        gx, gw, gb = F.conv2d_backward(np.zeros((0, 3, 3, 3), np.float32), x, w, algo=algo)
        assert gx.shape == x.shape
        np.testing.assert_array_equal(gw, 0)
        np.testing.assert_array_equal(gb, 0)


# ---------------------------------------------------------------- bad inputs
X = np.zeros((2, 4, 8, 8), np.float32)
Wt = np.zeros((6, 4, 3, 3), np.float32)
BAD_FORWARD = [
    (dict(x=X.astype(np.float64)), TypeError, "weight has dtype float32 but x has dtype float64"),
    (dict(x=X.astype(np.int32), weight=Wt.astype(np.int32)), TypeError,
     "x must be float32 or float64, got dtype int32"),
    (dict(x=X.tolist()), TypeError, "x must be a NumPy array"),
    (dict(bias=np.zeros(6, np.float64)), TypeError, "bias has dtype float64"),
    (dict(x=X[0]), ValueError, r"x must be 4-D \(N, C, H, W\), got shape \(4, 8, 8\)"),
    (dict(weight=Wt[0]), ValueError, "weight must be 4-D"),
    (dict(bias=np.zeros((6, 1), np.float32)), ValueError, "bias must be 1-D"),
    (dict(bias=np.zeros(5, np.float32)), ValueError, r"bias must have shape \(6,\)"),
    (dict(weight=np.zeros((6, 3, 3, 3), np.float32)), ValueError,
     "weight has 3 input channels per group but x has 4 channels and groups=1"),
    (dict(groups=3, weight=np.zeros((6, 1, 3, 3), np.float32)), ValueError,
     "x has 4 channels, which is not divisible by groups=3"),
    (dict(groups=4, weight=np.zeros((6, 1, 3, 3), np.float32)), ValueError,
     "weight has 6 output channels, which is not divisible by groups=4"),
    (dict(groups=0), ValueError, "groups must be >= 1"),
    (dict(weight=np.zeros((6, 4, 9, 3), np.float32)), ValueError,
     "kernel height 9 with dilation 1 spans 9 pixels, more than the padded input height"),
    (dict(weight=np.zeros((6, 4, 3, 3), np.float32), dilation=(1, 5)), ValueError,
     "kernel width 3 with dilation 5 spans 11 pixels"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(stride=(1, -1)), ValueError, "stride must be >= 1"),
    (dict(dilation=0), ValueError, "dilation must be >= 1"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(padding=(1, 2, 3)), ValueError, "padding must be an int or a sequence of 2"),
    (dict(padding=1.5), TypeError, "padding must be an int"),
    (dict(padding="full"), ValueError, "padding must be an int, a pair of ints, 'same'"),
    (dict(padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
    (dict(algo="winograd"), ValueError, "algo must be one of"),
    (dict(weight=np.zeros((0, 4, 3, 3), np.float32)), ValueError, "no zero-sized dimension"),
]


@pytest.mark.parametrize("mod", [F, R], ids=["functional", "reference"])
@pytest.mark.parametrize("kwargs,exc,match", BAD_FORWARD)
def test_bad_forward_inputs(mod, kwargs, exc, match):
    args = dict(x=X, weight=Wt, bias=None)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        mod.conv2d(**args)


@pytest.mark.parametrize("mod", [F, R], ids=["functional", "reference"])
def test_bad_backward_inputs(mod):
    gy = np.zeros((2, 6, 6, 6), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_backward: grad_out must have shape "
                                         r"\(2, 6, 6, 6\).*got \(2, 6, 5, 6\)"):
        mod.conv2d_backward(gy[:, :, :5], X, Wt)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 6, 8, 8\)"):
        mod.conv2d_backward(gy, X, Wt, padding=1)
    with pytest.raises(TypeError, match="grad_out has dtype float64 but x has dtype float32"):
        mod.conv2d_backward(gy.astype(np.float64), X, Wt)
    with pytest.raises(ValueError, match="grad_out must be 4-D"):
        mod.conv2d_backward(gy[0], X, Wt)
    with pytest.raises(ValueError, match="weight has 3 input channels per group"):
        mod.conv2d_backward(gy, X, Wt[:, :3])
    with pytest.raises(ValueError, match="algo must be one of"):
        mod.conv2d_backward(gy, X, Wt, algo="fft")


@pytest.mark.parametrize("algo", ["im2col", "auto"])
def test_threads_bit_identical_at_blas_sizes(algo):
    """Large enough that a multithreaded OpenBLAS would split the GEMM differently for
    1 and 2 threads (and round differently): results must still be identical."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 64, 32, 32)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((4, 64, 32, 32)).astype(np.float32)
    results = {}
    try:
        for threads in (1, 2):
            dlkern.set_num_threads(threads)
            y = F.conv2d(x, w, padding=1, algo=algo)
            results[threads] = (y,) + F.conv2d_backward(gy, x, w, padding=1, algo=algo)
    finally:
        dlkern.set_num_threads(None)
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("case", [
    ((2, 2, 10, 20), (9, 2, 3, 3), 2, 0, 1, 1),     # last row and column unread
    ((1, 3, 4, 111), (9, 3, 2, 2), 3, 0, 1, 1),     # stride 3: column 110 unread
    ((2, 2, 3, 12), (9, 2, 1, 3), 1, 0, (1, 5), 1),  # dilation 5: columns 2-4, 7-9 unread
], ids=["stride2", "stride3-wide", "dilation-gaps"])
def test_im2col_unread_elements_do_not_reach_results(case, bad, dtype):
    """x elements no output reads influence no result (as in torch): the im2col
    grad_weight reads them in the slack columns of its padded planes, where
    grad_out is zero, and must not multiply them (0 * inf is NaN)."""
    x, w, b, kw = _data(case, dtype, seed=3)
    y = R.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
    # which x elements some output reads, at some tap
    read = R.conv2d_backward(np.ones_like(y), np.ones_like(x), np.ones_like(w), **kw)[0] != 0
    assert not read.all()
    x_bad = np.where(read, x, dtype(bad))
    clean = (F.conv2d(x, w, b, algo="im2col", **kw),) + tuple(
        F.conv2d_backward(gy, x, w, algo="im2col", **kw))
    got = (F.conv2d(x_bad, w, b, algo="im2col", **kw),) + tuple(
        F.conv2d_backward(gy, x_bad, w, algo="im2col", **kw))
    for name, g, c in zip(("y", "grad_x", "grad_weight", "grad_bias"), got, clean):
        assert np.all(np.isfinite(g)), name
        np.testing.assert_array_equal(g, c, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_grad_weight_taps_that_skip_a_bad_element_stay_exact(algo, dtype):
    """An inf in x that some taps read (and others reach only as padding, e.g. the
    last column for the left tap): the grad_weight entries of the taps that never
    read it equal the clean result bit for bit, as in torch; the others are not
    finite."""
    case = ((2, 3, 9, 11), (10, 3, 3, 3), 1, 1, 1, 1)
    x, w, b, kw = _data(case, dtype, seed=5)
    gy = np.random.default_rng(6).standard_normal((2, 10, 9, 11)).astype(dtype)
    x_bad = x.copy()
    x_bad[1, 2, 4, 10] = np.inf   # last column: tap kw=0 never reads it
    clean = F.conv2d_backward(gy, x, w, algo=algo, **kw)[1]
    got = F.conv2d_backward(gy, x_bad, w, algo=algo, **kw)[1]
    skip = np.zeros(w.shape, bool)
    skip[:, :, :, 0] = True     # column 10 + 1 - 0 = output column 11: none
    skip[:, :2] = True          # other input channels
    np.testing.assert_array_equal(got[skip], clean[skip])
    assert not np.isfinite(got[~skip]).any()
