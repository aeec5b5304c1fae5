"""Elementwise activations with backward: torch.nn.functional's names and semantics.

C where it pays, NumPy where it does not. Measured on (32, 64, 32, 32) float32 (8 MB),
2 threads, Zen 4, best of 40 calls on the shared machine (bench/bench_activations.py has
the full table; the 8 MB array and its output fit the 32 MB L3):

* C, memory-bound (relu, leaky_relu, prelu, rrelu in eval, all backward passes): one
  fused two-thread pass with no temporaries. relu forward 0.089 ms = 188 GB/s, the same
  as torch (0.090 ms) and 7x NumPy's np.maximum (0.64 ms, itself a single SIMD pass);
  a one-thread NumPy memcpy of the same 8 MB runs at 122 GB/s, so relu is at the
  bandwidth bound and 7x is all there is: no kernel that must read and write 16 MB can do
  better. The np.where forms (relu_backward, leaky_relu, prelu) cost NumPy 2-4 passes and
  8 MB temporaries whose first touch page-faults on every call (8-30 ms): C is 20-100x
  faster there. prelu_backward's weight gradient sums 16 fixed lanes per (n, c) row,
  vectorized and thread-count independent (0.2 ms).
* C, compute-bound (elu, sigmoid, tanh, softplus): glibc's exp/log1p are scalar here
  (libmvec's SIMD variants are only declared under -ffast-math), so activations.c carries
  a branch-free exp/expm1/log1p (<= 4 ulp, tested against glibc) that gcc vectorizes
  with AVX-512. sigmoid 0.2-0.26 ms vs torch 0.22 ms (torch's Sleef path: parity, both
  compute-bound at ~20 vector ops + one division per 16 elements) and 40x the reference
  (five NumPy passes with temporaries); tanh 0.24 ms vs np.tanh 0.33 ms: NumPy's own
  AVX-512 tanh is a single fused pass, so 1.4x is the bound (5x would need 250 GB/s) and
  torch's tanh is 2.2 ms (9x slower). softplus 0.66 ms (exp + log1p + division) vs 4.5 ms.
* NumPy: the random draws (rrelu slopes, dropout bits) come from NumPy's Generator in both
  backends so a seed gives the same result (C then applies the slopes and writes out and
  noise in one pass); rrelu_backward in training is one np.multiply(grad_out, noise),
  already a single pass at memory speed: C would only add the second core.

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
