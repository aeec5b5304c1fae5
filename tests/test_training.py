"""The training loop: convergence, the non-finite guard, checkpoints, early stopping."""
import os

import numpy as np
import pytest

import dlkern
from dlkern import nn, optim
from dlkern.data import DataLoader
from dlkern.training import EarlyStopping, History, NonFiniteError, evaluate, fit
from dlkern.training.checkpoint import load_checkpoint, save_checkpoint


def blobs(n=240, seed=0):
    """Three separable Gaussian blobs in 4-D: a problem a small MLP solves exactly."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (3, 4))
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.normal(0, 0.5, (n, 4))).astype(np.float32)
    return x, y.astype(np.int64)


def mlp(dropout=0.0):
    dlkern.random.seed(0)
    layers = [nn.Linear(4, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, 3))
    return nn.Sequential(*layers)


def quiet(*args, **kwargs):
    pass


def test_fit_learns_and_records_history():
    x, y = blobs()
    model = mlp()
    opt = optim.Adam(model.parameters(), lr=0.02)
    loader = DataLoader(x[:200], y[:200], batch_size=32, shuffle=True, seed=1)
    history = fit(model, nn.CrossEntropyLoss(), opt, loader, (x[200:], y[200:]), epochs=15,
                  progress=False, log=quiet)
    assert history["epoch"] == list(range(1, 16))
    assert history["train_loss"][-1] < 0.3 * history["train_loss"][0]
    assert history["val_accuracy"][-1] >= 0.95
    assert evaluate(model, nn.CrossEntropyLoss(), (x[200:], y[200:]))["accuracy"] >= 0.95
    assert all(t > 0 for t in history["time"])


def test_guard_names_the_module_where_nan_appears():
    x, y = blobs()
    model = mlp()
    model[2].weight.data[0, 0] = np.inf  # the second Linear produces inf/nan
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteError) as info:
        fit(model, nn.CrossEntropyLoss(), opt, DataLoader(x, y, batch_size=32), epochs=1,
            progress=False, log=quiet)
    err = info.value
    assert err.kind == "activation" and err.module == "2"
    assert (err.epoch, err.step) == (1, 1)
    assert "module '2'" in str(err) and "Linear" in str(err)


def test_guard_names_the_parameter_with_a_nonfinite_gradient():
    class Poisoned(nn.Module):
        """Identity forward; backward writes NaN into its parameter's gradient."""

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(1, np.float32))

        def forward(self, x):
            return x

        def backward(self, grad_out):
            self.scale.accumulate_grad(np.full(1, np.nan, np.float32))
            return grad_out

    x, y = blobs()
    model = nn.Sequential(nn.Linear(4, 3), Poisoned())
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteError) as info:
        fit(model, nn.CrossEntropyLoss(), opt, DataLoader(x, y, batch_size=32), epochs=1,
            progress=False, log=quiet)
    assert info.value.kind == "gradient" and info.value.module == "1"
    assert "'1.scale'" in str(info.value)


def test_diverging_learning_rate_stops_with_the_last_good_checkpoint(tmp_path):
    x, y = blobs()
    model = mlp()
    loader = DataLoader(x, y, batch_size=32, shuffle=True, seed=0)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), loader,
        (x, y), epochs=2, checkpoint_dir=tmp_path, progress=False, log=quiet)
    good = dict(np.load(tmp_path / "last.npz"))
    opt = optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(NonFiniteError) as info:
        fit(model, nn.CrossEntropyLoss(), opt, loader, (x, y), epochs=5,
            checkpoint_dir=tmp_path, progress=False, log=quiet)
    assert info.value.module is not None
    assert info.value.checkpoint == os.path.join(tmp_path, "last.npz")
    kept = dict(np.load(tmp_path / "last.npz"))
    assert kept.keys() == good.keys()
    for key in good:  # the divergent run never overwrote the good checkpoint
        np.testing.assert_array_equal(kept[key], good[key])


def test_interrupted_training_resumes_bit_identically(tmp_path):
    x, y = blobs()

    def run(epochs, resume, directory):
        model = mlp(dropout=0.2)
        opt = optim.AdamW(model.parameters(), lr=0.01)
        sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        dlkern.random.seed(123)
        loader = DataLoader(x, y, batch_size=32, shuffle=True, seed=5)
        hist = fit(model, nn.CrossEntropyLoss(), opt, loader, (x, y), epochs=epochs,
                   scheduler=sched, checkpoint_dir=directory, resume=resume,
                   progress=False, log=quiet)
        return model, hist

    full, full_hist = run(6, False, tmp_path / "full")
    run(3, False, tmp_path / "split")               # "interrupted" after epoch 3
    resumed, resumed_hist = run(6, True, tmp_path / "split")
    assert resumed_hist["epoch"] == list(range(1, 7))
    assert resumed_hist["train_loss"] == full_hist["train_loss"]
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_early_stopping_restores_the_best_weights():
    x, y = blobs()
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.05)
    stopper = EarlyStopping(patience=2, monitor="val_loss", restore_best=True)
    # A validation set with shuffled labels: validation loss soon stops improving.
    rng = np.random.default_rng(3)
    val = (x, rng.permutation(y))
    hist = fit(model, nn.CrossEntropyLoss(), opt, DataLoader(x, y, batch_size=16), val,
               epochs=50, early_stopping=stopper, progress=False, log=quiet)
    assert stopper.stopped_epoch is not None and len(hist["epoch"]) < 50
    assert hist["epoch"][-1] - stopper.best_epoch == 2
    restored = evaluate(model, nn.CrossEntropyLoss(), val)["loss"]
    assert restored == pytest.approx(stopper.best, rel=1e-5)


def test_early_stopping_validates_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    assert EarlyStopping(monitor="val_accuracy").mode == "max"


def test_checkpoint_round_trip_with_optimizer_state(tmp_path):
    x, y = blobs()
    model = mlp()
    opt = optim.Adam(model.parameters(), lr=0.01)
    fit(model, nn.CrossEntropyLoss(), opt, DataLoader(x, y, batch_size=32), epochs=1,
        progress=False, log=quiet)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, epoch=1, note="x")
    other = mlp()
    other_opt = optim.Adam(other.parameters(), lr=0.5)
    meta = load_checkpoint(path, other, other_opt)
    assert meta == {"epoch": 1, "note": "x"}
    assert other_opt.param_groups[0]["lr"] == 0.01
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for key in sa[i]:
            np.testing.assert_array_equal(np.asarray(sa[i][key]), np.asarray(sb[i][key]))


def test_fit_rejects_bad_arguments():
    x, y = blobs()
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, nn.CrossEntropyLoss(), opt, DataLoader(x, y), epochs=-1, log=quiet)
    with pytest.raises(ValueError, match="metric"):
        fit(model, nn.CrossEntropyLoss(), opt, DataLoader(x, y), metric="f1", log=quiet)


def test_history_fills_missing_columns():
    h = History()
    h.log(epoch=1, train_loss=1.0)
    h.log(epoch=2, train_loss=0.5, val_loss=0.7)
    assert h["val_loss"] == [None, 0.7]
    assert np.isnan(h.to_arrays()["val_loss"][0])
