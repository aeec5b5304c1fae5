"""backward(grad_out, input_grad=False): parameter gradients only, bit-identical to
those of the full backward, for every layer type, the blocks and the digits CNN
and adding TCN models; None comes back; containers skip what nothing needs; the
training step asks for no input gradient; modules written without input_grad
still work (run_backward)."""
import copy

import numpy as np
import pytest

import dlkern
import dlkern.functional
from dlkern import nn, optim
from dlkern.nn.module import run_backward
from dlkern.tasks.adding import AddingTCN
from dlkern.tasks.digits import digits_cnn
from dlkern.training import fit

BACKENDS = ["c", "reference"]

# (name, factory, input shape); dtype float64 except where the model's own is float32
LAYERS = [
    ("conv2d", lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, dtype=np.float64),
     (2, 3, 7, 6)),
    ("conv2d-groups-nobias", lambda: nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False,
                                               dtype=np.float64), (2, 4, 5, 5)),
    ("conv2d-first-layer-f32", lambda: nn.Conv2d(1, 32, 3, padding=1), (64, 1, 8, 8)),
    ("linear", lambda: nn.Linear(5, 3, dtype=np.float64), (4, 5)),
    ("linear-nobias", lambda: nn.Linear(5, 3, bias=False, dtype=np.float64), (2, 4, 5)),
    ("batchnorm2d", lambda: nn.BatchNorm2d(3, dtype=np.float64), (4, 3, 5, 5)),
    ("batchnorm1d", lambda: nn.BatchNorm1d(3, dtype=np.float64), (4, 3, 6)),
    ("batchnorm2d-no-affine", lambda: nn.BatchNorm2d(3, affine=False, dtype=np.float64),
     (4, 3, 5, 5)),
    ("prelu", lambda: nn.PReLU(4, dtype=np.float64), (3, 4, 5)),
    ("causal_conv1d", lambda: nn.CausalConv1d(3, 5, 3, dilation=2, dtype=np.float64),
     (2, 3, 11)),
    ("causal_conv1d-nobias", lambda: nn.CausalConv1d(3, 5, 2, bias=False, dtype=np.float64),
     (2, 3, 9)),
    ("relu", nn.ReLU, (3, 4, 5)),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), (3, 4, 5)),
    ("rrelu", nn.RReLU, (3, 4, 5)),
    ("elu", nn.ELU, (3, 4, 5)),
    ("sigmoid", nn.Sigmoid, (3, 4, 5)),
    ("tanh", nn.Tanh, (3, 4, 5)),
    ("softplus", nn.Softplus, (3, 4, 5)),
    ("maxpool", lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    ("avgpool", lambda: nn.AvgPool2d(2), (2, 3, 6, 6)),
    ("adaptive-avgpool", lambda: nn.AdaptiveAvgPool2d(2), (2, 3, 5, 5)),
    ("flatten", nn.Flatten, (2, 3, 4)),
    ("dropout", lambda: nn.Dropout(0.3), (3, 4, 5)),
    ("sequential", lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 4, dtype=np.float64),
                                         nn.ReLU(), nn.Linear(4, 2, dtype=np.float64)),
     (2, 3, 4)),
    ("sequential-empty", nn.Sequential, (2, 3)),
    ("residual-identity", lambda: nn.ResidualBlock(4, 4, dtype=np.float64), (2, 4, 6, 6)),
    ("residual-projection", lambda: nn.ResidualBlock(3, 4, stride=2, dtype=np.float64),
     (2, 3, 6, 6)),
    ("temporal-block", lambda: nn.TemporalBlock(4, 4, 3, 2, dropout=0.2, dtype=np.float64),
     (2, 4, 13)),
    ("temporal-block-downsample", lambda: nn.TemporalBlock(2, 5, 2, 1, dropout=0.0,
                                                           dtype=np.float64), (2, 2, 9)),
    ("tcn", lambda: nn.TCN(2, [4, 4, 3], kernel_size=3, dropout=0.1, dtype=np.float64),
     (2, 2, 20)),
    ("digits-cnn", digits_cnn, (64, 1, 8, 8)),
    ("adding-tcn", AddingTCN, (8, 2, 50)),
]


def _both_ways(make, shape, backend, freeze=None):
    """(full backward's result, input_grad=False's result, the two models)."""
    dlkern.random.seed(0)
    model = make()
    if freeze is not None:
        freeze(model)
    twin = copy.deepcopy(model)
    dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float64))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    out = []
    with dlkern.use_backend(backend):
        for m in (model, twin):
            dlkern.random.seed(1)  # the same dropout / rrelu draws in both
            y = m(x)
            g = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
            out.append(m.backward(g) if m is model else m.backward(g, input_grad=False))
    return out[0], out[1], model, twin


