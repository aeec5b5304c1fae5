"""Saving and loading a model's state_dict as .npz, atomically.

dlkern.save(model, path) writes every state_dict entry (PyTorch's key names) as one
array of an uncompressed .npz. The write never leaves a torn file behind: it goes to
a temporary file in the destination's directory (same file system, so the rename is
atomic), which is flushed and fsync'ed, then os.replace'd over `path`; the directory
is fsync'ed too where the OS allows, so the rename itself survives a power cut. If
anything fails before the rename (an exception, a full disk, a kill), `path` still
holds the previous checkpoint and the temporary file is removed (on exceptions).

dlkern.load(model, path) reads it back with allow_pickle=False and loads it with
model.load_state_dict(strict=True): a missing or unexpected key, or a shape that
differs (expected vs got), raises ValueError naming it before anything is changed.
"""
import os
import tempfile

import numpy as np

__all__ = ["save", "load", "atomic_savez"]


def atomic_savez(path, arrays):
    """np.savez(path, **arrays), atomically (temporary file + fsync + os.replace).

    `path` is used as given (no ".npz" is appended)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def save(model, path):
    """Write model.state_dict() to `path` as .npz, atomically (see module docstring)."""
    atomic_savez(path, model.state_dict())


def load(model, path):
    """Load a .npz written by save() into model in place; returns model.

    Raises ValueError naming the first missing or unexpected key, or the key whose
    shape differs (the model's shape vs the file's), and leaves the model unchanged."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as e:
        raise ValueError(f"load({os.fspath(path)!r}): {e}") from None
    return model
