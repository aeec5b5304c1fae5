"""LR schedulers against torch.optim.lr_scheduler, epoch by epoch."""
import math
import warnings

import numpy as np
import pytest

from dlkern import optim
from dlkern.nn.parameter import Parameter
from dlkern.optim import lr_scheduler

EPOCHS = 30

SCHEDULERS = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10)),  # runs past T_max: torch's curve turns back up
    ("CosineAnnealingLR", dict(T_max=25, eta_min=1e-3)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.01, total_iters=12)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=20)),
]


def _dl_optimizer(lrs=(0.1, 0.03)):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=1.0, momentum=0.9)


def _torch_optimizer(torch, lrs=(0.1, 0.03)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=1.0, momentum=0.9)


def _ids(case):
    return case[0] + "-" + "-".join(f"{k}={v}" for k, v in case[1].items())


@pytest.mark.parametrize("case", SCHEDULERS, ids=_ids)
def test_matches_torch_epoch_by_epoch(case):
    torch = pytest.importorskip("torch")
    name, kwargs = case
    opt, topt = _dl_optimizer(), _torch_optimizer(torch)
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    ours, theirs = [sched.get_last_lr()], [tsched.get_last_lr()]
    for _ in range(EPOCHS):
        topt.step()
        sched.step()
        tsched.step()
        ours.append(sched.get_last_lr())
        theirs.append(tsched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == ours[-1]
    # The same recursive formula in the same order: equal to the last bit.
    assert ours == theirs


@pytest.mark.parametrize("case", SCHEDULERS, ids=_ids)
def test_closed_form_with_explicit_epoch_matches_torch(case):
    torch = pytest.importorskip("torch")
    name, kwargs = case
    opt, topt = _dl_optimizer(), _torch_optimizer(torch)
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in (3, 17, 5, 29):
            topt.step()
            sched.step(epoch)
            tsched.step(epoch)
            assert sched.get_last_lr() == tsched.get_last_lr()  # same formula, same rounding


def test_cosine_follows_the_closed_form_within_rounding():
    opt = _dl_optimizer(lrs=(0.1,))
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)
    for epoch in range(1, 21):
        sched.step()
        expected = 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * epoch / 20)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_linear_warmup_then_cosine_composes():
    opt = _dl_optimizer(lrs=(1.0,))
    warm = lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3)
    assert opt.param_groups[0]["lr"] == 0.25
    lrs = []
    for _ in range(4):
        warm.step()
        lrs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [0.5, 0.75, 1.0, 1.0], rtol=1e-14)


def test_scheduler_state_dict_round_trip():
    opt = _dl_optimizer()
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=12, eta_min=0.001)
    for _ in range(5):
        sched.step()
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in saved_sched
    expected = []
    for _ in range(6):
        sched.step()
        expected.append(sched.get_last_lr())
    opt2 = _dl_optimizer()
    opt2.load_state_dict(saved_opt)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=12, last_epoch=saved_sched["last_epoch"])
    sched2.load_state_dict(saved_sched)
    got = []
    for _ in range(6):
        sched2.step()
        got.append(sched2.get_last_lr())
    assert got == expected


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(_dl_optimizer(), step_size=2, last_epoch=4)


def test_bad_arguments():
    opt = _dl_optimizer()
    with pytest.raises(TypeError, match="Optimizer"):
        lr_scheduler.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="step_size"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="start_factor"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="end_factor"):
        lr_scheduler.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="T_max"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="factor"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="threshold_mode"):
        lr_scheduler.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="min_lrs"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.1])


# A metric that improves, stalls, improves slightly (below / above the threshold) and
# oscillates, so every branch (patience, cooldown, threshold, min_lr, eps) is exercised.
METRICS = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79995, 0.7, 0.7, 0.7, 0.71, 0.72, 0.5, 0.5,
           0.5, 0.5, 0.5, 0.5, 0.49, 0.49, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]

PLATEAU = [
    dict(),
    dict(patience=2),
    dict(mode="max", patience=1, factor=0.5),
    dict(patience=1, cooldown=2, factor=0.5),
    dict(patience=0, threshold=0.05, threshold_mode="abs"),
    dict(patience=1, threshold=0.1, threshold_mode="rel", mode="max"),
    dict(patience=0, factor=0.5, min_lr=[0.02, 0.01]),
    dict(patience=0, factor=0.5, min_lr=0.015, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=[str(k) for k in PLATEAU])
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    opt, topt = _dl_optimizer(), _torch_optimizer(torch)
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    ours, theirs = [], []
    for metric in METRICS:
        sched.step(metric)
        tsched.step(metric)
        ours.append(sched.get_last_lr())
        theirs.append(tsched.get_last_lr())
        assert (sched.num_bad_epochs, sched.cooldown_counter, sched.best) == \
            (tsched.num_bad_epochs, tsched.cooldown_counter, tsched.best)
    assert ours == theirs
    assert ours[-1] != ours[0] or kwargs == {}  # every configuration but the default reduces


def test_reduce_on_plateau_semantics_without_torch():
    opt = _dl_optimizer(lrs=(1.0,))
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.5, cooldown=1)
    lrs = []
    for metric in [5, 5, 5, 5, 5, 5, 5, 5]:
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    # bad epochs 1, 2, 3 -> reduce at the 4th call; one cooldown epoch; then 3 more bad.
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]
    state = sched.state_dict()
    sched2 = lr_scheduler.ReduceLROnPlateau(_dl_optimizer(lrs=(1.0,)))
    sched2.load_state_dict(state)
    assert sched2.best == 5 and sched2.patience == 2 and sched2._is_better(4.0, 5.0)


def _sequential(mod, opt):
    warm = mod.LinearLR(opt, start_factor=0.1, total_iters=5)
    cos = mod.CosineAnnealingLR(opt, T_max=20, eta_min=1e-4)
    step = mod.StepLR(opt, step_size=3, gamma=0.5)
    return mod.SequentialLR(opt, [warm, cos, step], milestones=[5, 22])


def test_sequential_warmup_then_cosine_matches_torch():
    torch = pytest.importorskip("torch")
    opt, topt = _dl_optimizer(), _torch_optimizer(torch)
    sched = _sequential(lr_scheduler, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = _sequential(torch.optim.lr_scheduler, topt)
    ours, theirs = [sched.get_last_lr()], [tsched.get_last_lr()]
    for _ in range(EPOCHS):
        topt.step()
        sched.step()
        tsched.step()
        ours.append(sched.get_last_lr())
        theirs.append(tsched.get_last_lr())
    assert ours == theirs
    assert ours[0][0] == pytest.approx(0.01) and ours[5][0] == pytest.approx(0.1)


def test_sequential_state_dict_round_trip_and_errors():
    opt = _dl_optimizer()
    sched = _sequential(lr_scheduler, opt)
    for _ in range(8):
        sched.step()
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    expected = []
    for _ in range(16):
        sched.step()
        expected.append(sched.get_last_lr())
    opt2 = _dl_optimizer()
    sched2 = _sequential(lr_scheduler, opt2)  # as torch: build schedulers, then load states
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    got = []
    for _ in range(16):
        sched2.step()
        got.append(sched2.get_last_lr())
    assert got == expected
    other = _dl_optimizer()
    with pytest.raises(ValueError, match="different optimizer"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(other, 2)], milestones=[])
    with pytest.raises(ValueError, match="milestone"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ReduceLROnPlateau(opt)], milestones=[])
