"""Adadelta (torch.optim.Adadelta): steps scaled by the ratio of RMS update to RMS gradient.

Per step, with g the gradient (negated when maximize):
    g <- g + weight_decay * p
    v <- rho * v + (1 - rho) * g * g
    delta = sqrt(u + eps) / sqrt(v + eps) * g
    u <- rho * u + (1 - rho) * delta * delta
    p <- p - lr * delta            (lr defaults to 1.0 and multiplies the whole step)
"""
import numpy as np

from dlkern.optim.optimizer import Optimizer, check_in_range, check_non_negative


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_non_negative("Adadelta", "lr", group["lr"])
        check_in_range("Adadelta", "rho", group["rho"], 0.0, 1.0, high_inclusive=True)
        check_non_negative("Adadelta", "eps", group["eps"])
        check_non_negative("Adadelta", "weight_decay", group["weight_decay"])

    def _init_state(self, p, group):
        return {"step": 0.0, "square_avg": np.zeros_like(p.data),
                "acc_delta": np.zeros_like(p.data)}

    def _update(self, param, grad, group, state):
        state["step"] += 1
        rho, eps = group["rho"], group["eps"]
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * param
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= rho
        square_avg += (1 - rho) * g * g
        std = np.sqrt(square_avg + eps)
        delta = np.sqrt(acc_delta + eps)
        delta /= std
        delta *= g
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        param += (-group["lr"]) * delta
