"""Module and Sequential: the base of every dlkern layer, shaped like torch.nn.Module.

A module holds hyperparameters, Parameters and buffers (NumPy arrays such as
BatchNorm's running statistics) and child modules, registered by plain attribute
assignment as in PyTorch. Its forward(x) is one call into the current backend
(dlkern.nn.backend) and caches what backward needs; backward(grad_out) returns the
gradient with respect to the input and accumulates parameter gradients into
Parameter.grad. There is no autograd tape: a model's backward runs its children's
backward in reverse order, so a composite module writes both directions.
"""
import inspect
from collections import OrderedDict, namedtuple

import numpy as np

from dlkern.nn.backend import get_backend
from dlkern.nn.parameter import Parameter

__all__ = ["Module", "Sequential", "IncompatibleKeys", "run_backward"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _check_dtype(owner, dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _trainable(module):
    """Whether module or a descendant has a parameter that requires a gradient."""
    for p in module._parameters.values():
        if p is not None and p.requires_grad:
            return True
    for m in module._modules.values():
        if m is not None and _trainable(m):
            return True
    return False


_TAKES_INPUT_GRAD = {}


def run_backward(module, grad_out, input_grad=True):
    """module.backward(grad_out, input_grad=...), also for a module written before
    input_grad existed (backward(self, grad_out)): that one is called as it expects
    and, with input_grad=False, its input gradient is dropped (None is returned)."""
    if input_grad:
        return module.backward(grad_out)
    cls = type(module)
    takes = _TAKES_INPUT_GRAD.get(cls)
    if takes is None:
        params = inspect.signature(cls.backward).parameters
        takes = _TAKES_INPUT_GRAD[cls] = "input_grad" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if takes:
        return module.backward(grad_out, input_grad=False)
    module.backward(grad_out)
    return None


class Module:
    """Base class. Subclasses call super().__init__() first, then assign Parameters,
    buffers (via register_buffer) and child modules as attributes; names follow the
    attribute names, dotted through children ("block.conv1.weight").

    A composite module writes forward and backward; backward visits the children in
    reverse and adds the gradients of branches that reuse an input:

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
                self.out = nn.Linear(8, 2)

            def forward(self, x):
                return self.out(self.body(x))

            def backward(self, grad_out, input_grad=True):
                return self.body.backward(self.out.backward(grad_out), input_grad)

    backward(grad_out, input_grad=False) returns None and computes only parameter
    gradients (see the module docstring); a composite passes input_grad to the
    children that see its input and True to the others.

    A leaf module calls the backend once in forward (self.F.<kernel>), caches what
    backward needs with self._save(...), and reads it back with self._saved(), which
    raises a clear RuntimeError when backward comes without a forward.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)

    # ---- registration -------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes")
        for store in (self._parameters, self._buffers, self._modules):
            if name in store and not (store is self._buffers and
                                      (value is None or isinstance(value, np.ndarray))):
                del store[name]
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._parameters and value is None:
            self._parameters[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters, buffers, children.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register a Parameter (or None, e.g. bias=False, which state_dict skips)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, array):
        """Register a NumPy array (or None) saved in state_dict but not trained."""
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"register_buffer: {name} must be a NumPy array or None, "
                            f"got {type(array).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name} must be a Module, got {type(module).__name__}")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    # ---- computation --------------------------------------------------------------
    @property
    def F(self):
        """The functional API of the current backend (dlkern.functional or reference)."""
        return get_backend()

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_out, input_grad=True):
        """Accumulate parameter gradients; return the input gradient (None when
        input_grad is False: the caller does not need it, so it is not computed)."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _save(self, **values):
        """Cache what backward needs (replacing the previous forward's cache).

        Set directly, past __setattr__'s registration checks: _cache is never a
        Parameter, buffer or child, and every layer call saves once."""
        object.__setattr__(self, "_cache", values)

    def _saved(self):
        """The cache of the last forward, or a clear error when there was none."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: "
                               f"run forward first (backward uses what forward cached)")
        return self._cache

    # ---- traversal ----------------------------------------------------------------
    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo=None, prefix=""):
        """(dotted name, module) for self ("" ) and every descendant, depth first."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def _named_members(self, store, prefix, recurse):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, v in getattr(m, store).items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), v

    def named_parameters(self, prefix="", recurse=True):
        """(torch-style dotted name, Parameter), e.g. ("0.weight", p); shared ones once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and gradients ------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on self and every descendant (eval() is train(False))."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter of this module and its children."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def to(self, dtype):
        """Convert every parameter (and gradient) and floating buffer to dtype (float32 or
        float64) in place; the Parameter objects stay the same. As with torch, convert
        before creating the optimizer (its state keeps the old dtype)."""
        dtype = _check_dtype(f"{type(self).__name__}.to", dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype != dtype:
                    p.data = p.data.astype(dtype)
                    p.grad = None if p.grad is None else p.grad.astype(dtype)
            for name, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    m._buffers[name] = b.astype(dtype)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def zero_grad(self, set_to_none=True):
        """Reset gradients: to None (PyTorch's default) or to zeros in place."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    # ---- state --------------------------------------------------------------------
    def _state_items(self):
        """(key, owner store, local name) in PyTorch's order: a module's parameters,
        then its buffers, then each child recursively."""
        out = []
        for prefix, m in self.named_modules():
            p = f"{prefix}." if prefix else ""
            for name, v in m._parameters.items():
                if v is not None:
                    out.append((p + name, m._parameters, name))
            for name, v in m._buffers.items():
                if v is not None:
                    out.append((p + name, m._buffers, name))
        return out

    def state_dict(self):
        """OrderedDict of copies of every parameter and buffer under PyTorch's key names
        ("conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "0.bias").

        Copies, unlike PyTorch's shared tensors: a saved state stays as it was while
        training goes on (what checkpoints and early stopping want)."""
        sd = OrderedDict()
        for key, store, name in self._state_items():
            v = store[name]
            sd[key] = np.array(v.data if isinstance(v, Parameter) else v, copy=True)
        return sd

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from state_dict into the parameters and buffers in place (cast to
        each one's dtype; optimizers holding the Parameters keep working).

        Values may be NumPy arrays or anything np.asarray accepts (e.g. CPU tensors).
        Shapes must match exactly: ValueError names the key, the expected and the given
        shape. strict=True also raises ValueError naming the first missing key (in the
        model's order) or, if none, the first unexpected key; strict=False ignores them
        and returns IncompatibleKeys(missing_keys, unexpected_keys). Nothing is changed
        when an error is raised.
        """
        items = self._state_items()
        expected = [k for k, _, _ in items]
        given = list(state_dict.keys())
        missing = [k for k in expected if k not in state_dict]
        known = set(expected)
        unexpected = [k for k in given if k not in known]
        if strict and missing:
            raise ValueError(f"load_state_dict: missing key '{missing[0]}' (the model has it, "
                             f"the state_dict does not; {len(missing)} missing in all)")
        if strict and unexpected:
            raise ValueError(f"load_state_dict: unexpected key '{unexpected[0]}' (in the "
                             f"state_dict, not in the model; {len(unexpected)} unexpected "
                             f"in all)")
        staged = []
        for key, store, name in items:
            if key not in state_dict:
                continue
            target = store[name]
            target_arr = target.data if isinstance(target, Parameter) else target
            value = np.asarray(state_dict[key])
            if value.shape != target_arr.shape:
                raise ValueError(f"load_state_dict: shape mismatch for '{key}': the model "
                                 f"expects {target_arr.shape}, the state_dict has "
                                 f"{value.shape}")
            staged.append((target_arr, value))
        for target_arr, value in staged:
            np.copyto(target_arr, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ---- printing -----------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Children run in order; named "0", "1", ... as in torch (or by an OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is not a Module "
                                    f"(got {type(m).__name__})")
                self.add_module(str(i), m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return mods[idx]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        object.__setattr__(self, "_cache", True)  # marks that forward ran (see _save)
        return x

    def backward(self, grad_out, input_grad=True):
        """Children's backward in reverse. With input_grad=False, the children in
        front of the first one with a trainable parameter are skipped (nothing needs
        their gradients) and that one is asked for no input gradient."""
        self._saved()
        mods = list(self._modules.values())
        first = 0
        if not input_grad:
            while first < len(mods) and not _trainable(mods[first]):
                first += 1
            if first == len(mods):
                return None
        for m in reversed(mods[first + 1:]):
            grad_out = m.backward(grad_out)
        if not mods:
            return grad_out
        return run_backward(mods[first], grad_out, input_grad)
