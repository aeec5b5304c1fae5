"""CrossEntropyLoss, MSELoss and BCEWithLogitsLoss against torch (values and
gradients), stability for huge logits, and errors."""
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
    print(f"MAXDIFF {what} {float(np.max(np.abs(np.asarray(a, float) - np.asarray(b)))):.3g}")


def torch_loss_and_grad(torch, tloss, pred, target, grad_out):
    pt = torch.tensor(pred, requires_grad=True)
    out = tloss(pt, torch.as_tensor(target))
    out.backward(torch.as_tensor(grad_out, dtype=out.dtype).expand_as(out)
                 if np.ndim(grad_out) == 0 else torch.as_tensor(grad_out))
    return out.detach().numpy(), pt.grad.numpy()


def check(torch, loss, tloss, pred, target, dtype, what, grad_out=1.0):
    value = loss(pred, target)
    assert np.asarray(value).dtype == dtype
    grad = loss.backward(grad_out) if np.ndim(grad_out) else loss.backward()
    assert grad.dtype == dtype and grad.shape == pred.shape
    tvalue, tgrad = torch_loss_and_grad(torch, tloss, pred, target, grad_out)
    report(f"{what} {np.dtype(dtype).name} loss", value, tvalue)
    report(f"{what} {np.dtype(dtype).name} grad", grad, tgrad)
    assert_close(value, tvalue, dtype=dtype, err_msg=f"{what} loss")
    assert_close(grad, tgrad, dtype=dtype, err_msg=f"{what} grad")


CE_KW = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(label_smoothing=0.1),
         dict(ignore_index=2), dict(weight=[1.0, 2.0, 0.5, 1.5]),
         dict(weight=[1.0, 2.0, 0.5, 1.5], ignore_index=0, label_smoothing=0.2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CE_KW, ids=[str(k) for k in CE_KW])
def test_cross_entropy_matches_torch(kw, dtype):
    torch = pytest.importorskip("torch")
    needs("cross_entropy", "cross_entropy_backward")
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((6, 4)) * 3).astype(dtype)
    target = rng.integers(0, 4, 6)
    target[1] = 2
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(np.asarray(kw["weight"], dtype))
    grad_out = rng.standard_normal(6).astype(dtype) if kw.get("reduction") == "none" else 1.0
    check(torch, nn.CrossEntropyLoss(**kw), torch.nn.CrossEntropyLoss(**tkw), logits, target,
          dtype, f"cross_entropy {kw}", grad_out)


def test_cross_entropy_grad_out_scales_the_gradient():
    needs("cross_entropy", "cross_entropy_backward")
    loss = nn.CrossEntropyLoss()
    logits = np.random.default_rng(0).standard_normal((3, 5))
    loss(logits, np.array([0, 4, 2]))
    assert_close(loss.backward(2.5), 2.5 * loss.backward())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_matches_torch(reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    pred = rng.standard_normal((4, 3)).astype(dtype)
    target = rng.standard_normal((4, 3)).astype(dtype)
    grad_out = rng.standard_normal((4, 3)).astype(dtype) if reduction == "none" else 1.0
    check(torch, nn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction), pred, target,
          dtype, f"mse {reduction}", grad_out)


BCE_KW = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(pos_weight=[2.0, 0.5, 1.0]),
          dict(weight=[[0.5, 1.0, 2.0]], pos_weight=[3.0, 1.0, 0.2])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", BCE_KW, ids=[str(k) for k in BCE_KW])
@pytest.mark.parametrize("scale", [3.0, 1e4])
def test_bce_with_logits_matches_torch_including_huge_logits(kw, scale, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((5, 3)) * scale).astype(dtype)
    logits[0] = [scale, -scale, 0.0]
    target = rng.uniform(0, 1, (5, 3)).astype(dtype)
    target[1] = [1.0, 0.0, 1.0]
    tkw = {k: torch.tensor(np.asarray(v, dtype)) if k != "reduction" else v
           for k, v in kw.items()}
    grad_out = rng.standard_normal((5, 3)).astype(dtype) if kw.get("reduction") == "none" \
        else 1.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (underflow to 0 is fine)
        check(torch, nn.BCEWithLogitsLoss(**kw), torch.nn.BCEWithLogitsLoss(**tkw), logits,
              target, dtype, f"bce {kw} x{scale:g}", grad_out)


def test_bce_with_logits_is_stable_for_huge_logits_both_signs():
    loss = nn.BCEWithLogitsLoss(reduction="none")
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0], np.float32)
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v = loss(x, y)
        g = loss.backward(np.ones(5, np.float32))
    assert_close(v, [0.0, 0.0, 1e4, 1e4, np.log(2)], dtype=np.float32)
    assert_close(g, [0.0, 0.0, 1.0, -1.0, -0.5], dtype=np.float32)


def test_loss_errors():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss("avg")
    with pytest.raises(ValueError, match="target shape"):
        nn.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.BCEWithLogitsLoss()(np.zeros(3, np.int64), np.zeros(3))
    m = nn.MSELoss()
    m(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="grad_out must be a scalar"):
        m.backward(np.ones((2, 3)))
    m = nn.MSELoss("none")
    m(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="unreduced loss shape"):
        m.backward(np.ones(3))


def test_loss_weights_are_buffers_in_state_dict_as_torch():
    torch = pytest.importorskip("torch")
    w = np.array([1.0, 2.0, 0.5], np.float32)
    cases = [(nn.CrossEntropyLoss(weight=w), torch.nn.CrossEntropyLoss(weight=torch.tensor(w))),
             (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
             (nn.BCEWithLogitsLoss(weight=w, pos_weight=w[::-1]),
              torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w),
                                         pos_weight=torch.tensor(w[::-1].copy()))),
             (nn.BCEWithLogitsLoss(pos_weight=[2, 1, 1]),
              torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0, 1.0])))]
    for loss, tloss in cases:
        sd = loss.state_dict()
        assert list(sd) == list(tloss.state_dict())
        for k, v in tloss.state_dict().items():
            np.testing.assert_array_equal(sd[k], v.numpy())
    # a loaded weight is the one used
    ce = nn.CrossEntropyLoss(weight=np.ones(3))
    ce.load_state_dict({"weight": np.array([0.0, 1.0, 0.0])})
    logits = np.random.default_rng(0).standard_normal((4, 3))
    target = np.array([0, 1, 2, 1])
    t = torch.nn.CrossEntropyLoss(weight=torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(ce(logits, target), t(torch.tensor(logits), torch.tensor(target)))
    # the buffer is a copy: changing the array given does not change the loss
    w2 = np.ones(3)
    ce2 = nn.CrossEntropyLoss(weight=w2)
    w2[0] = 5
    assert ce2.weight[0] == 1
    with pytest.raises(ValueError, match="missing key 'weight'"):
        nn.CrossEntropyLoss(weight=np.ones(3)).load_state_dict({})
