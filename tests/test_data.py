"""DataLoader batching and shuffling; image augmentations' shapes and semantics."""
import numpy as np
import pytest

from dlkern.data import (Compose, DataLoader, GaussianNoise, RandomCrop, RandomErasing,
                         RandomHorizontalFlip)


def _dataset(n=10):
    x = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 3))  # row i is all i
    y = np.arange(n)
    return x, y


@pytest.mark.parametrize("n,batch_size,drop_last,expected", [
    (10, 3, False, [3, 3, 3, 1]), (10, 3, True, [3, 3, 3]), (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]), (2, 5, False, [2]), (2, 5, True, []), (0, 4, False, []),
])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batch_count_and_sizes(n, batch_size, drop_last, expected, shuffle):
    x, y = _dataset(n)
    loader = DataLoader(x, y, batch_size=batch_size, drop_last=drop_last, shuffle=shuffle, seed=0)
    assert len(loader) == len(expected)
    sizes = [len(xb) for xb, _ in loader]
    assert sizes == expected


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_once_per_epoch_and_aligned(drop_last):
    x, y = _dataset(103)
    loader = DataLoader(x, y, batch_size=10, shuffle=True, drop_last=drop_last, seed=3)
    for _ in range(3):
        seen = []
        for xb, yb in loader:
            np.testing.assert_array_equal(xb[:, 0], yb)  # x and y stay paired
            seen.append(yb)
        seen = np.concatenate(seen)
        assert len(seen) == (100 if drop_last else 103)
        assert len(np.unique(seen)) == len(seen)
        if not drop_last:
            np.testing.assert_array_equal(np.sort(seen), y)


def _epochs(loader, k):
    return [np.concatenate([yb for _, yb in loader]) for _ in range(k)]


def test_shuffle_is_reproducible_and_differs_between_epochs():
    x, y = _dataset(50)
    a = _epochs(DataLoader(x, y, batch_size=7, shuffle=True, seed=42), 3)
    b = _epochs(DataLoader(x, y, batch_size=7, shuffle=True, seed=42), 3)
    c = _epochs(DataLoader(x, y, batch_size=7, shuffle=True, seed=43), 3)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], y)


def test_no_shuffle_keeps_order():
    x, y = _dataset(10)
    got = np.concatenate([yb for _, yb in DataLoader(x, y, batch_size=4)])
    np.testing.assert_array_equal(got, y)


def test_resume_from_state_dict_gives_the_same_epochs():
    x, y = _dataset(30)
    full = _epochs(DataLoader(x, y, batch_size=4, shuffle=True, seed=9), 4)
    first = DataLoader(x, y, batch_size=4, shuffle=True, seed=9)
    _epochs(first, 2)
    resumed = DataLoader(x, y, batch_size=4, shuffle=True)
    resumed.load_state_dict(first.state_dict())
    for got, want in zip(_epochs(resumed, 2), full[2:]):
        np.testing.assert_array_equal(got, want)


def test_seed_none_still_shuffles_and_iter_advances_the_epoch():
    x, y = _dataset(40)
    loader = DataLoader(x, y, batch_size=40, shuffle=True)
    it1, it2 = iter(loader), iter(loader)
    e1, e2 = next(it1)[1], next(it2)[1]
    assert loader.epoch == 2
    assert sorted(e1) == sorted(e2) == list(range(40)) and not np.array_equal(e1, e2)


def test_without_y_yields_arrays_and_batches_are_copies():
    x, _ = _dataset(6)
    batches = list(DataLoader(x, batch_size=4))
    assert [b.shape for b in batches] == [(4, 3), (2, 3)]
    batches[0][...] = -1
    assert (x >= 0).all()
    xb = next(iter(DataLoader(x, batch_size=4, shuffle=True, seed=0)))
    xb[...] = -1
    assert (x >= 0).all()


def test_transform_gets_the_loader_rng_and_is_reproducible():
    x = np.random.default_rng(0).standard_normal((20, 1, 4, 4))
    calls = []

    def spy(batch, rng):
        calls.append(rng)
        return batch + rng.standard_normal()

    out1 = [xb for xb in DataLoader(x, batch_size=8, shuffle=True, seed=5, transform=spy)]
    out2 = [xb for xb in DataLoader(x, batch_size=8, shuffle=True, seed=5, transform=spy)]
    assert all(isinstance(r, np.random.Generator) for r in calls) and len(calls) == 6
    for a, b in zip(out1, out2):
        np.testing.assert_array_equal(a, b)
    flip = DataLoader(x, np.arange(20), batch_size=20, transform=RandomHorizontalFlip(1.0))
    xb, yb = next(iter(flip))
    np.testing.assert_array_equal(xb, x[..., ::-1])


