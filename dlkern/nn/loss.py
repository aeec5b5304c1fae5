"""Losses with backward: CrossEntropyLoss, MSELoss, BCEWithLogitsLoss (torch's names,
arguments and reductions).

loss(pred, target) returns the loss (a 0-d array of pred's dtype, or an array for
reduction="none") and remembers its inputs; loss.backward(grad_out=1.0) returns the
gradient with respect to pred (grad_out: a scalar, or an array shaped like the
unreduced loss for reduction="none").

CrossEntropyLoss is one fused kernel call each way (cross_entropy /
cross_entropy_backward: log-softmax with the max subtracted, so no overflow).
MSELoss and BCEWithLogitsLoss are written in NumPy: the functional API has no kernel
for them, and they are single elementwise passes over (N, ...) predictions whose cost
is memory traffic that NumPy's ufuncs already stream at full speed — next to the
convolutions before them they are noise, and a C kernel would buy nothing measurable.
"""
import numpy as np

from dlkern.nn.module import Module

__all__ = ["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(owner, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{owner}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _pred_target(owner, pred, target):
    if not isinstance(pred, np.ndarray) or pred.dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: input must be a float32 or float64 NumPy array, got "
                        f"{getattr(pred, 'dtype', type(pred).__name__)}")
    target = np.asarray(target)
    if target.shape != pred.shape:
        raise ValueError(f"{owner}: target shape {target.shape} must equal input shape "
                         f"{pred.shape}")
    return pred, target.astype(pred.dtype, copy=False)


def _grad_out(owner, grad_out, dtype, reduction, shape):
    g = np.asarray(grad_out, dtype=dtype)
    if reduction == "none":
        if g.ndim and g.shape != shape:
            raise ValueError(f"{owner}.backward: grad_out must be a scalar or have the "
                             f"unreduced loss shape {shape}, got {g.shape}")
    elif g.ndim:
        raise ValueError(f"{owner}.backward: grad_out must be a scalar for reduction="
                         f"{reduction!r}, got shape {g.shape}")
    return g


def _float_buffer(values):
    """A class-weight argument as a float array of its own (None stays None)."""
    if values is None:
        return None
    values = np.array(values, copy=True)
    return values if values.dtype.kind == "f" else values.astype(np.float64)


def _reduce(values, reduction):
    if reduction == "mean":
        return np.asarray(values.mean(), dtype=values.dtype)
    if reduction == "sum":
        return np.asarray(values.sum(), dtype=values.dtype)
    return values


class CrossEntropyLoss(Module):
    """Softmax cross-entropy over logits (N, C) (or (N, C, d1, ...)) and integer class
    targets, with class weights, ignore_index and label_smoothing as torch."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
        super().__init__()
        # a buffer, as torch's: saved in state_dict ("weight") and loaded back
        self.register_buffer("weight", _float_buffer(weight))
        self.ignore_index = ignore_index
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        self.label_smoothing = label_smoothing

    def _kwargs(self, logits):
        w = None if self.weight is None else self.weight.astype(logits.dtype, copy=False)
        return dict(weight=w, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)

    def forward(self, input, target):
        target = np.asarray(target)
        out = self.F.cross_entropy(input, target, **self._kwargs(input))
        self._save(logits=input, target=target, shape=np.shape(out))
        return out

    def backward(self, grad_out=1.0, input_grad=True):
        c = self._saved()
        if not input_grad:  # no parameters: nothing to compute
            return None
        g = _grad_out("CrossEntropyLoss", grad_out, c["logits"].dtype, self.reduction,
                      c["shape"])
        return self.F.cross_entropy_backward(g, c["logits"], c["target"],
                                             **self._kwargs(c["logits"]))


class MSELoss(Module):
    """mean/sum/none of (input - target)**2; gradient 2 (input - target) [/ n]."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input, target):
        input, target = _pred_target("MSELoss", input, target)
        diff = input - target
        self._save(diff=diff)
        return _reduce(diff * diff, self.reduction)

    def backward(self, grad_out=1.0, input_grad=True):
        diff = self._saved()["diff"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        g = _grad_out("MSELoss", grad_out, diff.dtype, self.reduction, diff.shape)
        scale = 2.0 / diff.size if self.reduction == "mean" else 2.0
        return (diff * (g * diff.dtype.type(scale))).astype(diff.dtype, copy=False)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on logits x with targets y in [0, 1]:

        l = weight * [ (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x) ]

    with softplus(-x) = log1p(exp(-|x|)) + max(-x, 0), which never overflows (|x| of
    1e4 either sign is fine), and the gradient weight * [(1 - y) - (1 + (pos_weight -
    1) y) sigmoid(-x)] with sigmoid(-x) from exp(-|x|) <= 1. weight broadcasts
    against the input; pos_weight against its last (class) dimension, as torch.
    """

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__()
        # buffers, as torch's: saved in state_dict ("weight", "pos_weight")
        self.register_buffer("weight", _float_buffer(weight))
        self.register_buffer("pos_weight", _float_buffer(pos_weight))
        self.reduction = _check_reduction("BCEWithLogitsLoss", reduction)

    def forward(self, input, target):
        x, y = _pred_target("BCEWithLogitsLoss", input, target)
        dt = x.dtype
        e = np.exp(-np.abs(x))                       # in (0, 1]: cannot overflow
        softplus_neg = np.log1p(e) + np.maximum(-x, 0)
        sigmoid_neg = np.where(x >= 0, e / (1 + e), 1 / (1 + e))
        lw = 1 if self.pos_weight is None else 1 + (self.pos_weight.astype(dt) - 1) * y
        loss = (1 - y) * x + lw * softplus_neg
        w = None if self.weight is None else self.weight.astype(dt)
        if w is not None:
            loss = loss * w
        loss = loss.astype(dt, copy=False)
        self._save(x=x, y=y, lw=lw, w=w, sigmoid_neg=sigmoid_neg)
        return _reduce(loss, self.reduction)

    def backward(self, grad_out=1.0, input_grad=True):
        c = self._saved()
        if not input_grad:  # no parameters: nothing to compute
            return None
        x = c["x"]
        g = _grad_out("BCEWithLogitsLoss", grad_out, x.dtype, self.reduction, x.shape)
        grad = (1 - c["y"]) - c["lw"] * c["sigmoid_neg"]
        if c["w"] is not None:
            grad = grad * c["w"]
        if self.reduction == "mean":
            g = g / x.size
        return np.broadcast_to(grad * g, x.shape).astype(x.dtype)
