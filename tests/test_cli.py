"""The command line: `dlkern train` end to end on small settings, and `dlkern bench`."""
import json
import subprocess
import sys

import pytest

from dlkern.__main__ import main


def test_train_digits_end_to_end(tmp_path, capsys):
    pytest.importorskip("sklearn")
    main(["train", "--epochs", "3", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert "test accuracy" in out and "speedup" in out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 80.0  # 3 epochs; the default 25 reach >= 97% (see README)
    assert (tmp_path / "model.npz").exists()
    assert (tmp_path / "checkpoints" / "last.npz").exists()
    if pytest.importorskip("matplotlib"):
        assert (tmp_path / "curves.png").stat().st_size > 1000


def test_train_adding_small(tmp_path, capsys):
    main(["train", "--task", "adding", "--seq-len", "20", "--levels", "2", "--kernel-size", "4",
          "--channels", "8", "--train-samples", "600", "--test-samples", "100", "--epochs", "2",
          "--out", str(tmp_path), "--no-progress", "--no-compare", "--no-plot"])
    out = capsys.readouterr().out
    assert "test MSE" in out
    assert (tmp_path / "model.npz").exists()


def test_help_lists_the_knobs(tmp_path):
    # cwd outside the repository: the child must import the installed dlkern
    out = subprocess.run([sys.executable, "-m", "dlkern", "train", "--help"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    for knob in ("--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--threads",
                 "--out", "--task"):
        assert knob in out


def test_bench_quick_filtered(tmp_path, capsys):
    main(["bench", "--quick", "--filter", "relu fwd", "--out", str(tmp_path), "--no-torch"])
    out = capsys.readouterr().out
    assert "relu fwd" in out and "GB/s" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["ceilings"]["gflops"] > 0 and data["rows"][0]["kernel"] == "relu fwd"


def test_every_bench_case_checks_and_runs():
    """Each case's implementations run and dlkern's result matches the reference."""
    from dlkern.benchmarks.cases import all_cases
    from dlkern.testing import torch_or_none

    cases = all_cases(torch_or_none())
    assert {c.family for c in cases} >= {"conv2d", "pooling", "batch_norm", "softmax",
                                         "causal_conv1d", "linear", "activations"}
    for case in cases:
        case.check()
        for name, impl in case.impls.items():
            impl()


def test_train_divergence_is_reported_with_the_module(tmp_path, capsys):
    pytest.importorskip("sklearn")
    code = main(["train", "--lr", "1e8", "--optimizer", "sgd", "--epochs", "2",
                 "--out", str(tmp_path), "--no-progress", "--no-compare", "--no-plot"])
    err = capsys.readouterr().err
    assert code == 1
    assert "non-finite" in err and "in module '" in err and "epoch 1, step" in err
