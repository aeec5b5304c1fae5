"""dlkern.save / dlkern.load: round trip, atomic writes (a failure or a crash in the
middle of a save leaves the previous checkpoint intact), and load's error messages."""
import os
import subprocess
import sys

import numpy as np
import pytest

import dlkern
from dlkern import nn, serialization


def make_model(dtype=np.float32):
    return nn.Sequential(nn.Conv2d(1, 2, 3, dtype=dtype), nn.BatchNorm2d(2, dtype=dtype),
                         nn.Flatten(), nn.Linear(8, 3, dtype=dtype))


def test_round_trip_restores_every_array(tmp_path):
    a, b = make_model(), make_model()
    a[1].running_mean[...] = [0.5, -0.5]
    a[1].num_batches_tracked[...] = 7
    path = tmp_path / "model.npz"
    dlkern.save(a, path)
    assert dlkern.load(b, path) is b
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
        assert sa[k].dtype == sb[k].dtype
    assert int(b[1].num_batches_tracked) == 7
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]   # no temporary left behind
    with np.load(path) as z:                               # a plain .npz of the state_dict
        assert list(z.files) == list(sa)


def test_path_is_used_as_given(tmp_path):
    path = str(tmp_path / "ckpt")
    dlkern.save(make_model(), path)
    assert os.path.exists(path)
    dlkern.load(make_model(), path)


def test_failure_during_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    dlkern.save(make_model(), path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial garbage")     # half a zip, then the "crash"
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(serialization.np, "savez", failing_savez)
    with pytest.raises(OSError, match="simulated"):
        dlkern.save(make_model(), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    monkeypatch.undo()
    dlkern.load(make_model(), path)                 # still a valid checkpoint


def test_failure_in_fsync_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    dlkern.save(make_model(), path)
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError("I/O error (simulated)")

    monkeypatch.setattr(serialization.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        dlkern.save(make_model(), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_process_killed_mid_save_keeps_the_previous_checkpoint(tmp_path):
    """A real crash: the child process dies (os._exit) half-way through writing."""
    path = tmp_path / "model.npz"
    dlkern.save(make_model(), path)
    before = path.read_bytes()
    script = f"""
import os, numpy as np
import dlkern
from dlkern import nn, serialization
def dying_savez(f, **arrays):
    f.write(b"PK\\x03\\x04 half written")
    f.flush()
    os._exit(9)
serialization.np.savez = dying_savez
model = nn.Sequential(nn.Linear(2, 2))
dlkern.save(model, {str(path)!r})
"""
    # cwd outside the repository: the child must import the installed dlkern
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path)
    assert proc.returncode == 9, proc.stderr.decode()
    assert path.read_bytes() == before
    dlkern.load(make_model(), path)


def test_load_names_the_first_bad_key_and_leaves_the_model_unchanged(tmp_path):
    model = make_model()
    sd = model.state_dict()
    path = tmp_path / "x.npz"

    missing = dict(sd)
    del missing["1.bias"]
    np.savez(path, **missing)
    with pytest.raises(ValueError, match=r"missing key '1\.bias'"):
        dlkern.load(model, path)

    np.savez(path, **sd, **{"4.weight": np.zeros(2)})
    with pytest.raises(ValueError, match=r"unexpected key '4\.weight'"):
        dlkern.load(model, path)

    wrong = {k: v + 1 if v.dtype.kind == "f" else v for k, v in sd.items()}
    wrong["3.weight"] = np.zeros((3, 9), np.float32)
    np.savez(path, **wrong)
    with pytest.raises(ValueError, match=r"x\.npz.*'3\.weight'.*expects \(3, 8\).*has "
                                         r"\(3, 9\)"):
        dlkern.load(model, path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


def test_atomic_savez_for_the_training_loop(tmp_path):
    path = tmp_path / "ckpt.npz"
    serialization.atomic_savez(path, {"a": np.arange(3), "meta": np.asarray("{}")})
    with np.load(path) as z:
        np.testing.assert_array_equal(z["a"], np.arange(3))
