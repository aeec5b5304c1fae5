"""The training steps `dlkern bench` times (dlkern.benchmarks.models): they train,
give the same bits on 1 and 2 threads, and layer_budget accounts for the step."""
import numpy as np
import pytest

import dlkern
from dlkern.benchmarks import models


def _trained_parameters(threads, steps=3):
    dlkern.set_num_threads(threads)
    try:
        out = []
        for name, impls in models.model_steps(None):
            step = impls["dlkern"]
            for _ in range(steps):
                step()
            # the step closes over its model through the optimizer
            opt = next(c.cell_contents for c in step.__closure__
                       if hasattr(c.cell_contents, "param_groups"))
            out.append([p.data.copy() for g in opt.param_groups for p in g["params"]])
        return out
    finally:
        dlkern.set_num_threads(None)


def test_model_steps_train_and_are_identical_for_1_and_2_threads():
    dlkern.random.seed(0)
    one = _trained_parameters(1)
    dlkern.random.seed(0)
    two = _trained_parameters(2)
    for params_1, params_2 in zip(one, two):
        assert all(np.isfinite(p).all() for p in params_1)
        for a, b in zip(params_1, params_2):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model,modules", [("digits", 12), ("adding", 37)])
def test_layer_budget_times_every_module_and_the_phases(model, modules):
    # digits: Sequential + 11 layers; adding: AddingTCN, TCN, its Sequential, 4 blocks
    # of 7 children (+ the first block's downsample) and the linear read-out
    budget = models.layer_budget(model, steps=3, warmup=1)
    layers = {k: v for k, v in budget.items() if k[1]}
    assert len(layers) == 2 * modules  # forward and backward of each module
    assert {k[2] for k in layers} == {"forward", "backward"}
    assert all(v >= 0 for v in budget.values())
    phases = {k[0]: v for k, v in budget.items() if not k[1]}
    assert set(phases) == {"zero_grad", "loss", "optimizer.step", "step"}
    assert phases["step"] >= phases["optimizer.step"]


def test_layer_budget_rejects_unknown_models():
    with pytest.raises(ValueError, match="digits"):
        models.layer_budget("mnist")


@pytest.mark.parametrize("model,modules", [("digits", 12), ("adding", None)])
def test_torch_layer_budget_times_every_module_and_the_phases(model, modules):
    torch = pytest.importorskip("torch")
    # digits: Sequential + 11 layers; adding: Net, its block Sequential, 4 blocks,
    # their convs (+ the first block's downsample) and the linear read-out
    budget = models.torch_layer_budget(torch, model, steps=3, warmup=1)
    layers = {k: v for k, v in budget.items() if k[1]}
    names = {k[0] for k in layers}
    if model == "digits":
        assert len(names) == modules
    else:
        assert {"<model>", "blocks", "linear", "blocks.0.down", "blocks.3.conv2"} <= names
    assert {k[2] for k in layers} == {"forward", "backward"}
    assert all(v >= 0 for v in budget.values())
    phases = {k[0] for k, v in budget.items() if not k[1]}
    assert phases == {"zero_grad", "loss", "backward", "optimizer.step", "step"}
    with pytest.raises(ValueError, match="digits"):
        models.torch_layer_budget(torch, "mnist")


def test_model_steps_ask_for_no_input_gradient(monkeypatch):
    """The timed dlkern step, like torch's, computes no gradient for the data."""
    seen = []
    real = dlkern.nn.Sequential.backward

    def spy(self, grad_out, input_grad=True):
        seen.append(input_grad)
        return real(self, grad_out, input_grad)

    monkeypatch.setattr(dlkern.nn.Sequential, "backward", spy)
    name, impls = models.model_steps(None)[0]
    impls["dlkern"]()
    assert seen == [False]
