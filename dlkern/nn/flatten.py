"""Flatten, as torch.nn.Flatten: a reshape (no kernel; backward reshapes back)."""
from dlkern.nn.module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Merge dims start_dim..end_dim (default: all but the batch dim)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        nd = x.ndim
        s = self.start_dim % nd if nd else 0
        e = self.end_dim % nd if nd else 0
        if s > e:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim "
                             f"{self.end_dim} for input shape {x.shape}")
        self._save(shape=x.shape)
        merged = 1
        for d in x.shape[s:e + 1]:
            merged *= d
        return x.reshape(x.shape[:s] + (merged,) + x.shape[e + 1:])

    def backward(self, grad_out, input_grad=True):
        shape = self._saved()["shape"]
        return grad_out.reshape(shape) if input_grad else None

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
