"""Every dlkern.nn layer against the same torch.nn layer with copied weights:
outputs, input gradients, parameter gradients and buffers, float32 and float64;
default initialization against torch's bounds.

A layer whose kernel has not landed in dlkern.functional/reference is skipped
(needs() below) rather than failing on an AttributeError.
"""
import math

import numpy as np
import pytest

import dlkern
import dlkern.functional  # noqa: F401  (needs() looks kernels up on both floors)
import dlkern.reference  # noqa: F401
from dlkern import nn
from dlkern.testing import assert_close

DTYPES = [np.float32, np.float64]


def needs(*names):
    missing = [n for n in names if not (hasattr(dlkern.functional, n)
                                        and hasattr(dlkern.reference, n))]
    if missing:
        pytest.skip(f"kernel(s) {missing} not merged on this branch yet")


def report(what, a, b):
    """Print the max abs difference (collected for the engineer's report with -s)."""
    diff = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) \
        if np.size(a) else 0.0
    print(f"MAXDIFF {what} {diff:.3g}")


def torch_dtype(torch, dtype):
    return torch.float32 if dtype == np.float32 else torch.float64


def copy_torch_state(torch_module, module):
    """Load the torch module's state_dict (as NumPy arrays) into the dlkern module."""
    module.load_state_dict({k: v.detach().cpu().numpy()
                            for k, v in torch_module.state_dict().items()})


def compare_with_torch(torch, module, tmodule, x, dtype, what, training=True, tol=None):
    """Forward + backward of both with the same weights; compares everything."""
    rtol, atol = (None, None) if tol is None else tol
    tmodule = tmodule.to(torch_dtype(torch, dtype))
    copy_torch_state(tmodule, module)
    module.train(training)
    tmodule.train(training)
    out = module(x)
    xt = torch.tensor(x, requires_grad=True)
    tout = tmodule(xt)
    assert out.dtype == dtype
    report(f"{what} {np.dtype(dtype).name} output", out, tout.detach().numpy())
    assert_close(out, tout.detach().numpy(), dtype=dtype, rtol=rtol, atol=atol,
                 err_msg=f"{what} output")
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    gx = module.backward(g)
    tout.backward(torch.tensor(g))
    assert gx.dtype == dtype
    report(f"{what} {np.dtype(dtype).name} grad_x", gx, xt.grad.numpy())
    assert_close(gx, xt.grad.numpy(), dtype=dtype, rtol=rtol, atol=atol,
                 err_msg=f"{what} grad_x")
    tparams = dict(tmodule.named_parameters())
    names = [n for n, _ in module.named_parameters()]
    assert names == list(tparams), "parameter names differ from torch's"
    for name, p in module.named_parameters():
        report(f"{what} {np.dtype(dtype).name} grad {name}", p.grad, tparams[name].grad.numpy())
        assert_close(p.grad, tparams[name].grad.numpy(), dtype=dtype, rtol=rtol, atol=atol,
                     err_msg=f"{what} grad of {name}")
    tbufs = dict(tmodule.named_buffers())
    for name, b in module.named_buffers():
        assert b.dtype == tbufs[name].numpy().dtype, name
        assert_close(b, tbufs[name].numpy(), dtype=b.dtype if b.dtype.kind == "f" else None,
                     err_msg=f"{what} buffer {name}")
    return out


def rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# (what, kernels needed, dlkern factory, torch factory, input shape)
CASES = [
    ("conv2d", ("conv2d", "conv2d_backward"),
     lambda d: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), dtype=d),
     lambda t: t.nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
     (2, 3, 7, 6)),
    ("conv2d-groups-same-nobias", ("conv2d", "conv2d_backward"),
     lambda d: nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False, dtype=d),
     lambda t: t.nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False),
     (2, 4, 5, 5)),
    ("linear", ("linear", "linear_backward"),
     lambda d: nn.Linear(5, 3, dtype=d), lambda t: t.nn.Linear(5, 3), (4, 5)),
    ("linear-3d-nobias", ("linear", "linear_backward"),
     lambda d: nn.Linear(5, 3, bias=False, dtype=d), lambda t: t.nn.Linear(5, 3, bias=False),
     (2, 4, 5)),
    ("maxpool", ("max_pool2d", "max_pool2d_backward"),
     lambda d: nn.MaxPool2d(3, 2, 1), lambda t: t.nn.MaxPool2d(3, 2, 1), (2, 3, 7, 6)),
    ("maxpool-ceil-dilation", ("max_pool2d", "max_pool2d_backward"),
     lambda d: nn.MaxPool2d(2, dilation=2, ceil_mode=True),
     lambda t: t.nn.MaxPool2d(2, dilation=2, ceil_mode=True), (2, 2, 7, 8)),
    ("avgpool", ("avg_pool2d", "avg_pool2d_backward"),
     lambda d: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
     lambda t: t.nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 7, 6)),
    ("avgpool-ceil-divisor", ("avg_pool2d", "avg_pool2d_backward"),
     lambda d: nn.AvgPool2d(2, ceil_mode=True, divisor_override=3),
     lambda t: t.nn.AvgPool2d(2, ceil_mode=True, divisor_override=3), (1, 2, 5, 5)),
    ("adaptive-avgpool", ("adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"),
     lambda d: nn.AdaptiveAvgPool2d((2, 3)), lambda t: t.nn.AdaptiveAvgPool2d((2, 3)),
     (2, 3, 7, 5)),
    ("relu", ("relu", "relu_backward"), lambda d: nn.ReLU(), lambda t: t.nn.ReLU(), (3, 4, 5)),
    ("leaky_relu", ("leaky_relu", "leaky_relu_backward"), lambda d: nn.LeakyReLU(0.2),
     lambda t: t.nn.LeakyReLU(0.2), (3, 4, 5)),
    ("prelu-per-channel", ("prelu", "prelu_backward"), lambda d: nn.PReLU(4, 0.1, dtype=d),
     lambda t: t.nn.PReLU(4, 0.1), (3, 4, 5)),
    ("prelu-shared", ("prelu", "prelu_backward"), lambda d: nn.PReLU(dtype=d),
     lambda t: t.nn.PReLU(), (3, 4, 2, 2)),
    ("elu", ("elu", "elu_backward"), lambda d: nn.ELU(0.7), lambda t: t.nn.ELU(0.7), (3, 4, 5)),
    ("sigmoid", ("sigmoid", "sigmoid_backward"), lambda d: nn.Sigmoid(),
     lambda t: t.nn.Sigmoid(), (3, 4, 5)),
    ("tanh", ("tanh", "tanh_backward"), lambda d: nn.Tanh(), lambda t: t.nn.Tanh(), (3, 4, 5)),
    ("softplus", ("softplus", "softplus_backward"), lambda d: nn.Softplus(2.0, 1.5),
     lambda t: t.nn.Softplus(2.0, 1.5), (3, 4, 5)),
    ("rrelu-eval", ("rrelu", "rrelu_backward"), lambda d: nn.RReLU(0.1, 0.3),
     lambda t: t.nn.RReLU(0.1, 0.3), (3, 4, 5)),
    ("flatten", (), lambda d: nn.Flatten(), lambda t: t.nn.Flatten(), (2, 3, 4, 5)),
    ("flatten-middle", (), lambda d: nn.Flatten(1, 2), lambda t: t.nn.Flatten(1, 2), (2, 3, 4, 5)),
    ("dropout-eval", (), lambda d: nn.Dropout(0.3), lambda t: t.nn.Dropout(0.3), (3, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    what, kernels, make, make_torch, shape = case
    needs(*kernels)
    torch.manual_seed(0)
    training = not (what.endswith("-eval"))
    compare_with_torch(torch, make(dtype), make_torch(torch), rand(shape, dtype), dtype, what,
                       training=training)


BN_CASES = [
    ("bn2d", lambda d: nn.BatchNorm2d(3, dtype=d), lambda t: t.nn.BatchNorm2d(3), (4, 3, 5, 4)),
    ("bn1d-2d-input", lambda d: nn.BatchNorm1d(3, dtype=d), lambda t: t.nn.BatchNorm1d(3),
     (6, 3)),
    ("bn1d-3d-input", lambda d: nn.BatchNorm1d(3, momentum=0.3, eps=1e-3, dtype=d),
     lambda t: t.nn.BatchNorm1d(3, momentum=0.3, eps=1e-3), (4, 3, 5)),
    ("bn2d-momentum-none", lambda d: nn.BatchNorm2d(3, momentum=None, dtype=d),
     lambda t: t.nn.BatchNorm2d(3, momentum=None), (4, 3, 2, 3)),
    ("bn2d-no-affine", lambda d: nn.BatchNorm2d(3, affine=False, dtype=d),
     lambda t: t.nn.BatchNorm2d(3, affine=False), (4, 3, 2, 3)),
    ("bn2d-no-tracking", lambda d: nn.BatchNorm2d(3, track_running_stats=False, dtype=d),
     lambda t: t.nn.BatchNorm2d(3, track_running_stats=False), (4, 3, 2, 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", BN_CASES, ids=[c[0] for c in BN_CASES])
def test_batchnorm_matches_torch_train_then_eval(case, dtype):
    """Three training steps (running stats, num_batches_tracked, momentum=None's
    cumulative average), then eval mode with non-trivial affine parameters."""
    torch = pytest.importorskip("torch")
    needs("batch_norm", "batch_norm_backward")
    what, make, make_torch, shape = case
    module, tmodule = make(dtype), make_torch(torch).to(torch_dtype(torch, dtype))
    if module.affine:
        with torch.no_grad():
            tmodule.weight.uniform_(0.5, 1.5)
            tmodule.bias.uniform_(-0.5, 0.5)
    copy_torch_state(tmodule, module)
    for step in range(3):
        module.zero_grad()
        tmodule.zero_grad()
        # compare_with_torch reloads torch's state each time: grads start from zero,
        # buffers are compared after every step.
        compare_with_torch(torch, module, tmodule, rand(shape, dtype, seed=step) * (step + 1)
                           + step, dtype, f"{what} train step {step}", training=True)
    if module.track_running_stats:
        assert int(module.num_batches_tracked) == 3
        assert module.num_batches_tracked.dtype == np.int64
        assert module.num_batches_tracked.shape == ()
    module.zero_grad()
    tmodule.zero_grad()
    compare_with_torch(torch, module, tmodule, rand(shape, dtype, seed=9), dtype,
                       f"{what} eval", training=False)


def test_batchnorm_momentum_none_is_cumulative_average():
    needs("batch_norm")
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    batches = [rand((5, 2), np.float64, seed=s) + s for s in range(4)]
    for b in batches:
        bn(b)
    # cumulative average of the batch means (starting from the initial 0 is
    # replaced: factor 1 on the first batch)
    assert_close(bn.running_mean, np.mean([b.mean(axis=0) for b in batches], axis=0))
    assert_close(bn.running_var, np.mean([b.var(axis=0, ddof=1) for b in batches], axis=0))


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4-D input"):
        nn.BatchNorm2d(3)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="BatchNorm1d: expected 2-D or 3-D input"):
        nn.BatchNorm1d(3)(np.zeros((2, 3, 1, 1), np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rrelu_training_draws_slopes_and_backward_reuses_them(dtype):
    needs("rrelu", "rrelu_backward")
    m = nn.RReLU(0.1, 0.3)
    x = rand((50, 40), dtype)
    out = m(x)
    neg = x < 0
    slope = out[neg] / x[neg]
    assert slope.min() >= 0.1 - 1e-6 and slope.max() <= 0.3 + 1e-6
    assert slope.std() > 0.02  # really random, not the eval constant 0.2
    assert_close(out[~neg], x[~neg])
    g = rand(x.shape, dtype, seed=3)
    gx = m.backward(g)
    assert_close(gx, g * np.where(neg, out / np.where(neg, x, 1), 1), dtype=dtype)
    m.eval()
    assert_close(m(x), np.where(neg, 0.2 * x, x).astype(dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_training_masks_scales_and_backward_reuses_mask(dtype):
    needs("dropout", "dropout_backward")
    m = nn.Dropout(0.25)
    x = rand((200, 50), dtype) + 3.0   # nonzero everywhere
    out = m(x)
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8
    assert_close(out[kept], x[kept] / 0.75, dtype=dtype)
    g = rand(x.shape, dtype, seed=2)
    gx = m.backward(g)
    assert_close(gx, np.where(kept, g / 0.75, 0).astype(dtype), dtype=dtype)
    m.eval()
    assert m(x) is x
    assert m.backward(g) is g


def test_linear_with_frozen_parameters_computes_only_grad_x():
    torch = pytest.importorskip("torch")
    needs("linear")
    m = nn.Linear(4, 3, dtype=np.float64).requires_grad_(False)
    t = torch.nn.Linear(4, 3).double()
    copy_torch_state(t, m)
    x = rand((5, 4), np.float64)
    xt = torch.tensor(x, requires_grad=True)
    g = rand((5, 3), np.float64, seed=1)
    m(x)
    t(xt).backward(torch.tensor(g))
    assert_close(m.backward(g), xt.grad.numpy())
    assert m.weight.grad is None and m.bias.grad is None


# ---- default initialization -----------------------------------------------------------

def _uniform_stats_ok(w, bound):
    w = np.asarray(w, np.float64)
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.9 * bound          # really spans the interval
    assert abs(w.mean()) < 0.1 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)


@pytest.mark.parametrize("make,make_torch,fan_in", [
    (lambda: nn.Conv2d(16, 32, 3), lambda t: t.nn.Conv2d(16, 32, 3), 16 * 9),
    (lambda: nn.Conv2d(16, 32, (3, 5), groups=4), lambda t: t.nn.Conv2d(16, 32, (3, 5),
                                                                       groups=4), 4 * 15),
    (lambda: nn.Linear(200, 50), lambda t: t.nn.Linear(200, 50), 200),
    (lambda: nn.CausalConv1d(12, 40, 3), lambda t: t.nn.Conv1d(12, 40, 3), 36),
])
def test_default_init_matches_torch_bounds(make, make_torch, fan_in):
    torch = pytest.importorskip("torch")
    m, t = make(), make_torch(torch)
    bound = 1 / math.sqrt(fan_in)
    for name, p in m.named_parameters():
        tp = dict(t.named_parameters())[name].detach().numpy()
        assert p.shape == tp.shape and p.dtype == np.float32
        if name == "weight":
            _uniform_stats_ok(p.data, bound)
            _uniform_stats_ok(tp, bound)   # the oracle obeys the same bound
        else:
            assert np.abs(p.data).max() <= bound and np.abs(tp).max() <= bound


def test_default_init_of_norm_and_prelu():
    torch = pytest.importorskip("torch")
    for m, t in [(nn.BatchNorm2d(5), torch.nn.BatchNorm2d(5)),
                 (nn.BatchNorm1d(5, affine=False), torch.nn.BatchNorm1d(5, affine=False)),
                 (nn.PReLU(3), torch.nn.PReLU(3))]:
        theirs = t.state_dict()
        ours = m.state_dict()
        assert list(ours) == list(theirs)
        for k, v in ours.items():
            np.testing.assert_array_equal(v, theirs[k].numpy())


def test_float64_modules_have_float64_parameters():
    for m in [nn.Conv2d(2, 3, 3, dtype=np.float64), nn.Linear(2, 3, dtype=np.float64),
              nn.BatchNorm2d(2, dtype=np.float64), nn.PReLU(dtype=np.float64),
              nn.CausalConv1d(2, 3, 2, dtype=np.float64)]:
        for _, v in m.state_dict().items():
            assert v.dtype in (np.float64, np.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(2, 3, dtype=np.int32)


def test_seeding_dlkern_random_makes_init_reproducible():
    rnd = pytest.importorskip("dlkern.random")
    rnd.seed(123)
    a = nn.Conv2d(3, 4, 3).weight.data.copy()
    rnd.seed(123)
    b = nn.Conv2d(3, 4, 3).weight.data.copy()
    c = nn.Conv2d(3, 4, 3).weight.data.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_conv2d_rejects_bad_constructor_arguments():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="Dropout: p must be in"):
        nn.Dropout(1.5)