def test_loader_bad_arguments():
    x, y = _dataset(5)
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        DataLoader([1, 2, 3])
    with pytest.raises(ValueError, match="one entry per sample"):
        DataLoader(x, y[:4])
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=2.5)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(x, y, seed=-1)
    with pytest.raises(TypeError, match="transform"):
        DataLoader(x, y, transform=3)


# -- augmentations ----------------------------------------------------------------------

def _images(n=6, c=3, h=8, w=10, dtype=np.float32, seed=0):
    # values in [1, 2): a zero can only come from padding or erasing
    return (1 + np.random.default_rng(seed).random((n, c, h, w))).astype(dtype)


def test_horizontal_flip():
    x = _images(n=4000, c=1, h=2, w=3)
    before = x.copy()
    assert np.array_equal(RandomHorizontalFlip(p=1.0)(x, 0), x[..., ::-1])
    assert np.array_equal(RandomHorizontalFlip(p=0.0)(x, 0), x)
    out = RandomHorizontalFlip()(x, 1)
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | kept)
    assert abs(flipped.mean() - 0.5) < 0.05  # 4000 draws: 6 standard errors
    np.testing.assert_array_equal(x, before)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, RandomHorizontalFlip()(x, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_random_crop_picks_a_window_of_the_padded_image(dtype):
    x = _images(n=5, dtype=np.float64)
    x = (x * 100).astype(dtype) if dtype == np.uint8 else x.astype(dtype)
    out = RandomCrop((6, 7), padding=2)(x, 3)
    assert out.shape == (5, 3, 6, 7) and out.dtype == dtype
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for k in range(5):
        matches = [(i, j) for i in range(12 - 6 + 1) for j in range(14 - 7 + 1)
                   if np.array_equal(padded[k, :, i:i + 6, j:j + 7], out[k])]
        assert matches, f"sample {k} is not a crop of its padded image"


def test_random_crop_offsets_cover_every_position_and_identity_without_padding():
    x = _images(n=2000, c=1, h=4, w=4)
    out = RandomCrop(4, padding=1)(x, 0)
    # where the 4x4 crop sits is given by which border row/column is zero padding
    top = (out[:, 0, 0, :] == 0).all(axis=1)
    bottom = (out[:, 0, -1, :] == 0).all(axis=1)
    left = (out[:, 0, :, 0] == 0).all(axis=1)
    right = (out[:, 0, :, -1] == 0).all(axis=1)
    di = np.where(top, 0, np.where(bottom, 2, 1))
    dj = np.where(left, 0, np.where(right, 2, 1))
    counts = np.bincount(di * 3 + dj, minlength=9)
    assert counts.min() > 2000 / 9 * 0.7  # all 9 offsets, roughly uniform
    np.testing.assert_array_equal(RandomCrop(4)(x, 0), x)


def test_random_crop_padding_forms():
    x = _images(n=3, h=5, w=5)
    out = RandomCrop((5, 9), padding=(2, 0))(x, 0)  # left/right 2, top/bottom 0
    assert out.shape == (3, 3, 5, 9)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (0, 0), (2, 2))))
    out = RandomCrop((6, 8), padding=(1, 0, 2, 1), fill=-1.0)(x, 0)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 2)),
                                              constant_values=-1.0))
    with pytest.raises(ValueError, match="larger than"):
        RandomCrop(6)(x, 0)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(3, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="size"):
        RandomCrop(0)


def _erased_boxes(x, out, value=0.0):
    """(top, left, h, w) of the single erased rectangle per image, or None."""
    boxes = []
    for k in range(len(x)):
        mask = out[k] == value
        assert np.all(mask == mask[0]), "the same pixels are erased in every channel"
        mask = mask[0]
        if not mask.any():
            np.testing.assert_array_equal(out[k], x[k])
            boxes.append(None)
            continue
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert box.all() and mask.sum() == box.size, "erased pixels form one rectangle"
        np.testing.assert_array_equal(out[k][:, ~mask], x[k][:, ~mask])
        boxes.append((rows[0], cols[0], len(rows), len(cols)))
    return boxes


