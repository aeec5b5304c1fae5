"""dlkern's default random generator (the counterpart of torch.manual_seed).

Everything random in dlkern (dropout, rrelu in training, and later initializers and
data loaders) takes an ``rng`` argument: a numpy.random.Generator, an int seed, or
None for the generator held here. ``seed(n)`` replaces it with a fresh one, so a
program that calls ``dlkern.random.seed(0)`` once is reproducible end to end.
"""
import numbers

import numpy as np

_generator = np.random.default_rng()


def seed(n):
    """Reseed dlkern's default generator (like torch.manual_seed); returns it."""
    global _generator
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"seed: n must be an int, got {n!r}")
    if n < 0:
        raise ValueError(f"seed: n must be >= 0, got {n}")
    _generator = np.random.default_rng(int(n))
    return _generator


def default_rng():
    """The generator dlkern uses when a function is called with rng=None."""
    return _generator


def as_rng(rng, fn="as_rng"):
    """A Generator from a Generator (returned as is), an int seed, or None (the default)."""
    if rng is None:
        return _generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{fn}: rng seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{fn}: rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__}")


__all__ = ["seed", "default_rng", "as_rng"]