def _assert_same_gradients(model, twin):
    named = list(model.named_parameters())
    assert [n for n, _ in named] == [n for n, _ in twin.named_parameters()]
    for (name, p), q in zip(named, twin.parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            np.testing.assert_array_equal(q.grad, p.grad, err_msg=name)
    for (name, b), c in zip(model.named_buffers(), twin.buffers()):
        np.testing.assert_array_equal(c, b, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_input_grad_false_gives_the_same_parameter_gradients_and_none(name, make, shape,
                                                                      backend):
    gx, none, model, twin = _both_ways(make, shape, backend)
    assert none is None
    assert gx is not None and gx.shape == shape
    _assert_same_gradients(model, twin)
    if any(True for _ in model.parameters()):
        assert all(p.grad is not None for p in model.parameters())


def _record_conv2d_masks(monkeypatch):
    """A list that receives the output_mask of every functional.conv2d_backward call."""
    masks = []
    real = dlkern.functional.conv2d_backward

    def spy(*args, **kwargs):
        masks.append(kwargs.get("output_mask"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dlkern.functional, "conv2d_backward", spy)
    return masks


def _freeze_conv1_bn1(model):
    model[0].requires_grad_(False)
    model[1].requires_grad_(False)


def test_frozen_first_layers_are_skipped_and_the_next_trainable_one_gets_no_input_grad(
        monkeypatch):
    masks = _record_conv2d_masks(monkeypatch)
    _, none, model, twin = _both_ways(digits_cnn, (64, 1, 8, 8), "c", freeze=_freeze_conv1_bn1)
    assert none is None
    _assert_same_gradients(model, twin)
    assert model[0].weight.grad is None and twin[0].weight.grad is None
    # full: conv2 (all), conv1 frozen (input only); input_grad=False: conv2, the first
    # trainable layer, gets (False, True, True) and relu1, bn1, conv1 do not run
    assert masks == [(True, True, True), (True, False, False), (False, True, True)]


def test_first_conv_of_the_digits_cnn_is_asked_for_no_input_gradient(monkeypatch):
    masks = _record_conv2d_masks(monkeypatch)
    model = digits_cnn()
    model(np.zeros((4, 1, 8, 8), np.float32))
    model.backward(np.ones((4, 10), np.float32), input_grad=False)
    assert masks == [(True, True, True), (False, True, True)]


def test_sequential_skips_the_layers_in_front_of_the_first_trainable_one():
    calls = []

    class Spy(nn.Module):
        def forward(self, x):
            self._save(done=True)
            return x

        def backward(self, grad_out, input_grad=True):
            calls.append(input_grad)
            return grad_out if input_grad else None

    lin = nn.Linear(3, 2)
    model = nn.Sequential(Spy(), lin, Spy())
    model(np.ones((2, 3), np.float32))
    assert model.backward(np.ones((2, 2), np.float32), input_grad=False) is None
    assert calls == [True]  # the last Spy only; the first is in front of lin
    assert lin.weight.grad is not None
    calls.clear()
    lin.requires_grad_(False)  # nothing trainable: nothing runs
    assert model.backward(np.ones((2, 2), np.float32), input_grad=False) is None
    assert calls == []
    calls.clear()
    assert model.backward(np.ones((2, 2), np.float32)).shape == (2, 3)
    assert calls == [True, True]


def test_frozen_conv_and_linear_compute_only_what_is_needed():
    conv = nn.Conv2d(2, 3, 3, dtype=np.float64)
    conv.weight.requires_grad = False
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    y = conv(x)
    assert conv.backward(np.ones_like(y), input_grad=False) is None
    assert conv.weight.grad is None and conv.bias.grad is not None
    lin = nn.Linear(3, 2, dtype=np.float64).requires_grad_(False)
    lin(np.ones((2, 3)))
    assert lin.backward(np.ones((2, 2)), input_grad=False) is None
    assert lin.weight.grad is None


class _Legacy(nn.Module):
    """A module written before input_grad: backward(self, grad_out)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x)

    def backward(self, grad_out):
        return self.lin.backward(grad_out)


def test_run_backward_drops_the_input_gradient_of_a_module_without_input_grad():
    m = _Legacy()
    x = np.ones((2, 4), np.float32)
    m(x)
    assert run_backward(m, np.ones((2, 3), np.float32), input_grad=False) is None
    assert m.lin.weight.grad is not None
    assert run_backward(m, np.ones((2, 3), np.float32)).shape == (2, 4)
    seq = nn.Sequential(_Legacy(), nn.ReLU())
    seq(x)
    assert seq.backward(np.ones((2, 3), np.float32), input_grad=False) is None
    assert seq[0].lin.weight.grad is not None


def test_fit_trains_models_with_and_without_input_grad_in_backward():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    for model in (_Legacy(), nn.Sequential(nn.Linear(4, 3))):
        opt = optim.SGD(model.parameters(), lr=0.1)
        batches = [(x[:16], y[:16]), (x[16:], y[16:])]
        hist = fit(model, nn.CrossEntropyLoss(), opt, batches, epochs=3, progress=False,
                   log=lambda *a: None)
        assert hist["train_loss"][-1] < hist["train_loss"][0]


@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss(), nn.MSELoss(),
                                  nn.BCEWithLogitsLoss()])
def test_losses_take_input_grad(loss):
    pred = np.random.default_rng(0).standard_normal((4, 3))
    target = np.array([0, 2, 1, 1]) if isinstance(loss, nn.CrossEntropyLoss) else \
        np.random.default_rng(1).uniform(0, 1, (4, 3))
    loss(pred, target)
    assert loss.backward(input_grad=False) is None
    assert loss.backward().shape == pred.shape
