"""Adagrad (torch.optim.Adagrad): per-coordinate steps shrink with the summed squared gradients.

Per step t (from 1), with g the gradient (negated when maximize):
    g <- g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    sum <- sum + g * g
    p <- p - clr * g / (sqrt(sum) + eps)
The state (step, sum = initial_accumulator_value) is created at construction, as torch does.
"""
import numpy as np

from dlkern.optim.optimizer import Optimizer, check_non_negative


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_non_negative("Adagrad", "lr", group["lr"])
        check_non_negative("Adagrad", "lr_decay", group["lr_decay"])
        check_non_negative("Adagrad", "weight_decay", group["weight_decay"])
        check_non_negative("Adagrad", "initial_accumulator_value",
                           group["initial_accumulator_value"])
        check_non_negative("Adagrad", "eps", group["eps"])

    def _group_added(self, group):
        for p in group["params"]:
            self.state[p] = self._init_state(p, group)

    def _init_state(self, p, group):
        return {"step": 0.0,
                "sum": np.full_like(p.data, group["initial_accumulator_value"])}

    def _update(self, param, grad, group, state):
        state["step"] += 1
        step = state["step"]
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * param
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        state_sum = state["sum"]
        state_sum += g * g
        std = np.sqrt(state_sum)
        std += group["eps"]
        param += (-clr) * g / std
