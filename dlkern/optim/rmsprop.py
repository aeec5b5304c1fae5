"""RMSprop (torch.optim.RMSprop), optionally centered and with momentum.

Per step, with g the gradient (negated when maximize):
    g <- g + weight_decay * p
    v <- alpha * v + (1 - alpha) * g * g
    centered: m <- m + (1 - alpha) * (g - m);  avg = sqrt(v - m * m) + eps
    else:     avg = sqrt(v) + eps
    momentum > 0: b <- momentum * b + g / avg;  p <- p - lr * b
    else:         p <- p - lr * g / avg
"""
import numpy as np

from dlkern.optim.optimizer import Optimizer, check_non_negative, lerp_


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_non_negative("RMSprop", "lr", group["lr"])
        check_non_negative("RMSprop", "eps", group["eps"])
        check_non_negative("RMSprop", "momentum", group["momentum"])
        check_non_negative("RMSprop", "weight_decay", group["weight_decay"])
        check_non_negative("RMSprop", "alpha", group["alpha"])

    def _init_state(self, p, group):
        state = {"step": 0.0, "square_avg": np.zeros_like(p.data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p.data)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p.data)
        return state

    def _update(self, param, grad, group, state):
        state["step"] += 1
        alpha = group["alpha"]
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * param
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * g * g
        if group["centered"]:
            grad_avg = state["grad_avg"]
            lerp_(grad_avg, g, 1 - alpha)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / avg
            param -= group["lr"] * buf
        else:
            param += (-group["lr"]) * g / avg
