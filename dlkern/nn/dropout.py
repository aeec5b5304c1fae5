"""Dropout, as torch.nn.Dropout (inverted dropout: kept units scaled by 1/(1-p))."""
from dlkern.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability p in training (mask drawn from
    dlkern.random's default generator, or `rng` if given); identity in eval.
    backward applies the same mask. `inplace` is accepted and ignored."""

    def __init__(self, p=0.5, inplace=False, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace, self.rng = p, inplace, rng

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._save(mask=None)
            return x
        out, mask = self.F.dropout(x, self.p, True, self.rng, return_mask=True)
        self._save(mask=mask)
        return out

    def backward(self, grad_out, input_grad=True):
        mask = self._saved()["mask"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        if mask is None:  # eval mode or p=0: forward was the identity
            return grad_out
        return self.F.dropout_backward(grad_out, mask, self.p)

    def extra_repr(self):
        return f"p={self.p}"
