"""conv2d forward and backward on the C kernels (src/conv2d*.c).

Same names, signatures, semantics and errors as torch.nn.functional.conv2d and as
the NumPy twin dlkern.reference.conv2d.
"""
from dlkern import _conv2d
from dlkern._args.conv2d import parse
from dlkern._checks import contiguous
from dlkern._threads import get_num_threads

__all__ = ["conv2d", "conv2d_backward", "IM2COL_MAX_BYTES"]

#: Upper bound on the im2col column buffer, in bytes. The im2col algorithm works
#: on chunks of samples whose column matrix (C/groups*kH*kW rows, chunk*OH*OW
#: columns, one group at a time) fits in this many bytes; a single sample of one
#: group is always processed whole even if it alone is larger. 4 MiB keeps the
#: chunk in cache between the fill and the GEMM that reads it, which measured
#: faster than bigger chunks. Module-level so it can be tuned (and lowered in
#: tests to exercise the chunked path).
IM2COL_MAX_BYTES = 1 * 2**20


#: Mirrors DLK_DIRECT_PAD_BYTES in src/conv2d_direct.c: the blocked direct
#: forward copies one (sample, group) into zero-padded planes of at most this
#: size per thread, else it runs a slower copy-free loop.
_DIRECT_PAD_BYTES = 16 * 2**20


