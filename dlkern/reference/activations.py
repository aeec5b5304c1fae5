"""Elementwise activations and their backward, in vectorized NumPy.

Same names, signatures, semantics and errors as dlkern.functional.activations.
Gradients at exactly 0 and at NaN follow torch's autograd: relu'(0) = 0,
leaky_relu'(0) = prelu'(0) = the slope, elu'(0) = alpha. sigmoid_backward and
tanh_backward take the forward OUTPUT (as torch's own backward functions do).
"""
import functools

import numpy as np

from dlkern._args import activations as _args

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "prelu",
           "prelu_backward", "rrelu", "rrelu_backward", "elu", "elu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "softplus", "softplus_backward"]


def _arrays(fn):
    """NumPy ufuncs turn 0-D arrays into scalars; return ndarrays as functional does."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(None if o is None else np.asarray(o) for o in out)
        return np.asarray(out)
    return wrapper


def _zero(x):
    return x.dtype.type(0)


@_arrays
def relu(x):
    x = _args.unary("relu", x)
    return np.maximum(x, _zero(x))  # np.maximum propagates NaN, as torch does


@_arrays
def relu_backward(grad_out, x):
    grad_out, x = _args.grad_pair("relu_backward", grad_out, x)
    return np.where(x <= 0, _zero(x), grad_out)


@_arrays
def leaky_relu(x, negative_slope=0.01):
    x = _args.unary("leaky_relu", x)
    slope = _args.real("leaky_relu", "negative_slope", negative_slope)
    return np.where(x > 0, x, x * x.dtype.type(slope))


@_arrays
def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    grad_out, x = _args.grad_pair("leaky_relu_backward", grad_out, x)
    slope = _args.real("leaky_relu_backward", "negative_slope", negative_slope)
    return np.where(x > 0, grad_out, grad_out * x.dtype.type(slope))


def _channel_view(w, x, n, c, s):
    """The weight broadcastable against x reshaped to (n, c, s)."""
    return w.reshape(1, c, 1), x.reshape(n, c, s)


@_arrays
def prelu(x, weight):
    shape = np.shape(x)
    x, w, n, c, s = _args.prelu_layout("prelu", x, weight)
    wb, x3 = _channel_view(w, x, n, c, s)
    return np.where(x3 > 0, x3, wb * x3).reshape(shape)


@_arrays
def prelu_backward(grad_out, x, weight):
    fn = "prelu_backward"
    weight_shape = np.shape(weight)
    x, w, n, c, s = _args.prelu_layout(fn, x, weight)
    grad_out, x = _args.grad_pair(fn, grad_out, x)
    wb, x3 = _channel_view(w, x, n, c, s)
    g3 = grad_out.reshape(n, c, s)
    pos = x3 > 0
    grad_x = np.where(pos, g3, wb * g3).reshape(x.shape)
    grad_w = np.where(pos, _zero(x), x3 * g3).sum(axis=(0, 2))
    return grad_x, grad_w.reshape(weight_shape)


@_arrays
def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, rng=None, return_noise=False):
    """Randomized leaky relu. In training each element with x <= 0 gets a slope drawn
    uniformly in [lower, upper] (from rng: a Generator, an int seed, or None for
    dlkern.random's default); in eval the slope is (lower + upper) / 2. With
    return_noise=True returns (out, noise), noise holding each element's multiplier
    (1 where x > 0), which rrelu_backward needs in training."""
    x = _args.unary("rrelu", x)
    lower, upper, training = _args.rrelu_params("rrelu", lower, upper, training)
    if not training:
        out = leaky_relu(x, (lower + upper) / 2)
        return (out, None) if return_noise else out
    slopes = _args.rrelu_slopes("rrelu", rng, x.shape, x.dtype, lower, upper)
    noise = np.where(x <= 0, slopes, x.dtype.type(1))
    out = x * noise
    return (out, noise) if return_noise else out


@_arrays
def rrelu_backward(grad_out, x, lower=1.0 / 8, upper=1.0 / 3, training=False, noise=None):
    fn = "rrelu_backward"
    grad_out, x = _args.grad_pair(fn, grad_out, x)
    lower, upper, training = _args.rrelu_params(fn, lower, upper, training)
    noise = _args.rrelu_noise(fn, noise, x, training)
    if not training:
        return leaky_relu_backward(grad_out, x, (lower + upper) / 2)
    return grad_out * noise


@_arrays
def elu(x, alpha=1.0):
    x = _args.unary("elu", x)
    alpha = x.dtype.type(_args.real("elu", "alpha", alpha))
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * alpha)


@_arrays
def elu_backward(grad_out, x, alpha=1.0):
    grad_out, x = _args.grad_pair("elu_backward", grad_out, x)
    alpha = x.dtype.type(_args.real("elu_backward", "alpha", alpha))
    return np.where(x > 0, grad_out, grad_out * alpha * np.exp(np.minimum(x, 0)))


@_arrays
def sigmoid(x):
    x = _args.unary("sigmoid", x)
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@_arrays
def sigmoid_backward(grad_out, output):
    """Gradient of sigmoid from its OUTPUT y = sigmoid(x): grad_out * (1 - y) * y."""
    grad_out, y = _args.grad_pair("sigmoid_backward", grad_out, output, "output")
    return grad_out * (1 - y) * y


@_arrays
def tanh(x):
    x = _args.unary("tanh", x)
    return np.tanh(x)


@_arrays
def tanh_backward(grad_out, output):
    """Gradient of tanh from its OUTPUT y = tanh(x): grad_out * (1 - y*y)."""
    grad_out, y = _args.grad_pair("tanh_backward", grad_out, output, "output")
    return grad_out * (1 - y * y)


@_arrays
def softplus(x, beta=1.0, threshold=20.0):
    """log1p(exp(beta*x))/beta, or x where beta*x > threshold (torch's rule). Computed
    as max(bx, 0) + log1p(exp(-|bx|)), which never overflows."""
    x = _args.unary("softplus", x)
    beta, threshold = _args.softplus_params("softplus", beta, threshold)
    with np.errstate(over="ignore"):  # bx = +-inf is handled by the threshold test
        bx = x * x.dtype.type(beta)
    soft = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / x.dtype.type(beta)
    return np.where(bx > x.dtype.type(threshold), x, soft)


@_arrays
def softplus_backward(grad_out, x, beta=1.0, threshold=20.0):
    grad_out, x = _args.grad_pair("softplus_backward", grad_out, x)
    beta, threshold = _args.softplus_params("softplus_backward", beta, threshold)
    with np.errstate(over="ignore"):
        bx = x * x.dtype.type(beta)
    e = np.exp(-np.abs(bx))
    sig = np.where(bx >= 0, 1 / (1 + e), e / (1 + e))
    return np.where(bx > x.dtype.type(threshold), grad_out, grad_out * sig)
