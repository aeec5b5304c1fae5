"""dlkern.summary(model, input_shape): a per-layer table of a model.

For each leaf layer (a module without children) in the order the forward pass calls
it: its dotted name, type, output shape, parameter count, receptive field and
cumulative stride ("jump", the distance in input pixels/steps between neighbouring
outputs), then the total parameters (trainable and frozen) and forward FLOPs.

How it is computed: one forward pass on zeros of `input_shape` (the full input
shape, batch dimension included) with the model temporarily in eval mode (so batch
norm running statistics are neither used for nothing nor updated, and dropout is
off); training flags and each module's cached forward state are restored after.
Receptive fields are propagated structurally: through Sequential and generic
containers in child order, and through both branches of ResidualBlock and
TemporalBlock (the wider branch wins). Padding does not change a receptive field;
after Flatten, Linear or AdaptiveAvgPool2d it is the whole input ("all").

What counts as a FLOP (forward, for the given batch):
- Conv2d, Linear, CausalConv1d: 2 x multiply-adds (bias additions not counted);
- BatchNorm: 2 per output element (scale and shift with the statistics);
- MaxPool2d/AvgPool2d: one per window element per output; AdaptiveAvgPool2d: one
  per input element;
- activations: 1 per element (exp/log/tanh counted as one);
- Dropout, Flatten and the additions of residual connections: 0.
"""
import builtins

import numpy as np

from dlkern.nn.activation import ELU, PReLU, ReLU, RReLU, LeakyReLU, Sigmoid, Softplus, Tanh
from dlkern.nn.batchnorm import _BatchNorm
from dlkern.nn.conv import Conv2d
from dlkern.nn.flatten import Flatten
from dlkern.nn.linear import Linear
from dlkern.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from dlkern.nn.residual import ResidualBlock
from dlkern.nn.tcn import CausalConv1d, TemporalBlock

__all__ = ["summary", "ModelSummary"]

_ACTIVATIONS = (ReLU, LeakyReLU, PReLU, RReLU, ELU, Sigmoid, Tanh, Softplus)
GLOBAL = "all"


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _grow(state, kernel, stride, dilation):
    """Receptive field after a sliding-window layer: rf += d (k - 1) * jump; jump *= s."""
    if state == GLOBAL:
        return GLOBAL
    return tuple((rf + d * (k - 1) * j, j * s)
                 for (rf, j), k, s, d in zip(state, kernel, stride, dilation))


def _widest(a, b):
    if GLOBAL in (a, b):
        return GLOBAL
    return tuple((max(ra, rb), ja) for (ra, ja), (rb, _jb) in zip(a, b))


def _propagate(m, state, out):
    """Receptive field state after module m; records each module's state in out."""
    if isinstance(m, Conv2d):
        state = _grow(state, m.kernel_size, m.stride, m.dilation)
    elif isinstance(m, MaxPool2d):
        state = _grow(state, _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation))
    elif isinstance(m, AvgPool2d):
        state = _grow(state, _pair(m.kernel_size), _pair(m.stride), (1, 1))
    elif isinstance(m, CausalConv1d):
        state = _grow(state, (m.kernel_size,), (1,), (m.dilation,))
    elif isinstance(m, (AdaptiveAvgPool2d, Flatten, Linear)):
        state = GLOBAL
    elif isinstance(m, ResidualBlock):
        main = state
        for child in (m.conv1, m.bn1, m.relu1, m.conv2, m.bn2):
            main = _propagate(child, main, out)
        short = _propagate(m.shortcut, state, out)
        state = _propagate(m.relu2, _widest(main, short), out)
    elif isinstance(m, TemporalBlock):
        main = state
        for child in (m.conv1, m.relu1, m.dropout1, m.conv2, m.relu2, m.dropout2):
            main = _propagate(child, main, out)
        res = state if m.downsample is None else _propagate(m.downsample, state, out)
        state = _propagate(m.relu, _widest(main, res), out)
    else:
        for child in m.children():  # containers: children in registration order
            state = _propagate(child, state, out)
    out[id(m)] = state
    return state