def test_random_erasing_rectangles_follow_scale_and_ratio():
    x = _images(n=3000, c=2, h=20, w=30)
    out = RandomErasing(p=1.0, scale=(0.05, 0.2), ratio=(0.5, 2.0))(x, 0)
    boxes = _erased_boxes(x, out)
    assert all(b is not None for b in boxes)
    h = np.array([b[2] for b in boxes])
    w = np.array([b[3] for b in boxes])
    area = h * w / 600
    # rounding h and w to integers moves the area and the ratio a little
    assert area.min() > 0.05 * 0.7 and area.max() < 0.2 * 1.3
    assert (h / w).min() > 0.5 * 0.7 and (h / w).max() < 2.0 * 1.4
    assert (h < 20).all() and (w < 30).all()
    tops = np.array([b[0] for b in boxes])
    assert tops.min() == 0 and (tops + h).max() == 20  # positions reach both borders


def test_random_erasing_probability_values_and_fallback():
    x = _images(n=4000, c=3, h=8, w=8)
    out = RandomErasing(p=0.3)(x, 1)
    erased = np.any(out != x, axis=(1, 2, 3))
    assert abs(erased.mean() - 0.3) < 0.04
    np.testing.assert_array_equal(RandomErasing(p=0.0)(x, 1), x)
    small = x[:50]
    out = RandomErasing(p=1.0, value=(7.0, 8.0, 9.0))(small, 2)
    for k in range(50):
        changed = out[k] != small[k]
        for ch, v in enumerate((7.0, 8.0, 9.0)):
            assert np.all(out[k, ch][changed[ch]] == v) and changed[ch].any()
    out = RandomErasing(p=1.0, value="random")(small, 2)
    changed = out != small
    assert changed.any(axis=(1, 2, 3)).all()
    assert abs(out[changed].mean()) < 0.2 and 0.8 < out[changed].std() < 1.2
    # a rectangle that can never fit strictly inside (the whole image) leaves images as they are
    never_fits = RandomErasing(p=1.0, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_array_equal(never_fits(small, 0), small)
    assert not np.shares_memory(RandomErasing(p=1.0)(small, 0), small)


def test_random_erasing_bad_arguments():
    with pytest.raises(ValueError, match="p must be"):
        RandomErasing(p=1.5)
    with pytest.raises(TypeError, match="p must be a real number"):
        RandomErasing(p="0.5")
    with pytest.raises(TypeError, match="p must be a real number"):
        RandomErasing(p=True)
    with pytest.raises(ValueError, match="scale"):
        RandomErasing(scale=(0.1, 1.5))
    with pytest.raises(ValueError, match="random"):
        RandomErasing(value="noise")
    with pytest.raises(ValueError, match="channels"):
        RandomErasing(p=1.0, value=(1.0, 2.0))(_images(c=3), 0)
    with pytest.warns(UserWarning, match="min, max"):
        RandomErasing(scale=(0.3, 0.1))
    with pytest.raises(ValueError, match="4-D"):
        RandomErasing()(np.zeros((3, 4, 4)), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_noise(dtype):
    x = np.full((100, 2, 20, 25), 3.0, dtype)
    out = GaussianNoise(0.1)(x, 0)
    assert out.dtype == dtype and (x == 3.0).all()
    noise = (out - x).astype(np.float64)
    assert abs(noise.mean()) < 0.002 and noise.std() == pytest.approx(0.1, rel=0.01)
    np.testing.assert_array_equal(GaussianNoise(0.0)(x, 0), x)
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(float("nan"))
    with pytest.raises(TypeError, match="std must be a real number"):
        GaussianNoise("0.1")
    with pytest.raises(TypeError, match="mean must be a real number"):
        GaussianNoise(0.1, mean=None)
    with pytest.raises(TypeError, match="floating-point"):
        GaussianNoise(0.1)(x.astype(np.int32), 0)


def test_compose_is_reproducible_and_ordered():
    x = _images(n=16, h=8, w=8)
    t = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), RandomErasing(p=0.5),
                 GaussianNoise(0.01)])
    a, b = t(x, 7), t(x, 7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert not np.array_equal(t(x, 8), a)
    seen = []
    Compose([lambda b, r: seen.append(1) or b + 1, lambda b, r: seen.append(2) or b * 2])(x, 0)
    assert seen == [1, 2]
    with pytest.raises(TypeError, match="callable"):
        Compose([3])


def test_generator_seed_is_reproducible():
    x, y = _dataset(30)
    a = _epochs(DataLoader(x, y, batch_size=8, shuffle=True, seed=np.random.default_rng(4)), 2)
    b = _epochs(DataLoader(x, y, batch_size=8, shuffle=True, seed=np.random.default_rng(4)), 2)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1])
