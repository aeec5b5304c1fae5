"""dlkern.summary: per-layer output shapes, parameters, receptive field, jump, FLOPs,
totals; the model is left exactly as it was."""
import numpy as np
import pytest

import dlkern
import dlkern.functional  # noqa: F401  (needs() looks kernels up on both floors)
import dlkern.reference  # noqa: F401
from dlkern import nn


def needs(*names):
    missing = [n for n in names if not (hasattr(dlkern.functional, n)
                                        and hasattr(dlkern.reference, n))]
    if missing:
        pytest.skip(f"kernel(s) {missing} not merged on this branch yet")


CNN_KERNELS = ("conv2d", "batch_norm", "relu", "max_pool2d", "linear", "dropout")


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                         nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * 2 * 2, 10))


def test_cnn_table(capsys):
    needs(*CNN_KERNELS)
    model = cnn()
    s = dlkern.summary(model, (2, 1, 8, 8), print=True)
    printed = capsys.readouterr().out
    assert "Total params" in printed and "MaxPool2d" in printed
    rows = {r["name"]: r for r in s.rows}
    assert [r["name"] for r in s.rows] == [str(i) for i in range(9)]
    assert rows["0"]["output_shape"] == (2, 8, 8, 8)
    assert rows["3"]["output_shape"] == (2, 8, 4, 4)
    assert rows["4"]["output_shape"] == (2, 16, 2, 2)
    assert rows["6"]["output_shape"] == (2, 64)
    assert rows["8"]["output_shape"] == (2, 10)
    # receptive field / jump: conv3 -> 3 (1); pool2 -> 4 (2); conv3 s2 -> 4+2*2=8 (4)
    assert (rows["0"]["receptive_field"], rows["0"]["jump"]) == ("3x3", "1x1")
    assert (rows["3"]["receptive_field"], rows["3"]["jump"]) == ("4x4", "2x2")
    assert (rows["4"]["receptive_field"], rows["4"]["jump"]) == ("8x8", "4x4")
    assert rows["8"]["receptive_field"] == "all"
    # parameters
    assert rows["0"]["params"] == 8 * 9 + 8
    assert rows["1"]["params"] == 16
    assert rows["4"]["params"] == 16 * 8 * 9
    assert rows["8"]["params"] == 64 * 10 + 10
    assert s.total_params == sum(p.data.size for p in model.parameters())
    # FLOPs: 2 x multiply-adds for conv and linear
    assert rows["0"]["flops"] == 2 * (2 * 8 * 8 * 8) * 9
    assert rows["4"]["flops"] == 2 * (2 * 16 * 2 * 2) * (8 * 9)
    assert rows["8"]["flops"] == 2 * 2 * 10 * 64
    assert rows["6"]["flops"] == 0 and rows["7"]["flops"] == 0
    assert s.flops == sum(r["flops"] for r in s.rows)
    assert str(s) == s.table


def test_frozen_parameters_are_counted_apart():
    needs(*CNN_KERNELS)
    model = cnn()
    model[0].requires_grad_(False)
    s = dlkern.summary(model, (1, 1, 8, 8))
    assert s.frozen_params == 80
    assert s.trainable_params == s.total_params - 80
    assert "frozen 80" in s.table


def test_summary_leaves_the_model_untouched():
    needs(*CNN_KERNELS)
    model = cnn()
    model.train()
    before = model.state_dict()
    dlkern.summary(model, (4, 1, 8, 8))
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    model.eval()
    dlkern.summary(model, (1, 1, 8, 8))
    assert not any(m.training for m in model.modules())


def test_tcn_receptive_field_and_residual_branches():
    needs("causal_conv1d", "relu", "conv2d", "batch_norm")
    k, levels = 3, 4
    s = dlkern.summary(nn.TCN(2, [5] * levels, kernel_size=k), (1, 2, 50))
    last = s.rows[-1]
    assert last["name"] == f"network.{levels - 1}.relu"
    assert last["receptive_field"] == str(1 + 2 * (k - 1) * (2 ** levels - 1))
    assert last["output_shape"] == (1, 5, 50)
    down = [r for r in s.rows if r["name"] == "network.0.downsample"][0]
    assert down["flops"] == 2 * 5 * 50 * 2 and down["receptive_field"] == "1"
    # ResidualBlock: main path 3x3 s2 then 3x3 -> 3 + 2*2 = 7; projection 1x1: 1
    s = dlkern.summary(nn.ResidualBlock(2, 4, stride=2), (1, 2, 8, 8))
    rows = {r["name"]: r for r in s.rows}
    assert rows["conv2"]["receptive_field"] == "7x7" and rows["conv2"]["jump"] == "2x2"
    assert rows["shortcut.0"]["receptive_field"] == "1x1"
    assert rows["relu2"]["receptive_field"] == "7x7"
    assert s.total_params == 2 * 4 * 9 + 4 * 4 * 9 + 2 * 4 + 3 * 2 * 4
