"""Elementwise activations with backward: torch.nn.functional's names and semantics.

C where it pays, NumPy where it does not (measured on (32, 64, 32, 32) float32, 2 threads,
Zen 4; figures from bench/bench_activations.py, see the branch report):

* C (src/activations.c): relu, leaky_relu, prelu, elu, sigmoid, tanh, softplus, forward
  and backward. The memory-bound ones (relu, leaky_relu, prelu) fuse the compare and the
  select into one pass with no temporaries and run on both cores; NumPy's np.where forms
  take 2-4 passes and a bool temporary. The exp-based ones (elu, sigmoid, tanh, softplus)
  are compute-bound: glibc's exp/log1p are scalar here (libmvec's SIMD versions need
  -ffast-math), so activations.c carries a branch-free exp/expm1/log1p (a few ulp, tested)
  that vectorizes with AVX-512, where NumPy runs several passes of scalar-ish transcendental
  calls.
* rrelu in training: the per-element slopes are drawn by NumPy's Generator (so the C path
  and the reference share them); C then applies them in one pass. rrelu_backward in
  training is grad_out * noise: one np.multiply is already a single pass at memory speed,
  so it stays NumPy (C would only add threads to a bandwidth-bound pass).
* relu and sigmoid/tanh backward are bandwidth-bound in both; C wins by the fused single
  pass and the second core, bounded by memory bandwidth (see the bench's memcpy ceiling).

sigmoid_backward and tanh_backward take the forward OUTPUT (as torch's own backward
functions do), not the input. Gradients at exactly 0 and at NaN follow torch's
autograd: relu'(0) = 0, leaky_relu'(0) = prelu'(0) = rrelu'(0) = the slope,
elu'(0) = alpha; a NaN input gives relu' = grad_out, leaky/prelu' = slope*grad_out and
elu' = NaN (torch's vectorized loop gives NaN, its scalar tail grad_out: position-dependent;
NaN propagation is the consistent choice).

Deviation from torch, on purpose: softplus is computed as max(bx,0) + log1p(exp(-|bx|)),
so with a large threshold (e.g. threshold=200, x=100 in float32) it returns x where torch
overflows to inf, and its gradient is 1 where torch gives nan. beta=0 is rejected
(torch divides by zero).
"""
import numpy as np

from dlkern import _activations
from dlkern._args import activations as _args
from dlkern._threads import get_num_threads

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "prelu",
           "prelu_backward", "rrelu", "rrelu_backward", "elu", "elu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "softplus", "softplus_backward"]


def _forward(fn, x, a=0.0, b=0.0):
    return _activations.forward(fn, _args.unary(fn, x), a, b, get_num_threads())


def _backward(name, fn, grad_out, xy, a=0.0, b=0.0, x_name="x"):
    grad_out, xy = _args.grad_pair(fn, grad_out, xy, x_name)
    return _activations.backward(name, grad_out, xy, a, b, get_num_threads())


def relu(x):
    return _forward("relu", x)


def relu_backward(grad_out, x):
    return _backward("relu", "relu_backward", grad_out, x)


def leaky_relu(x, negative_slope=0.01):
    x = _args.unary("leaky_relu", x)
    slope = _args.real("leaky_relu", "negative_slope", negative_slope)
    return _activations.forward("leaky_relu", x, slope, 0.0, get_num_threads())


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    grad_out, x = _args.grad_pair("leaky_relu_backward", grad_out, x)
    slope = _args.real("leaky_relu_backward", "negative_slope", negative_slope)
    return _activations.backward("leaky_relu", grad_out, x, slope, 0.0, get_num_threads())


def prelu(x, weight):
    """x > 0 ? x : weight[c] * x with c the index along dim 1 (weight of 1 or C elements)."""
    x, w, n, c, s = _args.prelu_layout("prelu", x, weight)
    return _activations.prelu_forward(x, w, n, c, s, get_num_threads())


def prelu_backward(grad_out, x, weight):
    """(grad_x, grad_weight), grad_weight with weight's shape."""
    fn = "prelu_backward"
    weight_shape = np.shape(weight)
    x, w, n, c, s = _args.prelu_layout(fn, x, weight)
    grad_out, x = _args.grad_pair(fn, grad_out, x)
    grad_x, grad_w = _activations.prelu_backward(grad_out, x, w, n, c, s, get_num_threads())
    return grad_x, grad_w.reshape(weight_shape)


def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, rng=None, return_noise=False):
    """Randomized leaky relu. In training each element with x <= 0 gets a slope drawn
    uniformly in [lower, upper] (from rng: a Generator, an int seed, or None for
    dlkern.random's default); in eval the slope is (lower + upper) / 2. With
    return_noise=True returns (out, noise), noise holding each element's multiplier
    (1 where x > 0; None in eval), which rrelu_backward needs in training."""
    x = _args.unary("rrelu", x)
    lower, upper, training = _args.rrelu_params("rrelu", lower, upper, training)
    if not training:
        out = _activations.forward("leaky_relu", x, (lower + upper) / 2, 0.0,
                                   get_num_threads())
        return (out, None) if return_noise else out
    slopes = _args.rrelu_slopes("rrelu", rng, x.shape, x.dtype, lower, upper)
    out, noise = _activations.rrelu_train(x, slopes, get_num_threads())
    return (out, noise) if return_noise else out


def rrelu_backward(grad_out, x, lower=1.0 / 8, upper=1.0 / 3, training=False, noise=None):
    """Eval: leaky_relu_backward with the mean slope. Training: grad_out * noise (noise
    from rrelu(..., return_noise=True); required)."""
    fn = "rrelu_backward"
    grad_out, x = _args.grad_pair(fn, grad_out, x)
    lower, upper, training = _args.rrelu_params(fn, lower, upper, training)
    noise = _args.rrelu_noise(fn, noise, x, training)
    if not training:
        return _activations.backward("leaky_relu", grad_out, x, (lower + upper) / 2, 0.0,
                                     get_num_threads())
    return grad_out * noise  # one NumPy pass is already at memory speed


def elu(x, alpha=1.0):
    alpha = _args.real("elu", "alpha", alpha)
    return _forward("elu", x, alpha)


def elu_backward(grad_out, x, alpha=1.0):
    alpha = _args.real("elu_backward", "alpha", alpha)
    return _backward("elu", "elu_backward", grad_out, x, alpha)


def sigmoid(x):
    return _forward("sigmoid", x)


def sigmoid_backward(grad_out, output):
    """Gradient of sigmoid from its OUTPUT y = sigmoid(x): grad_out * (1 - y) * y."""
    return _backward("sigmoid", "sigmoid_backward", grad_out, output, x_name="output")


def tanh(x):
    return _forward("tanh", x)


def tanh_backward(grad_out, output):
    """Gradient of tanh from its OUTPUT y = tanh(x): grad_out * (1 - y*y)."""
    return _backward("tanh", "tanh_backward", grad_out, output, x_name="output")


def softplus(x, beta=1.0, threshold=20.0):
    """log1p(exp(beta*x))/beta, or x where beta*x > threshold (torch's rule)."""
    beta, threshold = _args.softplus_params("softplus", beta, threshold)
    return _forward("softplus", x, beta, threshold)


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0):
    beta, threshold = _args.softplus_params("softplus_backward", beta, threshold)
    return _backward("softplus", "softplus_backward", grad_out, x, beta, threshold)
