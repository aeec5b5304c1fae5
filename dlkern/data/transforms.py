"""Random augmentations for NCHW image batches, vectorized over the batch.

Each transform is a callable ``t(batch, rng) -> new batch`` (the input is never
modified); rng is a numpy Generator, an int seed or None. Every sample of the batch
draws its own randomness, with torchvision's per-image semantics.
"""
import math
import numbers
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlkern._checks import real
from dlkern.random import as_rng


def _images(fn, batch):
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"{fn}: batch must be a NumPy array, got {type(batch).__name__}")
    if batch.ndim != 4:
        raise ValueError(f"{fn}: batch must be 4-D (N, C, H, W), got shape {batch.shape}")
    return batch


def _probability(fn, p):
    p = real(fn, "p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}: p must be a probability in [0, 1], got {p!r}")
    return p


class Compose:
    """Apply transforms in order, all drawing from the same rng."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable(batch, rng)")
        self.transforms = transforms

    def __call__(self, batch, rng=None):
        rng = as_rng(rng)
        for t in self.transforms:
            batch = t(batch, rng)
        return batch

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = _probability("RandomHorizontalFlip", p)

    def __call__(self, batch, rng=None):
        batch = _images("RandomHorizontalFlip", batch)
        flip = as_rng(rng).random(len(batch)) < self.p
        return np.where(flip[:, None, None, None], batch[..., ::-1], batch)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Pad with `fill`, then cut a size (h, w) window at a random offset per image.

    size: int or (h, w). padding: int (all sides), (left/right, top/bottom) or
    (left, top, right, bottom), as torchvision's RandomCrop.
    """

    def __init__(self, size, padding=0, fill=0):
        self.size = _pair("RandomCrop", "size", size, minimum=1)
        self.padding = _padding(padding)
        self.fill = fill

    def __call__(self, batch, rng=None):
        batch = _images("RandomCrop", batch)
        left, top, right, bottom = self.padding
        if any(self.padding):
            batch = np.pad(batch, ((0, 0), (0, 0), (top, bottom), (left, right)),
                           constant_values=self.fill)
        n, _, height, width = batch.shape
        th, tw = self.size
        if height < th or width < tw:
            raise ValueError(f"RandomCrop: crop size {(th, tw)} is larger than the (padded) "
                             f"image size {(height, width)}")
        rng = as_rng(rng)
        i = rng.integers(0, height - th + 1, size=n)
        j = rng.integers(0, width - tw + 1, size=n)
        # windows[n, c, i, j] is the (th, tw) crop at (i, j): a view; indexing copies
        # only the chosen crops. The advanced indices around the channel slice put
        # the batch axis first: (N, C, th, tw).
        windows = sliding_window_view(batch, (th, tw), axis=(2, 3))
        return windows[np.arange(n), :, i, j]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill})"


