"""conv2d forward and backward on the C kernels (src/conv2d*.c).

Same names, signatures, semantics and errors as torch.nn.functional.conv2d and as
the NumPy twin dlkern.reference.conv2d.
"""
import numpy as np

from dlkern import _checks, _conv2d
from dlkern._args.conv2d import parse
from dlkern._checks import contiguous
from dlkern._threads import get_num_threads

__all__ = ["conv2d", "conv2d_backward", "IM2COL_MAX_BYTES"]

#: Work-buffer budget of the im2col backward, in bytes. grad_weight copies x into
#: zero-padded phase planes (and grad_out into a padded pitch) for a chunk of
#: samples at a time, whole groups of 4 to 16 samples (by the shape) that fit in
#: this many bytes (at least one group); the strided grad_x keeps one grad_out
#: window and its phase planes per thread within it, else runs phase by phase.
#: The result does not depend on it (the reduction groups and tiles are fixed);
#: 1 MiB, the L2 of one core, measured fastest for the ResNet shapes.
#: Module-level so it can be tuned (and lowered in tests).
IM2COL_MAX_BYTES = 1 * 2**20


#: Narrow planes are folded: the samples of a batch are laid side by side in one
#: wide plane (see _Fold) when the output is at most this many pixels wide, the
#: stride 1 and the layer GEMM-bound ("im2col"). 0 turns folding off. Measured
#: (2 threads, float32, forward / full backward): 64x32x4x4 -> 64, 3x3: 475 /
#: 1308 -> 291 / 596 us; 64x64x2x2: 782 / 1835 -> 305 / 616; 64x16x6x6 -> 32:
#: 288 / 733 -> 198 / 397; 16x256x4x4 -> 256: 2051 / 6767 -> 1797 / 4845; but
#: at 8x8 the forward lost (16x64x8x8 -> 64: 402 -> 607 us): the copies in and
#: out cost more than the wider rows win once a plane fills two register tiles.
FOLD_MAX_WIDTH = 6

#: Width of a folded plane: samples are grouped so each row holds about this many
#: pixels (the im2col kernels' panels and grad_weight rows run along it).
_FOLD_ROW = 1024


