"""Module mechanics: registration and torch's names, traversal, train/eval, zero_grad,
gradient accumulation, frozen parameters, state_dict round trips and errors."""
from collections import OrderedDict

import numpy as np
import pytest

import dlkern
import dlkern.functional  # noqa: F401  (needs() looks kernels up on both floors)
import dlkern.reference  # noqa: F401
from dlkern import nn
from dlkern.nn import Parameter
from dlkern.testing import assert_close


def needs(*names):
    missing = [n for n in names if not (hasattr(dlkern.functional, n)
                                        and hasattr(dlkern.reference, n))]
    if missing:
        pytest.skip(f"kernel(s) {missing} not merged on this branch yet")


DENSE = ("linear", "linear_backward", "relu", "relu_backward", "batch_norm",
         "batch_norm_backward")


def small_cnn(dtype=np.float32):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype),
                         nn.ReLU(), nn.MaxPool2d(2), nn.ResidualBlock(4, 6, 2, dtype=dtype),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(6 * 2 * 2, 3, dtype=dtype))


def mlp(dtype=np.float64):
    return nn.Sequential(nn.Linear(4, 5, dtype=dtype), nn.BatchNorm1d(5, dtype=dtype),
                         nn.ReLU(), nn.Linear(5, 2, dtype=dtype))


EXPECTED_KEYS = [
    "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
    "1.num_batches_tracked",
    "4.conv1.weight", "4.bn1.weight", "4.bn1.bias", "4.bn1.running_mean", "4.bn1.running_var",
    "4.bn1.num_batches_tracked", "4.conv2.weight", "4.bn2.weight", "4.bn2.bias",
    "4.bn2.running_mean", "4.bn2.running_var", "4.bn2.num_batches_tracked",
    "4.shortcut.0.weight", "4.shortcut.1.weight", "4.shortcut.1.bias",
    "4.shortcut.1.running_mean", "4.shortcut.1.running_var", "4.shortcut.1.num_batches_tracked",
    "7.weight", "7.bias"]


def test_names_follow_torch():
    m = small_cnn()
    assert list(m.state_dict()) == EXPECTED_KEYS
    params = [n for n, _ in m.named_parameters()]
    assert params == [k for k in EXPECTED_KEYS if not k.split(".")[-1].startswith(
        ("running_", "num_batches"))]
    assert [n for n, _ in m.named_buffers()][:3] == ["1.running_mean", "1.running_var",
                                                      "1.num_batches_tracked"]
    assert len(list(m.parameters())) == len(params)
    assert [n for n, _ in m.named_children()] == [str(i) for i in range(8)]
    names = [n for n, _ in m.named_modules()]
    assert names[:2] == ["", "0"] and "4.shortcut.1" in names
    nbt = m[1].num_batches_tracked
    assert nbt.dtype == np.int64 and nbt.shape == ()


def test_state_dict_keys_equal_torch_for_the_same_architecture():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class Block(tnn.Module):  # same names as nn.ResidualBlock
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(4, 6, 3, 2, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(6)
            self.conv2 = tnn.Conv2d(6, 6, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(6)
            self.shortcut = tnn.Sequential(tnn.Conv2d(4, 6, 1, 2, bias=False),
                                           tnn.BatchNorm2d(6))

    t = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(),
                       tnn.MaxPool2d(2), Block(), tnn.Flatten(), tnn.Dropout(0.5),
                       tnn.Linear(24, 3))
    ours = small_cnn().state_dict()
    theirs = t.state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape), k
        assert ours[k].dtype == theirs[k].numpy().dtype, k


def test_train_eval_recursive():
    m = small_cnn()
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m[4].eval()
    assert m.training and not m[4].bn1.training and m[1].training


def test_backward_accumulates_then_zero_grad_resets():
    needs(*DENSE)
    m = mlp()
    x = np.random.default_rng(0).standard_normal((6, 4))
    g = np.ones((6, 2))
    m(x)
    m.backward(g)
    first = {n: p.grad.copy() for n, p in m.named_parameters()}
    m(x)
    m.backward(g)
    for n, p in m.named_parameters():
        assert_close(p.grad, 2 * first[n], err_msg=n)
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_frozen_parameters_get_no_gradient_but_input_gradient_flows():
    needs(*DENSE)
    m = mlp()
    m[0].requires_grad_(False)
    m[1].weight.requires_grad = False
    x = np.random.default_rng(0).standard_normal((6, 4))
    m(x)
    gx = m.backward(np.ones((6, 2)))
    assert gx.shape == x.shape and np.abs(gx).sum() > 0
    assert m[0].weight.grad is None and m[0].bias.grad is None
    assert m[1].weight.grad is None and m[1].bias.grad is not None
    assert m[3].weight.grad is not None
    # the unfrozen gradients equal those of an all-trainable copy
    ref = mlp()
    ref.load_state_dict(m.state_dict())
    ref(x)
    assert_close(ref.backward(np.ones((6, 2))), gx)
    assert_close(ref[3].weight.grad, m[3].weight.grad)


