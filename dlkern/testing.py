"""Helpers for dlkern's tests and benchmarks (installed, like numpy.testing).

Tolerances are per dtype and scale with the magnitude of the expected values,
because a float32 sum of K products carries an error that grows with K and with
the size of the terms.
"""
import numpy as np

import dlkern

# (rtol, atol relative to max(1, max|expected|))
TOLERANCES = {
    np.dtype(np.float32): (2e-4, 2e-5),
    np.dtype(np.float64): (1e-9, 1e-11),
}


def tolerance(dtype):
    return TOLERANCES[np.dtype(dtype)]


def assert_close(actual, desired, dtype=None, rtol=None, atol=None, err_msg=""):
    """assert_allclose with dlkern's per-dtype tolerances; also checks shape and dtype."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    dtype = np.dtype(dtype if dtype is not None else actual.dtype)
    if actual.shape != desired.shape:
        raise AssertionError(f"shape {actual.shape} != expected {desired.shape}. {err_msg}")
    default_rtol, default_atol = TOLERANCES.get(dtype, TOLERANCES[np.dtype(np.float64)])
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    finite = desired[np.isfinite(desired)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=err_msg)


def assert_dtype(actual, dtype):
    if np.asarray(actual).dtype != np.dtype(dtype):
        raise AssertionError(f"dtype {np.asarray(actual).dtype} != expected {np.dtype(dtype)}")


def assert_same_bits_on_one_and_two_threads(run):
    """run() returns a sequence of arrays (or None, e.g. a gradient output_mask left
    out); they must be bit-identical with 1 and 2 threads (dlkern's kernels never
    split a reduction by thread count), and a None must stay None."""
    try:
        dlkern.set_num_threads(1)
        one = run()
        dlkern.set_num_threads(2)
        two = run()
    finally:
        dlkern.set_num_threads(None)
    for a, b in zip(one, two, strict=True):
        if a is None or b is None:
            assert a is None and b is None, "an output is None with one thread count only"
        else:
            np.testing.assert_array_equal(a, b)


def conv2d_case_id(case):
    """A pytest id for a conv2d test case (x shape, weight shape, stride, padding,
    dilation, groups, then anything more)."""
    extra = "".join(f"-{v}" for v in case[6:])
    return ("x{}-w{}-s{}-p{}-d{}-g{}".format(*case[:6]) + extra).replace(" ", "")


def conv2d_case(case, dtype, seed=0, bias=True):
    """(x, weight, bias or None, grad_out, kwargs) of a conv2d test case (x shape, weight
    shape, stride, padding, dilation, groups): standard normal, drawn in that order from
    default_rng(seed); grad_out has the output's shape, kwargs the geometry."""
    from dlkern import reference

    xs, ws, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = rng.standard_normal(reference.conv2d(x, w, b, **kw).shape).astype(dtype)
    return x, w, b, gy, kw


def assert_conv2d_matches_reference(outputs, x, w, b, gy, kw):
    """outputs = (y, grad_x, grad_weight, grad_bias) of a conv2d case (conv2d_case) as
    some backend computed them: each keeps x's dtype and is close to dlkern.reference's."""
    from dlkern import reference

    expected = (reference.conv2d(x, w, b, **kw),) + tuple(
        reference.conv2d_backward(gy, x, w, **kw))
    for name, got, exp in zip(("y", "grad_x", "grad_weight", "grad_bias"), outputs, expected):
        assert got.dtype == x.dtype, (name, got.dtype)
        assert_close(got, exp, err_msg=name)


def numerical_gradient(f, x, eps=1e-6):
    """Centered finite-difference gradient of the scalar function f at float64 array x.

    f is called with x modified in place one element at a time (and restored)."""
    if x.dtype != np.float64:
        raise TypeError("numerical_gradient needs float64 input")
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + eps
        plus = f()
        flat_x[i] = old - eps
        minus = f()
        flat_x[i] = old
        flat_g[i] = (plus - minus) / (2 * eps)
    return grad


def random_array(rng, shape, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def torch_or_none():
    """The torch module if installed, else None (tests skip the oracle cleanly)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def record_rate(benchmark, flops=None, nbytes=None):
    """Put GFLOP/s and/or GB/s of the median time into benchmark.extra_info.

    Call after benchmark(...) has run. With --benchmark-disable there are no
    timings and nothing is recorded (the call still ran and was asserted)."""
    stats = getattr(benchmark, "stats", None)
    if stats is None or getattr(benchmark, "disabled", False):
        return
    median = stats.stats.median
    if median <= 0:
        return
    if flops is not None:
        benchmark.extra_info["gflops"] = round(flops / median / 1e9, 2)
    if nbytes is not None:
        benchmark.extra_info["gbps"] = round(nbytes / median / 1e9, 2)
