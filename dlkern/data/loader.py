"""DataLoader: mini-batches of NumPy arrays, shuffled reproducibly from a seed.

Epoch e draws its permutation (and the randomness of its transform) from a generator
seeded by (seed, e), so the sequence of epochs is fixed by the seed alone, and a run
resumed from a checkpoint at epoch e sees the same batches as an uninterrupted run
(set ``loader.epoch = e``, or load ``state_dict()``).
"""
import numbers

import numpy as np

from dlkern.data.transforms import as_rng


class DataLoader:
    """Iterate over (xb, yb) mini-batches of the arrays x and y (first axis = samples).

    x: ndarray of samples; y: ndarray (or None) with len(y) == len(x). Without y the
        loader yields xb alone.
    batch_size: samples per batch; the last batch is smaller unless drop_last.
    shuffle: a new permutation every epoch (reproducible from seed).
    seed: int seed or Generator (None draws one from dlkern's default generator at
        construction, so a loader is still consistent with itself); also seeds the
        transform's randomness.
    transform: callable(xb, rng) -> xb applied to each batch (see dlkern.data.transforms).

    Batches are copies (fancy indexing), so transforms may modify them freely.
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, drop_last=False, seed=None,
                 transform=None):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"DataLoader: x must be a NumPy array, got {type(x).__name__}")
        if x.ndim == 0:
            raise ValueError("DataLoader: x must have a sample axis, got a 0-d array")
        if y is not None:
            if not isinstance(y, np.ndarray):
                raise TypeError(f"DataLoader: y must be a NumPy array or None, "
                                f"got {type(y).__name__}")
            if y.ndim == 0 or len(y) != len(x):
                raise ValueError(f"DataLoader: y must have one entry per sample of x: x has "
                                 f"{len(x)} samples, y has shape {y.shape}")
        if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable(batch, rng), "
                            f"got {type(transform).__name__}")
        if seed is None or isinstance(seed, np.random.Generator):
            # None: one draw from dlkern's default generator, so dlkern.random.seed(n)
            # also fixes loaders built without a seed.
            seed = int(as_rng(seed).integers(2 ** 63))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, a Generator or "
                             f"None, got {seed!r}")
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.transform = transform
        self.epoch = 0

    @property
    def num_samples(self):
        return len(self.x)

    def __len__(self):
        """Number of batches per epoch."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _epoch_rng(self, epoch):
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))

    def __iter__(self):
        # Advance the epoch now, not at the first next(), so iter() twice gives two epochs.
        rng = self._epoch_rng(self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.x)) if self.shuffle else None
        return self._batches(order, rng)

    def _batches(self, order, rng):
        n = len(self.x)
        for b in range(len(self)):
            start = b * self.batch_size
            if order is None:
                idx = slice(start, min(start + self.batch_size, n))
                xb = self.x[idx].copy()
                yb = None if self.y is None else self.y[idx].copy()
            else:
                idx = order[start:start + self.batch_size]
                xb = self.x[idx]
                yb = None if self.y is None else self.y[idx]
            if self.transform is not None:
                xb = self.transform(xb, rng)
            yield xb if self.y is None else (xb, yb)

    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])

    def __repr__(self):
        return (f"DataLoader(samples={len(self.x)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
                f"transform={self.transform!r})")
