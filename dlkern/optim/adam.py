"""Adam and AdamW (torch.optim.Adam / AdamW), with AMSGrad.

Per step t (from 1), with g the gradient (negated when maximize):
    Adam:  g <- g + weight_decay * p          AdamW: p <- p * (1 - lr * weight_decay)
    m <- m + (1 - beta1) * (g - m)
    v <- beta2 * v + (1 - beta2) * g * g
    amsgrad: vmax <- max(vmax, v), used in place of v below
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p <- p - lr / (1 - beta1^t) * m / denom
eps is added after the bias correction of sqrt(v), as torch does.
"""
import numpy as np

from dlkern.optim.optimizer import Optimizer, check_in_range, check_non_negative, lerp_


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        name = type(self).__name__
        check_non_negative(name, "lr", group["lr"])
        check_non_negative(name, "eps", group["eps"])
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_in_range(name, "betas[0]", betas[0], 0.0, 1.0, high_inclusive=False)
        check_in_range(name, "betas[1]", betas[1], 0.0, 1.0, high_inclusive=False)
        check_non_negative(name, "weight_decay", group["weight_decay"])

    def _init_state(self, p, group):
        state = {"step": 0.0, "exp_avg": np.zeros_like(p.data),
                 "exp_avg_sq": np.zeros_like(p.data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p.data)
        return state

    def _update(self, param, grad, group, state):
        state["step"] += 1
        step = state["step"]
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        g = -grad if group["maximize"] else grad
        if weight_decay != 0:
            if self._decoupled:
                param *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lerp_(exp_avg, g, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        step_size = lr / bias_correction1
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"]
            np.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq
        denom = np.sqrt(second) / bias_correction2_sqrt
        denom += eps
        param += (-step_size) * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): the decay multiplies p
    directly and never enters the moment estimates; weight_decay defaults to 1e-2."""
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
