"""The non-finite guard: stop training with an error that says where NaN/Inf appeared.

Healthy steps pay one finiteness check of the loss and of each gradient. When one
fails, the guard re-runs the step's forward pass with every submodule instrumented
and names the first module (in execution order) whose output is non-finite; for a
gradient it names the parameter (and so the module) that holds it.
"""
import numpy as np


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf. Attributes: kind ("input", "activation",
    "loss", "gradient"), module (dotted name or None), epoch, step, checkpoint."""

    def __init__(self, kind, module, epoch, step, detail="", checkpoint=None):
        self.kind = kind
        self.module = module
        self.epoch = epoch
        self.step = step
        self.checkpoint = checkpoint
        where = f" in module '{module}'" if module else ""
        kept = (f"; the last good checkpoint is kept at {checkpoint}" if checkpoint
                else "")
        super().__init__(f"non-finite {kind}{where} at epoch {epoch}, step {step}"
                         f"{': ' + detail if detail else ''}{kept}")


def all_finite(value):
    if isinstance(value, (tuple, list)):
        return all(all_finite(v) for v in value)
    arr = np.asarray(value)
    return not np.issubdtype(arr.dtype, np.floating) or bool(np.isfinite(arr).all())


def first_nonfinite_activation(model, x):
    """(name, type name) of the first submodule whose forward output is non-finite,
    re-running model's forward on x; None if every output is finite."""
    found = []
    patched = []
    for name, module in model.named_modules():
        if module is model:
            continue
        original = module.forward

        def traced(*args, _original=original, _name=name, _module=module, **kwargs):
            out = _original(*args, **kwargs)
            if not found and not all_finite(out):
                found.append((_name, type(_module).__name__))
            return out

        module.forward = traced  # an instance attribute shadows the class's method
        patched.append(module)
    try:
        with np.errstate(all="ignore"):
            out = model(x)
    finally:
        for module in patched:
            del module.forward
    if found:
        return found[0]
    if not all_finite(out):
        return ("", type(model).__name__)
    return None


def first_nonfinite_gradient(model):
    """Dotted name of the first parameter whose gradient is non-finite, or None."""
    for name, param in model.named_parameters():
        if param.grad is not None and not all_finite(param.grad):
            return name
    return None


def diagnose_loss(model, x, loss, epoch, step, checkpoint=None):
    """Raise NonFiniteError for a non-finite loss, naming where it first appeared."""
    if not all_finite(x):
        raise NonFiniteError("input", None, epoch, step, "the batch itself holds NaN/Inf",
                             checkpoint)
    hit = first_nonfinite_activation(model, x)
    if hit is not None:
        name, kind = hit
        raise NonFiniteError("activation", name or "(model output)", epoch, step,
                             f"{kind} output is NaN/Inf (loss {float(loss)})", checkpoint)
    raise NonFiniteError("loss", None, epoch, step,
                         f"loss is {float(loss)} while the model output is finite", checkpoint)


def check_gradients(model, epoch, step, checkpoint=None):
    name = first_nonfinite_gradient(model)
    if name is not None:
        module = name.rpartition(".")[0] or "(root)"
        raise NonFiniteError("gradient", module, epoch, step,
                             f"gradient of parameter '{name}' is NaN/Inf", checkpoint)
