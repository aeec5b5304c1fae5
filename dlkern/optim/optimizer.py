"""Optimizer base class: parameter groups, per-parameter state and PyTorch's state_dict format.

Follows torch.optim.Optimizer: an optimizer is built from an iterable of Parameters
(or of dicts with a "params" entry and per-group options), keeps ``param_groups`` (a list
of dicts) and ``state`` (a dict from Parameter to its per-parameter dict) and updates
``param.data`` in place in ``step()``. Subclasses only write ``_init_state`` and
``_update`` for one parameter; skipping frozen parameters and parameters without a
gradient happens here, once.

``state_dict()`` uses PyTorch's layout: ``{"state": {index: {...}}, "param_groups":
[{..., "params": [index, ...]}]}`` where indices count parameters across groups in
order, so a checkpoint does not depend on object identity and resumes exactly.
"""
import copy
import itertools

import numpy as np

from dlkern import _checks
from dlkern.nn.parameter import Parameter


class _RequiredParameter:
    """Marks a default that every param group must give (like torch.optim.optimizer.required)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def check_non_negative(owner, name, value):
    """ValueError unless value >= 0 (torch's `if not 0.0 <= value` conditions)."""
    _checks.real(owner, name, value)
    if not 0.0 <= value:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value}")


def check_in_range(owner, name, value, low, high, high_inclusive):
    """ValueError unless low <= value < high (or <= high when high_inclusive)."""
    _checks.real(owner, name, value)
    ok = low <= value <= high if high_inclusive else low <= value < high
    if not ok:
        closing = "]" if high_inclusive else ")"
        raise ValueError(f"{owner}: {name} must be in [{low}, {high}{closing}, got {value}")


class Optimizer:
    """Base class of all optimizers (torch.optim.Optimizer's interface).

    params: an iterable of Parameters, of (name, Parameter) pairs (as given by
        ``module.named_parameters()``) or of dicts ``{"params": [...], "lr": ..., ...}``
        whose options override ``defaults`` for that group.
    defaults: the hyperparameters of a group that does not set them.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters "
                            f"or of dicts, got a single {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{type(self).__name__}: params must be an ordered collection "
                            "(a set's order changes between runs); use a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ---------------------------------------------------------------------------

    def add_param_group(self, param_group):
        """Add a group (a dict with "params" and optional per-group options), as torch does
        when fine-tuning unfreezes layers during training."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: param_group must have a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: a group's params must be an ordered collection, not a set")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names and len(names) != len(params):
            raise ValueError(f"{name}: give either all parameters with names or none")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{name}: can only optimize Parameters, but parameter {i} of "
                                f"the group is a {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group contains the same parameter twice")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        group["params"] = params
        if names:
            group["param_names"] = names
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required "
                                 f"optimization parameter {key}")
            group.setdefault(key, default)
        self._check_group(group)
        self.param_groups.append(group)
        self._group_added(group)

    def _check_group(self, group):
        """Validate a group's hyperparameters (subclasses; the constructor checks defaults)."""

    def _group_added(self, group):
        """Hook for optimizers whose state is created eagerly (Adagrad)."""

    # -- stepping -------------------------------------------------------------------------

    def zero_grad(self, set_to_none=True):
        """Reset gradients: to None (the default, as torch) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure=None):
        """Update every parameter that requires a gradient and has one; return closure()."""
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params, grads, states = [], [], []
            for p in group["params"]:
                if not p.requires_grad or p.grad is None:
                    continue
                grads.append(self._grad_of(p))
                state = self.state.get(p)
                if state is None or not state:
                    state = self.state[p] = self._init_state(p, group)
                params.append(p)
                states.append(state)
            if params:
                self._update_group(params, grads, group, states)
        return loss

    def _update_group(self, params, grads, group, states):
        """Update a group's live parameters (those with a gradient), in order. The
        default calls _update for each; an optimizer may update them together."""
        for p, grad, state in zip(params, grads, states):
            self._update(p.data, grad, group, state)

    def _grad_of(self, p):
        grad = p.grad
        if not isinstance(grad, np.ndarray) or grad.shape != p.data.shape:
            got = grad.shape if isinstance(grad, np.ndarray) else type(grad).__name__
            raise ValueError(f"{type(self).__name__}: a parameter of shape {p.data.shape} has a "
                             f"gradient of shape {got}")
        return np.asarray(grad, dtype=p.data.dtype)

    def _init_state(self, p, group):
        """A fresh state dict for p (called lazily on its first update)."""
        return {}

    def _update(self, param, grad, group, state):
        """Update param (ndarray, in place) from grad with group's options and state."""
        raise NotImplementedError

    # -- checkpoints ----------------------------------------------------------------------

    def state_dict(self):
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}, as torch.

        Arrays are copied, so the dict is a snapshot that later steps do not change."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: _copy_value(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a state_dict() (also one from torch converted to NumPy arrays).

        Group options are taken from the saved groups; arrays are copied and cast to
        their parameter's dtype (the step counter stays a float)."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the saved state has {len(saved_groups)} "
                             f"parameter groups but the optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: saved parameter group {i} has "
                                 f"{len(saved['params'])} parameters but the optimizer's has "
                                 f"{len(group['params'])}")
        id_map = dict(zip(itertools.chain.from_iterable(g["params"] for g in saved_groups),
                          itertools.chain.from_iterable(g["params"] for g in self.param_groups)))
        new_state = {}
        for key, saved_state in state_dict["state"].items():
            if isinstance(key, str) and key.isdigit():  # keys that went through JSON or npz
                key = int(key)
            if key not in id_map:
                continue
            p = id_map[key]
            new_state[p] = {k: _cast_state(name, key, k, v, p) for k, v in saved_state.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            restored = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            restored["params"] = group["params"]
            new_groups.append(restored)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _copy_value(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def _cast_state(name, index, key, value, p):
    if key == "step":
        return float(np.asarray(value))
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        value = np.array(value, copy=True)
        if value.dtype.kind == "f":
            if value.shape != p.data.shape:
                raise ValueError(f"{name}.load_state_dict: state '{key}' of parameter {index} has "
                                 f"shape {value.shape} but the parameter has shape {p.data.shape}")
            value = value.astype(p.data.dtype, copy=False)
        return value
    return copy.deepcopy(value)


def lerp_(start, end, weight):
    """start += weight * (end - start) in place, with ATen's two-branch formula (the
    large-weight branch keeps end exact when weight is near 1), in start's dtype."""
    weight = start.dtype.type(weight)
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (start.dtype.type(1) - weight)
