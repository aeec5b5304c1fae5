"""The backend switch: dlkern.use_backend as a setter and as a context manager, and
the same model on the C kernels and on the NumPy reference."""
import numpy as np
import pytest

import dlkern
import dlkern.functional  # noqa: F401  (needs() looks kernels up on both floors)
import dlkern.reference  # noqa: F401
from dlkern import nn
from dlkern.nn import backend
from dlkern.testing import assert_close


def needs(*names):
    missing = [n for n in names if not (hasattr(dlkern.functional, n)
                                        and hasattr(dlkern.reference, n))]
    if missing:
        pytest.skip(f"kernel(s) {missing} not merged on this branch yet")


@pytest.fixture(autouse=True)
def restore_backend():
    yield
    dlkern.use_backend("c")


def test_context_manager_switches_and_restores():
    assert backend.backend_name() == "c" and backend.get_backend() is dlkern.functional
    with dlkern.use_backend("reference") as b:
        assert b.name == "reference"
        assert backend.get_backend() is dlkern.reference
        with dlkern.use_backend("c"):
            assert backend.get_backend() is dlkern.functional
        assert backend.get_backend() is dlkern.reference
    assert backend.get_backend() is dlkern.functional


def test_context_restores_after_an_exception():
    with pytest.raises(KeyError):
        with dlkern.use_backend("reference"):
            raise KeyError("boom")
    assert backend.backend_name() == "c"


def test_plain_call_sets_globally_and_aliases_work():
    dlkern.use_backend("reference")
    assert backend.backend_name() == "reference"
    dlkern.use_backend("functional")
    assert backend.backend_name() == "c"
    dlkern.use_backend("numpy")
    assert backend.get_backend() is dlkern.reference


@pytest.mark.parametrize("bad", ["torch", "C", "", None, 3])
def test_unknown_backend_raises_value_error_and_changes_nothing(bad):
    with pytest.raises(ValueError, match="unknown backend"):
        dlkern.use_backend(bad)
    assert backend.backend_name() == "c"


def test_modules_call_the_selected_backend(monkeypatch):
    calls = []

    def spy(name):
        def f(x, *a, **k):
            calls.append(name)
            return x
        return f

    for mod, name in [(dlkern.functional, "c"), (dlkern.reference, "reference")]:
        monkeypatch.setattr(mod, "relu", spy(name), raising=False)
        monkeypatch.setattr(mod, "relu_backward", spy(name + " backward"), raising=False)
    m = nn.ReLU()
    x = np.ones(3, np.float32)
    m(x)
    with dlkern.use_backend("reference"):
        m(x)
        m.backward(x)
    m.backward(x)
    assert calls == ["c", "reference", "reference backward", "c backward"]


def test_same_model_same_results_on_both_backends():
    needs("conv2d", "conv2d_backward", "batch_norm", "batch_norm_backward", "relu",
          "relu_backward", "max_pool2d", "max_pool2d_backward", "linear", "linear_backward",
          "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "cross_entropy",
          "cross_entropy_backward", "causal_conv1d", "causal_conv1d_backward", "dropout",
          "dropout_backward")
    for dtype in (np.float32, np.float64):
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=dtype),
                              nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
                              nn.ResidualBlock(4, 6, 2, dtype=dtype), nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(), nn.Linear(6, 3, dtype=dtype))
        tcn = nn.TCN(2, [3, 3], kernel_size=3, dropout=0.0, dtype=dtype)
        rng = np.random.default_rng(0)
        cases = [(model, rng.standard_normal((4, 2, 8, 8)).astype(dtype)),
                 (tcn, rng.standard_normal((2, 2, 12)).astype(dtype))]
        for net, x in cases:
            state = net.state_dict()
            results = {}
            for name in ("c", "reference"):
                net.load_state_dict(state)          # same running stats for both
                net.zero_grad()
                with dlkern.use_backend(name):
                    out = net(x)
                    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
                    gx = net.backward(g)
                results[name] = (out, gx, {n: p.grad for n, p in net.named_parameters()},
                                 net.state_dict())
            (o1, g1, p1, s1), (o2, g2, p2, s2) = results["c"], results["reference"]
            assert_close(o1, o2, dtype=dtype)
            assert_close(g1, g2, dtype=dtype)
            for n in p1:
                assert_close(p1[n], p2[n], dtype=dtype, err_msg=n)
            for n in s1:
                assert_close(s1[n], s2[n], err_msg=n)
        loss = nn.CrossEntropyLoss(label_smoothing=0.1)
        logits = rng.standard_normal((5, 3)).astype(dtype)
        target = np.array([0, 2, 1, 1, 0])
        ref_v = loss(logits, target)
        ref_g = loss.backward()
        with dlkern.use_backend("reference"):
            assert_close(loss(logits, target), ref_v, dtype=dtype)
            assert_close(loss.backward(), ref_g, dtype=dtype)
