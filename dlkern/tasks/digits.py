"""The 8x8 handwritten digits that scikit-learn ships in its package (no download),
and a small CNN for them: conv, batch norm, ReLU, pooling, dropout, linear."""
import numpy as np

from dlkern import nn


def load_digits_split(test_fraction=0.2, val_fraction=0.1, seed=0, dtype=np.float32):
    """(train, val, test) splits of (x, y): x (n, 1, 8, 8) scaled to [0, 1], y int64.

    The test split is held out (never seen in training or model selection); the
    validation split is carved from the rest for early stopping and checkpoints.
    Splits are stratified by class, from `seed`."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # the 'train' extra installs it
        raise ImportError("dlkern train's digits task needs scikit-learn: "
                          "pip install 'dlkern[train]'") from exc
    digits = load_digits()
    x = (digits.images / 16.0).astype(dtype)[:, None, :, :]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    out = []
    for name in ("train", "val", "test"):
        idx = rng.permutation(np.concatenate(parts[name]))
        out.append((x[idx], y[idx]))
    return tuple(out)


def digits_cnn(dtype=np.float32):
    """A small CNN for 1x8x8 inputs and 10 classes (about 24k parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, dtype=dtype),
        nn.BatchNorm2d(32, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),                       # 32 x 4 x 4
        nn.Conv2d(32, 64, 3, padding=1, dtype=dtype),
        nn.BatchNorm2d(64, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),                       # 64 x 2 x 2
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(64 * 2 * 2, 10, dtype=dtype),
    )