def _pad_bytes(cg, h, w, oh, ow, kh, kw, sh, sw, dh, dw, top, left, itemsize):
    blocks = 2 * -(-ow // 32)
    wq = max(-(-(w + left) // sw), blocks * 16 + (kw - 1) * dw // sw)
    hp = max(h + top, (oh - 1) * sh + (kh - 1) * dh + 1)
    return cg * hp * sw * wq * itemsize


def _direct_pad_bytes(a, grad_x=False):
    """Size of the direct forward's padded planes (direct_phase_dims in C); with
    grad_x, of the stride-1 forward that computes grad_x from grad_out."""
    n, c, h, w = a.x.shape
    oc, cg, kh, kw = a.weight.shape
    (sh, sw), (dh, dw), (oh, ow) = a.stride, a.dilation, a.out_hw
    top, _, left, _ = a.padding
    size = a.x.dtype.itemsize
    if grad_x:
        return _pad_bytes(oc // a.groups, oh, ow, h, w, kh, kw, 1, 1, dh, dw,
                          (kh - 1) * dh - top, (kw - 1) * dw - left, size)
    return _pad_bytes(cg, h, w, oh, ow, kh, kw, sh, sw, dh, dw, top, left, size)


def _choose_algo(a, backward=False):
    """The "auto" rule; see conv2d's docstring."""
    if a.algo != "auto":
        return a.algo
    oc, cg, kh, kw = a.weight.shape
    if cg * kh * kw <= 32 or oc // a.groups <= 4:
        return "direct"
    if not backward and a.out_hw[1] >= 16 and _direct_pad_bytes(a) <= _DIRECT_PAD_BYTES:
        return "direct"
    return "im2col"


def _backward_plan(a):
    """[(algo, parts)]: which algorithm computes which gradients (parts bitmask:
    1 = grad_x, 2 = grad_weight and grad_bias); see conv2d's docstring."""
    algo = _choose_algo(a, backward=True)
    oc, cg, kh, kw = a.weight.shape
    top, _, left, _ = a.padding
    (dh, dw) = a.dilation
    if (a.algo == "auto" and algo == "im2col" and a.stride == (1, 1) and kh * kw > 1
            and a.x.shape[3] >= 16 and top <= (kh - 1) * dh and left <= (kw - 1) * dw
            and _direct_pad_bytes(a, grad_x=True) <= _DIRECT_PAD_BYTES):
        # grad_x is then a stride-1 forward convolution of grad_out with the
        # flipped kernel: the blocked direct forward beats GEMM + col2im there.
        return [("direct", 1), ("im2col", 2)]
    return [(algo, 3)]


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """2-D cross-correlation over NCHW input, as torch.nn.functional.conv2d.

    x: (N, C, H, W); weight: (out_channels, C/groups, kH, kW); bias: (out_channels,)
    or None. stride, dilation: int or pair (>= 1); padding: int or pair (>= 0), or
    "valid" / "same" (stride 1 only; like torch, "same" pads the extra pixel of an
    even effective kernel on the bottom/right). float32 or float64 (the output has
    the input's dtype); non-contiguous inputs are copied once.

    algo: "direct" (C loops, vectorized over output width), "im2col" (column
    matrix + BLAS GEMM, in chunks of samples whose column buffer stays below
    IM2COL_MAX_BYTES = 4 MiB; a 1x1 stride-1 unpadded kernel skips the column
    matrix) or "auto", which picks, forward and backward separately:

    - "direct" when the reduction per output pixel is short (C/groups*kH*kW <=
      32: depthwise, first layers on 1-3 channels) or there are at most 4 output
      channels per group (a GEMM that thin does not pay for the column copy);
    - forward only, "direct" also whenever the output width is >= 16 and one
      sample's zero-padded group planes fit in 16 MiB: the register-blocked
      direct forward (SIMD vectors over 16-32 output columns x 8 channels,
      column phases split so strided loads stay contiguous) runs faster than
      im2col + the BLAS GEMM, whose column fill is serial;
    - "im2col" otherwise (narrow forward, backward of wide layers), except that
      for a stride-1 backward with kH*kW > 1, input width >= 16 and padding
      within the dilated kernel's reach, grad_x (a stride-1 convolution of
      grad_out with the flipped kernel) comes from the direct algorithm and
      grad_weight, grad_bias from im2col.

    Why, measured on this project's machine (bench/bench_conv2d.py shapes,
    float32, one thread, best-of-12 CPU time, GFLOP/s direct vs im2col):
    forward LeNet 62 vs 19, CIFAR 144 vs 49, ResNet 3x3 175 vs 81, strided 3x3
    103 vs 79, 1x1 109 vs 102, depthwise 32 vs 3; forward+backward LeNet 40 vs
    19, CIFAR 52 vs 36, ResNet 74 vs 84 (auto, split backward: 124), strided 10
    vs 82, 1x1 17 vs 93, depthwise 24 vs 3. On 2 threads the direct kernels
    scale with the cores while im2col's fill stays serial.
    """
    a = parse("conv2d", x, weight, bias, stride, padding, dilation, groups, algo)
    bias = None if a.bias is None else contiguous(a.bias)
    im2col = _choose_algo(a) == "im2col"
    return _conv2d.forward(contiguous(a.x), contiguous(a.weight), bias, a.out_hw[0],
                           a.out_hw[1], a.stride, (a.padding[0], a.padding[2]), a.dilation,
                           a.groups, im2col, get_num_threads())


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    algo="auto"):
    """Gradients of conv2d(x, weight, bias, ...) given grad_out = dL/dy.

    Returns (grad_x, grad_weight, grad_bias); grad_bias (out_channels,) is always
    returned (sum of grad_out over N, OH, OW). Arguments and algo as in conv2d.
    """
    a = parse("conv2d_backward", x, weight, None, stride, padding, dilation, groups, algo,
              grad_out=grad_out, backward=True)
    gy, x, w = contiguous(a.grad_out), contiguous(a.x), contiguous(a.weight)
    grads = [None, None, None]
    for algo, parts in _backward_plan(a):
        got = _conv2d.backward(gy, x, w, a.stride, (a.padding[0], a.padding[2]),
                               a.dilation, a.groups, algo == "im2col", IM2COL_MAX_BYTES,
                               get_num_threads(), parts)
        grads = [g if g is not None else old for g, old in zip(got, grads)]
    return tuple(grads)