class RandomErasing:
    """Erase a random rectangle of each image with probability p (Zhong et al. 2017),
    with torchvision's semantics: the rectangle covers a fraction in `scale` of the
    image with aspect ratio log-uniform in `ratio`, up to 10 draws until it fits
    strictly inside; if none fits the image is kept. value: a number, one number per
    channel, or "random" for standard normal noise."""

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0):
        fn = "RandomErasing"
        self.p = _probability(fn, p)
        if not isinstance(value, (numbers.Real, str, tuple, list)):
            raise TypeError(f"{fn}: value must be a number, a sequence or 'random', got {value!r}")
        if isinstance(value, str) and value != "random":
            raise ValueError(f"{fn}: the only string value is 'random', got {value!r}")
        if not isinstance(scale, (tuple, list)) or len(scale) != 2:
            raise TypeError(f"{fn}: scale must be a pair (min, max), got {scale!r}")
        if not isinstance(ratio, (tuple, list)) or len(ratio) != 2:
            raise TypeError(f"{fn}: ratio must be a pair (min, max), got {ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            warnings.warn(f"{fn}: scale and ratio should be of kind (min, max)", stacklevel=2)
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError(f"{fn}: scale must be within [0, 1], got {scale!r}")
        if ratio[0] <= 0:
            raise ValueError(f"{fn}: ratio must be positive, got {ratio!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.value = value

    def _fill(self, batch, rng):
        if isinstance(self.value, str):
            if batch.dtype.kind != "f":
                raise TypeError("RandomErasing: value='random' needs a floating-point batch, "
                                f"got dtype {batch.dtype}")
            return rng.standard_normal(batch.shape, dtype=batch.dtype)
        if isinstance(self.value, (tuple, list)):
            if len(self.value) not in (1, batch.shape[1]):
                raise ValueError(f"RandomErasing: value must have 1 or {batch.shape[1]} (number "
                                 f"of channels) entries, got {len(self.value)}")
            return np.asarray(self.value, dtype=batch.dtype).reshape(1, -1, 1, 1)
        return np.asarray(self.value, dtype=batch.dtype)

    def __call__(self, batch, rng=None):
        batch = _images("RandomErasing", batch)
        rng = as_rng(rng)
        n, _, height, width = batch.shape
        area = height * width
        apply = rng.random(n) < self.p
        # Ten attempts per image at once; the first that fits wins, as torchvision's loop.
        erase_area = area * rng.uniform(self.scale[0], self.scale[1], size=(n, 10))
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]),
                                    size=(n, 10)))
        hs = np.rint(np.sqrt(erase_area * aspect)).astype(np.int64)
        ws = np.rint(np.sqrt(erase_area / aspect)).astype(np.int64)
        fits = (hs < height) & (ws < width)
        first = np.argmax(fits, axis=1)
        rows = np.arange(n)
        erase = apply & fits[rows, first]
        h = np.where(erase, hs[rows, first], 0)
        w = np.where(erase, ws[rows, first], 0)
        top = rng.integers(0, height - h + 1)
        left = rng.integers(0, width - w + 1)
        fill = self._fill(batch, rng)
        ys = np.arange(height)
        xs = np.arange(width)
        in_rows = (ys >= top[:, None]) & (ys < (top + h)[:, None])  # (N, H)
        in_cols = (xs >= left[:, None]) & (xs < (left + w)[:, None])  # (N, W)
        mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
        return np.where(mask, fill, batch).astype(batch.dtype, copy=False)

    def __repr__(self):
        return (f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, "
                f"value={self.value!r})")


class GaussianNoise:
    """Add independent N(mean, std^2) noise to every entry (no clipping)."""

    def __init__(self, std, mean=0.0):
        self.std = real("GaussianNoise", "std", std)
        if not self.std >= 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std!r}")
        self.mean = real("GaussianNoise", "mean", mean)

    def __call__(self, batch, rng=None):
        if not isinstance(batch, np.ndarray) or batch.dtype.kind != "f":
            got = batch.dtype if isinstance(batch, np.ndarray) else type(batch).__name__
            raise TypeError(f"GaussianNoise: batch must be a floating-point NumPy array, got {got}")
        noise = as_rng(rng).standard_normal(batch.shape, dtype=batch.dtype)
        noise *= batch.dtype.type(self.std)
        noise += batch.dtype.type(self.mean)
        return batch + noise

    def __repr__(self):
        return f"GaussianNoise(std={self.std}, mean={self.mean})"


def _pair(fn, name, value, minimum):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < minimum for v in items):
        raise ValueError(f"{fn}: {name} must be an int or a pair of ints >= {minimum}, "
                         f"got {value!r}")
    return int(items[0]), int(items[1])


def _padding(padding):
    items = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,)
    if len(items) not in (1, 2, 4) or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                          or v < 0 for v in items):
        raise ValueError("RandomCrop: padding must be a non-negative int or a sequence of 2 or "
                         f"4 of them, got {padding!r}")
    if len(items) == 1:
        return (int(items[0]),) * 4
    if len(items) == 2:  # (left/right, top/bottom)
        return int(items[0]), int(items[1]), int(items[0]), int(items[1])
    return tuple(int(v) for v in items)  # (left, top, right, bottom)