def _flops(m, in_shape, out_shape):
    n_out = int(np.prod(out_shape))
    if isinstance(m, Conv2d):
        kh, kw = m.kernel_size
        return 2 * n_out * (m.in_channels // m.groups) * kh * kw
    if isinstance(m, Linear):
        return 2 * n_out * m.in_features
    if isinstance(m, CausalConv1d):
        return 2 * n_out * m.in_channels * m.kernel_size
    if isinstance(m, _BatchNorm):
        return 2 * n_out
    if isinstance(m, (MaxPool2d, AvgPool2d)):
        kh, kw = _pair(m.kernel_size)
        return n_out * kh * kw
    if isinstance(m, AdaptiveAvgPool2d):
        return int(np.prod(in_shape))
    if isinstance(m, _ACTIVATIONS):
        return n_out
    return 0


def _fmt_state(state, which):
    if state is None:
        return "?"
    if state == GLOBAL:
        return GLOBAL if which == 0 else "-"
    return "x".join(str(axis[which]) for axis in state)


class ModelSummary:
    """rows: list of dicts (name, type, output_shape, params, receptive_field, jump,
    flops); total_params, trainable_params, frozen_params, flops; str() is the table."""

    def __init__(self, rows, total, trainable, flops, input_shape):
        self.rows = rows
        self.total_params, self.trainable_params = total, trainable
        self.frozen_params = total - trainable
        self.flops = flops
        self.input_shape = input_shape
        self.table = self._render()

    def _render(self):
        head = ("Layer", "Type", "Output shape", "Params", "RF", "Jump", "FLOPs")
        body = [(r["name"], r["type"], str(r["output_shape"]), f"{r['params']:,}",
                 r["receptive_field"], r["jump"], f"{r['flops']:,}") for r in self.rows]
        widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
        fmt = "  ".join(f"{{:{'>' if i >= 3 else '<'}{w}}}" for i, w in enumerate(widths))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [f"input shape {self.input_shape}", rule, fmt.format(*head), rule]
        lines += [fmt.format(*row) for row in body]
        lines += [rule,
                  f"Total params: {self.total_params:,} (trainable {self.trainable_params:,},"
                  f" frozen {self.frozen_params:,})",
                  f"Forward FLOPs: {self.flops:,} ({self.flops / 1e6:.3f} MFLOPs for this "
                  f"batch)"]
        return "\n".join(lines)

    def __str__(self):
        return self.table

    __repr__ = __str__


def summary(model, input_shape, dtype=np.float32, print=False):
    """Return (and with print=True also print) a ModelSummary of model on zeros of
    input_shape (batch dimension included, e.g. (1, 3, 32, 32)). See the module
    docstring for what is computed and what counts as a FLOP."""
    input_shape = tuple(int(s) for s in input_shape)
    names = {id(m): n for n, m in model.named_modules()}
    modules = list(model.modules())
    leaves = [m for m in modules if not any(True for _ in m.children())]
    calls = []
    saved_flags = [(m, m.training, m.__dict__.get("_cache")) for m in modules]
    for leaf in leaves:
        original = leaf.forward

        def traced(x, *args, _orig=original, _m=leaf, **kwargs):
            out = _orig(x, *args, **kwargs)
            first = out[0] if isinstance(out, tuple) else out
            calls.append((_m, np.shape(x), np.shape(first)))
            return out

        leaf.forward = traced
    try:
        model.eval()
        model(np.zeros(input_shape, dtype=dtype))
    finally:
        for leaf in leaves:
            leaf.__dict__.pop("forward", None)
        for m, training, cache in saved_flags:
            object.__setattr__(m, "training", training)
            object.__setattr__(m, "_cache", cache)

    spatial = max(len(input_shape) - 2, 0)
    states = {}
    _propagate(model, tuple((1, 1) for _ in range(spatial)), states)

    rows = []
    total_flops = 0
    for m, in_shape, out_shape in calls:
        params = sum(p.data.size for p in m.parameters())
        flops = _flops(m, in_shape, out_shape)
        total_flops += flops
        state = states.get(id(m))
        rows.append(dict(name=names.get(id(m), "?") or "(model)", type=type(m).__name__,
                         output_shape=tuple(out_shape), params=params,
                         receptive_field=_fmt_state(state, 0), jump=_fmt_state(state, 1),
                         flops=flops))
    all_params = list(model.parameters())
    total = sum(p.data.size for p in all_params)
    trainable = sum(p.data.size for p in all_params if p.requires_grad)
    result = ModelSummary(rows, total, trainable, total_flops, input_shape)
    if print:
        builtins.print(result.table)
    return result