def test_state_dict_round_trip_gives_same_outputs_and_is_a_copy():
    needs(*DENSE)
    dlkern_rng = np.random.default_rng(0)
    a, b = mlp(), mlp()
    a(dlkern_rng.standard_normal((8, 4)))        # move a's running statistics
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict)
    b.load_state_dict(sd)
    a.eval()
    b.eval()
    x = dlkern_rng.standard_normal((3, 4))
    np.testing.assert_array_equal(a(x), b(x))
    sd["0.weight"][...] = 123.0                   # a copy: the model is untouched
    assert not np.any(a[0].weight.data == 123.0)
    # loading writes in place: Parameter objects (held by optimizers) stay the same
    w = b[0].weight
    b.load_state_dict(sd)
    assert b[0].weight is w and np.all(w.data == 123.0)
    assert b[1].num_batches_tracked.dtype == np.int64


def test_load_state_dict_casts_to_the_model_dtype():
    m = nn.Linear(2, 3, dtype=np.float32)
    m.load_state_dict({"weight": np.ones((3, 2), np.float64), "bias": np.zeros(3)})
    assert m.weight.dtype == np.float32 and np.all(m.weight.data == 1)


def test_load_state_dict_errors_name_the_key_and_change_nothing():
    m = mlp()
    sd = m.state_dict()
    before = m.state_dict()
    bad = dict(sd)
    del bad["1.running_var"]
    with pytest.raises(ValueError, match=r"missing key '1\.running_var'"):
        m.load_state_dict(bad)
    bad = dict(sd, extra=np.zeros(1))
    with pytest.raises(ValueError, match=r"unexpected key 'extra'"):
        m.load_state_dict(bad)
    bad = {k: v + 1 if v.dtype.kind == "f" else v for k, v in sd.items()}
    bad["3.weight"] = np.zeros((2, 6))
    with pytest.raises(ValueError, match=r"shape mismatch for '3\.weight': the model expects "
                                         r"\(2, 5\), the state_dict has \(2, 6\)"):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():           # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])
    partial = {"0.weight": np.zeros((5, 4)), "bogus": np.zeros(2)}
    res = m.load_state_dict(partial, strict=False)
    assert "0.bias" in res.missing_keys and res.unexpected_keys == ["bogus"]
    assert np.all(m[0].weight.data == 0)


def test_backward_before_forward_is_a_clear_error():
    for m in [nn.Linear(2, 3), nn.Conv2d(1, 1, 1), nn.ReLU(), nn.BatchNorm2d(2),
              nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(), nn.Sequential(nn.ReLU()),
              nn.ResidualBlock(2, 2), nn.TCN(2, [2]), nn.CrossEntropyLoss(), nn.MSELoss()]:
        with pytest.raises(RuntimeError, match="backward called before forward"):
            m.backward(np.ones((1, 2)))


def test_registration_rules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.scale = Parameter(np.ones(1, np.float32))
            self.register_buffer("steps", np.zeros((), np.int64))
            self.note = "plain attribute"

    n = Net()
    assert [k for k in n.state_dict()] == ["scale", "steps", "a.weight", "a.bias"]
    n.a = None                          # replacing a child by a plain value unregisters it
    assert "a.weight" not in n.state_dict()
    with pytest.raises(TypeError, match="register_buffer"):
        n.register_buffer("x", [1, 2])

    class Broken(nn.Module):
        def __init__(self):
            self.a = 1

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_sequential_container_behaviour():
    s = nn.Sequential(nn.ReLU(), nn.Flatten())
    assert len(s) == 2 and isinstance(s[1], nn.Flatten) and isinstance(s[-1], nn.Flatten)
    s.append(nn.Linear(2, 2))
    assert [n for n, _ in s.named_parameters()] == ["2.weight", "2.bias"]
    assert len(s[1:]) == 2
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    with pytest.raises(TypeError, match="Sequential"):
        nn.Sequential(nn.ReLU(), 3)
    assert "Sequential" in repr(s) and "(2): Linear" in repr(s)


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    s = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(s.parameters())) == 2


def test_deepcopy_and_pickle_give_independent_models():
    import copy
    import pickle
    m = small_cnn()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert list(clone.state_dict()) == EXPECTED_KEYS
        assert clone[0].weight is not m[0].weight
        np.testing.assert_array_equal(clone[0].weight.data, m[0].weight.data)
        clone[0].weight.data[...] = 0
        assert np.any(m[0].weight.data != 0)


def test_load_state_dict_accepts_torch_tensors_directly():
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                            torch.nn.Linear(5, 2)).double()
    t.train()
    t(torch.randn(8, 4, dtype=torch.float64))
    m = mlp()
    m.load_state_dict(t.state_dict())          # tensors, not NumPy arrays
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, t.state_dict()[k].numpy())
    assert int(m[1].num_batches_tracked) == 1


def test_to_converts_parameters_and_float_buffers_in_place():
    m = small_cnn(np.float32)
    w = m[0].weight
    assert m.double() is m
    assert m[0].weight is w and w.dtype == np.float64
    for k, v in m.state_dict().items():
        assert v.dtype == (np.int64 if k.endswith("num_batches_tracked") else np.float64), k
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.float16)