class _Fold:
    """Samples side by side: x (N, C, H, W) as (S, C, H, left + G*P), sample s*G + g
    at columns left + g*P ... + W, with gap = P - W >= max(left, right) zero columns
    between neighbours. A stride-1 convolution with the same height padding and no
    width padding then gives sample g's output column ow at wide column g*P + ow:
    each window sees that sample's pixels and the zeros its own padding would
    have given, never a neighbour (the windows that straddle two samples land in
    the P - OW columns between outputs, which are dropped; grad_out is zero
    there, so the backward sums are those of the samples alone).

    Why: on a 4x4 plane (the digits CNN's second convolution, 64 x 32 x 4 x 4 ->
    64 channels) each per-sample GEMM has 16 output pixels, half of one 32-pixel
    register tile, and each per-sample grad_weight row 16 of its 32 lanes; folded,
    the rows are 320 pixels long (figures at FOLD_MAX_WIDTH, copies included).
    Same sums per output pixel; grad_weight and grad_bias add the samples in
    another (fixed) order, so their bits differ from the unfolded call's, and
    like every kernel result they do not depend on the thread count."""

    def __init__(self, n, w, left, right, reach, row=None):
        self.n, self.left = n, left
        self.period = w + max(left, right)
        self.groups_of = max(1, min(n, (row or _FOLD_ROW) // self.period))
        self.samples = -(-n // self.groups_of)
        self.wide_w = left + self.groups_of * self.period  # the folded input's width
        self.wide_ow = self.wide_w - reach                  # its output's (stride 1)

    def _samples(self, wide, offset, width):
        """(S, G, C, H) view of a folded C-contiguous array whose items are the
        width-pixel row pieces of each sample, starting offset columns in.

        A row piece is one NumPy void item of width * itemsize bytes: a copy then
        moves 16 bytes (4 float32 pixels) per item instead of running a 4-element
        inner loop per row, 5x faster at the digits' 4x4 planes (77 -> 14 us to
        unfold a 64x64x4x4 output)."""
        s0, s1, s2, s3 = wide.strides
        piece = np.dtype((np.void, width * s3))
        view = np.ndarray(wide.shape[:3] + (self.groups_of,), piece, wide, offset * s3,
                          (s0, s1, s2, self.period * s3))
        return view.transpose(0, 3, 1, 2)

    def _fold(self, a, offset, wide_w):
        n, c, h, w = a.shape
        out = np.zeros((self.samples, c, h, wide_w), a.dtype)
        view = self._samples(out, offset, w)
        pieces = np.ascontiguousarray(a).view(np.dtype((np.void, w * a.itemsize)))
        if self.samples * self.groups_of == n:
            view[...] = pieces.reshape(view.shape)
        else:  # the last group is short: its missing samples stay zero
            for s in range(self.samples):
                part = pieces[s * self.groups_of:(s + 1) * self.groups_of, ..., 0]
                view[s, :len(part)] = part
        return out

    def x(self, x):
        """x folded, zero padding columns included."""
        return self._fold(x, self.left, self.wide_w)

    def grad_out(self, gy):
        """grad_out folded, zero on the output columns that are dropped."""
        return self._fold(gy, 0, self.wide_ow)

    def unfold(self, wide, width, offset=0):
        """The (N, C, H, width) samples of a folded output (offset 0) or input
        gradient (offset left), as a new C-contiguous array."""
        view = self._samples(wide, offset, width)
        out = np.empty((self.samples * self.groups_of,) + view.shape[2:], view.dtype)
        out.reshape(view.shape)[...] = view
        out = out.view(wide.dtype).reshape(out.shape + (width,))
        return out if len(out) == self.n else out[:self.n].copy()


def _fold_plan(a, im2col):
    """A _Fold for this call, or None to run it as it comes (see FOLD_MAX_WIDTH):
    "auto" algo only (an explicit one runs as asked), GEMM-bound layers (im2col),
    stride 1, more than one sample, and no padding beyond the kernel's reach
    (whose zero output columns the fold would not reproduce)."""
    n, w = a.x.shape[0], a.x.shape[3]
    if not (im2col and a.algo == "auto" and a.out_hw[1] <= FOLD_MAX_WIDTH and n > 1
            and a.stride == (1, 1)):
        return None
    _, _, left, right = a.padding
    reach = (a.weight.shape[3] - 1) * a.dilation[1]
    if max(left, right) > reach:
        return None
    return _Fold(n, w, left, right, reach)


def _choose_algo(a):
    """The "auto" rule; see conv2d's docstring. The backward's does not depend on
    output_mask, so a masked call's gradients are those of the full call."""
    if a.algo != "auto":
        return a.algo
    oc, cg, kh, kw = a.weight.shape
    return "direct" if oc // a.groups <= 4 or cg * kh * kw <= 32 else "im2col"


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """2-D cross-correlation over NCHW input, as torch.nn.functional.conv2d.

    x: (N, C, H, W); weight: (out_channels, C/groups, kH, kW); bias: (out_channels,)
    or None. stride, dilation: int or pair (>= 1); padding: int or pair (>= 0), or
    "valid" / "same" (stride 1 only; like torch, "same" pads the extra pixel of an
    even effective kernel on the bottom/right). float32 or float64 (the output has
    the input's dtype); non-contiguous inputs are copied once.

    algo: "direct" (C loops, register tiles vectorized over the output width),
    "im2col" (the convolution as GEMMs over the column matrix, on dlkern's own
    packed micro-kernel, sized per ISA level; the column matrix is packed panel
    by panel from a zero-padded window of x, or read in place, never stored whole;
    grad_weight as shifted dot products over phase-split padded planes) or "auto",
    which picks:

    - "direct" when there are at most 4 output channels per group (a GEMM that
      thin cannot reuse its packed panels) or the reduction per output pixel is
      short (C/groups*kH*kW <= 32: depthwise, first layers on 1-3 channels);
    - "im2col" otherwise (every GEMM-bound layer: 3x3, strided, 1x1).

    Why, measured on this project's machine (2 threads, float32, medians,
    GFLOP/s direct vs im2col): ResNet 3x3 (16x64x32x32, 64 out) forward 333 vs
    350, grad_x 336 vs 353, grad_weight 62 vs 302; strided 3x3 (128 out, stride
    2) forward 197 vs 341, grad_x 8 vs 274, grad_weight 18 vs 169; 1x1 (128 ->
    256 at 16x16) forward 209 vs 348, grad_x 201 vs 314, grad_weight 13 vs 165;
    and on other stride-1 3x3 layers (128 channels at 16x16, 256 at 8x8,
    64 at 56x56) im2col led by 1.1x to 2.5x. Short reductions (LeNet, CIFAR
    first layers, depthwise) stay direct: bench/bench_conv2d.py. On small planes
    the two forwards now tie or direct wins (forward, us, direct vs im2col:
    64x1x8x8 -> 32: 32 vs 32; 64x3x8x8 -> 32: 55 vs 54; 64x3x4x4 -> 16: 19 vs
    34; 16x3x8x8 -> 64: 30 vs 25), and the backward wants direct (the digits
    CNN's first layer with grad_x: 137 vs 370 us, a one-channel grad_x is a
    one-row GEMM). The rule does not follow output_mask, so masked results
    equal the full call's.
    """
    a = parse("conv2d", x, weight, bias, stride, padding, dilation, groups, algo)
    bias = None if a.bias is None else contiguous(a.bias)
    im2col = _choose_algo(a) == "im2col"
    fold = _fold_plan(a, im2col)
    if fold is not None:
        y = _conv2d.forward(fold.x(a.x), contiguous(a.weight), bias, a.out_hw[0],
                            fold.wide_ow, a.stride, (a.padding[0], 0), a.dilation,
                            a.groups, im2col, get_num_threads())
        return fold.unfold(y, a.out_hw[1])
    return _conv2d.forward(contiguous(a.x), contiguous(a.weight), bias, a.out_hw[0],
                           a.out_hw[1], a.stride, (a.padding[0], a.padding[2]), a.dilation,
                           a.groups, im2col, get_num_threads())


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    algo="auto", *, output_mask=(True, True, True)):
    """Gradients of conv2d(x, weight, bias, ...) given grad_out = dL/dy.

    Returns (grad_x, grad_weight, grad_bias); grad_bias (out_channels,) is the sum
    of grad_out over N, OH, OW. Arguments and algo as in conv2d.

    output_mask: three bools (keyword only, as the output_mask of torch's aten
    convolution_backward), which of (grad_x, grad_weight, grad_bias) to compute;
    the others are not computed and come back as None. A first layer, whose input
    needs no gradient, asks for (False, True, True). grad_bias is its own pass over
    grad_out, so asking for it alone costs no grad_weight. Computed entries are
    bit-identical to those of the full call.
    """
    a = parse("conv2d_backward", x, weight, None, stride, padding, dilation, groups, algo,
              grad_out=grad_out, backward=True)
    want_x, want_w, want_b = _checks.bool_mask("conv2d_backward", "output_mask", output_mask)
    parts = (1 if want_x else 0) | (2 if want_w else 0) | (4 if want_b else 0)
    if not parts:
        return None, None, None
    im2col = _choose_algo(a) == "im2col"
    fold = _fold_plan(a, im2col)
    w = contiguous(a.weight)
    if fold is not None:
        gx, gw, gb = _conv2d.backward(fold.grad_out(a.grad_out), fold.x(a.x), w, a.stride,
                                      (a.padding[0], 0), a.dilation, a.groups, im2col,
                                      IM2COL_MAX_BYTES, get_num_threads(), parts)
        if gx is not None:
            gx = fold.unfold(gx, a.x.shape[3], fold.left)
    else:
        gx, gw, gb = _conv2d.backward(contiguous(a.grad_out), contiguous(a.x), w, a.stride,
                                      (a.padding[0], a.padding[2]), a.dilation, a.groups,
                                      im2col, IM2COL_MAX_BYTES, get_num_threads(), parts)
    return gx, gw, gb
