"""Parameter: a trainable array with its gradient, as torch.nn.Parameter."""
import numpy as np


class Parameter:
    """A trainable array.

    data: the values (float32 or float64 ndarray), updated in place by optimizers.
    grad: the accumulated gradient (same shape and dtype) or None before backward.
    requires_grad: False freezes it: optimizers skip it and modules do not
    compute its gradient (fine-tuning).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=True):
        data = np.asarray(data)
        if data.dtype not in (np.float32, np.float64):
            raise TypeError(f"Parameter: data must be float32 or float64, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def accumulate_grad(self, g):
        """Add g to .grad (allocating it on first use), as PyTorch accumulates."""
        if not self.requires_grad:
            return
        if self.grad is None:
            self.grad = np.array(g, dtype=self.data.dtype, copy=True)
        else:
            self.grad += g

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}, requires_grad={self.requires_grad})"
