"""Argument parsing for conv2d / conv2d_backward, shared by dlkern.functional and
dlkern.reference so both accept and reject exactly the same inputs."""
from collections import namedtuple

from dlkern import _checks

ALGOS = ("auto", "direct", "im2col")

Conv2dArgs = namedtuple(
    "Conv2dArgs",
    "x weight bias grad_out stride padding dilation groups algo out_hw",
)
Conv2dArgs.__doc__ = """Validated conv2d arguments.

padding is (top, bottom, left, right): padding="same" can pad one more on the
bottom/right than on the top/left, as torch does. out_hw is (OH, OW)."""


def _padding(fn, padding, kernel, dilation, stride):
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{fn}: padding must be an int, a pair of ints, 'same' or "
                             f"'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{fn}: padding='same' needs stride 1 (as in torch), got "
                             f"stride={stride}")
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = _checks.int_tuple(fn, "padding", padding, minimum=0)
    return (ph, ph, pw, pw)


def parse(fn, x, weight, bias, stride, padding, dilation, groups, algo, grad_out=None,
          backward=False):
    """Check every conv2d argument; return Conv2dArgs (arrays not yet copied)."""
    x = _checks.float_array(fn, "x", x)
    weight = _checks.float_array(fn, "weight", weight)
    bias = _checks.optional_float_array(fn, "bias", bias)
    if backward:
        grad_out = _checks.float_array(fn, "grad_out", grad_out)
    _checks.same_dtype(fn, "x", x, weight=weight, bias=bias, grad_out=grad_out)
    _checks.ndim(fn, "x", x, 4, "N, C, H, W")
    _checks.ndim(fn, "weight", weight, 4, "out_channels, in_channels/groups, kH, kW")
    if bias is not None:
        _checks.ndim(fn, "bias", bias, 1, "out_channels")
    if backward:
        _checks.ndim(fn, "grad_out", grad_out, 4, "N, out_channels, OH, OW")
    stride = _checks.int_tuple(fn, "stride", stride, minimum=1)
    dilation = _checks.int_tuple(fn, "dilation", dilation, minimum=1)
    groups = _checks.integer(fn, "groups", groups, minimum=1)
    if not isinstance(algo, str) or algo not in ALGOS:
        raise ValueError(f"{fn}: algo must be one of {ALGOS}, got {algo!r}")

    n, c, h, w = x.shape
    oc, cg, kh, kw = weight.shape
    if min(oc, cg, kh, kw) < 1:
        raise ValueError(f"{fn}: weight must have no zero-sized dimension, got shape "
                         f"{weight.shape}")
    if c % groups:
        raise ValueError(f"{fn}: x has {c} channels, which is not divisible by "
                         f"groups={groups}")
    if oc % groups:
        raise ValueError(f"{fn}: weight has {oc} output channels, which is not divisible "
                         f"by groups={groups}")
    if cg != c // groups:
        raise ValueError(f"{fn}: weight has {cg} input channels per group but x has {c} "
                         f"channels and groups={groups} (expected {c // groups}); "
                         f"weight shape {weight.shape}, x shape {x.shape}")
    if bias is not None and bias.shape != (oc,):
        raise ValueError(f"{fn}: bias must have shape ({oc},) (weight's out_channels), got "
                         f"{bias.shape}")
    pad = _padding(fn, padding, (kh, kw), dilation, stride)
    out_hw = []
    for axis, size, k, d, s, p0, p1 in (("height", h, kh, dilation[0], stride[0], *pad[:2]),
                                        ("width", w, kw, dilation[1], stride[1], *pad[2:])):
        eff = (k - 1) * d + 1
        if eff > size + p0 + p1:
            raise ValueError(f"{fn}: kernel {axis} {k} with dilation {d} spans {eff} "
                             f"pixels, more than the padded input {axis} {size}+{p0 + p1}="
                             f"{size + p0 + p1}; x shape {x.shape}, weight shape "
                             f"{weight.shape}")
        out_hw.append((size + p0 + p1 - eff) // s + 1)
    out_hw = tuple(out_hw)
    if backward:
        _checks.shape_equals(fn, "grad_out", grad_out, (n, oc) + out_hw,
                             f"conv2d output of x {x.shape} and weight {weight.shape}")
    return Conv2dArgs(x, weight, bias, grad_out, stride, pad, dilation, groups, algo, out_hw)
