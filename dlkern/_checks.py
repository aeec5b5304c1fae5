"""Argument checks shared by dlkern.functional and dlkern.reference.

Both floors call the same checks, so a bad argument raises the same exception with
the same message whichever backend runs. Messages name the function, the argument,
what was expected and what came.
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(fn, name, x):
    """x as a float32/float64 ndarray (not copied); TypeError for anything else."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got dtype {x.dtype}")
    return x


def optional_float_array(fn, name, x):
    return None if x is None else float_array(fn, name, x)


def same_dtype(fn, ref_name, ref, **others):
    """TypeError unless every array in others has ref's dtype (None entries are skipped)."""
    for name, arr in others.items():
        if arr is not None and arr.dtype != ref.dtype:
            raise TypeError(f"{fn}: {name} has dtype {arr.dtype} but {ref_name} has dtype "
                            f"{ref.dtype}; they must match")


def ndim(fn, name, x, expected, layout=None):
    """ValueError unless x.ndim == expected (an int or a tuple of allowed ranks)."""
    allowed = (expected,) if isinstance(expected, int) else tuple(expected)
    if x.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        hint = f" ({layout})" if layout else ""
        raise ValueError(f"{fn}: {name} must be {want}{hint}, got shape {x.shape}")


def real(fn, name, value):
    """value as a Python float; TypeError unless it is a real number (bools rejected)."""
    if type(value) is float:  # the common case, past the slower ABC checks
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    return float(value)


def integer(fn, name, value, minimum=None):
    """value as a Python int (bools rejected), at least minimum if given."""
    if type(value) is not int:  # plain ints skip the slower ABC checks (bool is not int)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return value


def int_tuple(fn, name, value, n=2, minimum=None):
    """An int or a sequence of n ints, as a tuple of n Python ints (each >= minimum)."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{fn}: {name} must be an int or a sequence of {n} ints, "
                             f"got {value!r}")
        items = value
    else:
        items = (value,) * n
    out = []
    for v in items:
        if type(v) is not int:  # plain ints skip the slower ABC checks (bool is not int)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{fn}: {name} must be an int or a sequence of {n} ints, "
                                f"got {value!r}")
            v = int(v)
        if minimum is not None and v < minimum:
            raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
        out.append(v)
    return tuple(out)


def bool_mask(fn, name, value, n=3):
    """A sequence of n bools (Python or NumPy), as a tuple of Python bools: TypeError
    for anything else (a bare bool, a string, ints, None entries), ValueError for the
    wrong length."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") \
            or not hasattr(value, "__getitem__"):
        raise TypeError(f"{fn}: {name} must be a sequence of {n} bools, got {value!r}")
    if len(value) != n:
        raise ValueError(f"{fn}: {name} must have {n} entries, got {len(value)}: {value!r}")
    out = []
    for v in value:
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{fn}: {name} must be a sequence of {n} bools, got {value!r}")
        out.append(bool(v))
    return tuple(out)


def shape_equals(fn, name, x, shape, why=""):
    if tuple(x.shape) != tuple(shape):
        extra = f" ({why})" if why else ""
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}{extra}, got {x.shape}")


def contiguous(x):
    """C-contiguous view or copy (Fortran-ordered and strided inputs are copied once).

    Unlike np.ascontiguousarray, a 0-d array stays 0-d."""
    return x if x.flags.c_contiguous else np.array(x, order="C", copy=True)
