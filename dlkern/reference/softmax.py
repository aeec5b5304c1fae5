"""Pure-NumPy softmax, log_softmax and cross_entropy: same names, signatures, semantics
and errors as dlkern.functional.softmax (see its "Non-finite input" paragraph; the same
rules hold here, except that tiny results are not flushed to 0)."""
import numpy as np

from dlkern._args import softmax as _args

__all__ = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
           "cross_entropy", "cross_entropy_backward"]

_QUIET = dict(invalid="ignore", over="ignore", divide="ignore", under="ignore")


def _shifted(x, axis):
    # a row's max: nan if the row holds a nan, +inf if it holds +inf (then inf - inf = nan)
    return x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)


def softmax(x, dim=-1):
    """exp(x - max) / sum(exp(x - max)) along dim."""
    d, *_ = _args.softmax("softmax", x, dim)
    if x.ndim == 0:
        return np.ones_like(x) if np.isfinite(x) else np.full_like(x, np.nan)
    with np.errstate(**_QUIET):
        e = np.exp(_shifted(x, d))
        return e / e.sum(axis=d, keepdims=True)


def log_softmax(x, dim=-1):
    """(x - max) - log(sum(exp(x - max))) along dim."""
    d, *_ = _args.softmax("log_softmax", x, dim)
    if x.ndim == 0:
        return np.zeros_like(x) if np.isfinite(x) else np.full_like(x, np.nan)
    with np.errstate(**_QUIET):
        z = _shifted(x, d)
        return z - np.log(np.exp(z).sum(axis=d, keepdims=True))


def softmax_backward(grad_out, output, dim=-1):
    """y * (grad_out - sum(grad_out * y)) with y the forward OUTPUT."""
    d, *_ = _args.softmax_backward("softmax_backward", grad_out, output, dim)
    if grad_out.ndim == 0:
        return output * (grad_out - grad_out * output)
    with np.errstate(**_QUIET):
        return output * (grad_out - (grad_out * output).sum(axis=d, keepdims=True))


def log_softmax_backward(grad_out, output, dim=-1):
    """grad_out - exp(y) * sum(grad_out) with y the forward OUTPUT."""
    d, *_ = _args.softmax_backward("log_softmax_backward", grad_out, output, dim)
    if grad_out.ndim == 0:
        return grad_out - np.exp(output) * grad_out
    with np.errstate(**_QUIET):
        return grad_out - np.exp(output) * grad_out.sum(axis=d, keepdims=True)


def _prepare(fn, logits, target, weight, ignore_index):
    """Batched (N, C, ...) view, safe targets with a class axis, mask, per-target weights."""
    C = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    _args.check_target_values(fn, target, C, ignore_index)
    x = logits[None] if logits.ndim == 1 else logits
    t = target[None] if logits.ndim == 1 else target
    keep = t != ignore_index
    t_safe = np.where(keep, t, 0).astype(np.intp)[:, None]       # (N, 1, d...)
    w = np.ones(C, logits.dtype) if weight is None else weight
    w_t = np.where(keep, w[t_safe[:, 0]], 0).astype(logits.dtype)  # (N, d...)
    w_b = w.reshape((1, C) + (1,) * (x.ndim - 2))
    return x, C, keep, t_safe, w_t, w_b


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy with integer targets (see dlkern.functional.cross_entropy)."""
    fn = "cross_entropy"
    target, ii, red, eps = _args.cross_entropy(fn, logits, target, weight, ignore_index,
                                               reduction, label_smoothing)
    x, C, keep, t_safe, w_t, w_b = _prepare(fn, logits, target, weight, ii)
    with np.errstate(**_QUIET):
        logp = log_softmax(x, dim=1)
        nll = -np.take_along_axis(logp, t_safe, axis=1)[:, 0]
        loss = (1 - eps) * w_t * nll
        if eps > 0:
            loss = loss + eps / C * -(logp * w_b).sum(axis=1)
        loss = np.where(keep, loss, 0).astype(logits.dtype)
        if red == 0:
            return loss.reshape(target.shape)
        total = loss.sum(dtype=np.float64)
        if red == 1:
            total = total / w_t.sum(dtype=np.float64)
        return np.asarray(total, dtype=logits.dtype)


def cross_entropy_backward(grad_out, logits, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0):
    """(softmax * a - (1-eps) w_t onehot - eps/C w) * scale, a = (1-eps) w_t + eps/C sum(w)."""
    fn = "cross_entropy_backward"
    target, ii, red, eps = _args.cross_entropy(fn, logits, target, weight, ignore_index,
                                               reduction, label_smoothing)
    g = _args.grad_out_for(fn, grad_out, target, red, logits.dtype)
    x, C, keep, t_safe, w_t, w_b = _prepare(fn, logits, target, weight, ii)
    with np.errstate(**_QUIET):
        if red == 0:
            scale = (g[None] if logits.ndim == 1 else g).astype(np.float64)
        elif red == 1:
            scale = np.full(w_t.shape, g / w_t.sum(dtype=np.float64))
        else:
            scale = np.full(w_t.shape, g)
        p = softmax(x, dim=1)
        a = (1 - eps) * w_t + eps / C * w_b.sum()
        coef = np.where(keep, scale * a, 0)[:, None]
        onehot = np.arange(C).reshape((1, C) + (1,) * (x.ndim - 2)) == t_safe
        corr = (1 - eps) * (w_t * scale)[:, None] * onehot + eps / C * scale[:, None] * w_b
        grad = p * coef - np.where(keep[:, None], corr, 0)
        grad = grad.astype(logits.dtype)
    return grad[0] if logits.ndim == 1 else grad
