"""BatchNorm1d and BatchNorm2d, as torch.nn: running statistics as buffers.

Buffers (state_dict keys as torch): running_mean (zeros), running_var (ones),
num_batches_tracked (int64 0-d array), present when track_running_stats=True;
parameters weight (ones) and bias (zeros) when affine=True.

Training mode normalizes with the batch statistics and updates the running ones in
place (unbiased variance), with factor `momentum`, or with momentum=None the
cumulative average: factor 1/num_batches_tracked. Eval mode uses the running
statistics, unless track_running_stats=False, which always uses batch statistics.
"""
import numpy as np

from dlkern.nn.module import Module, _check_dtype
from dlkern.nn.parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        dtype = _check_dtype(name, dtype)
        if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _check_input(self, x):
        if getattr(x, "ndim", None) not in self._ranks:
            want = " or ".join(f"{r}-D" for r in self._ranks)
            raise ValueError(f"{type(self).__name__}: expected {want} input, got shape "
                             f"{getattr(x, 'shape', None)}")

    def _weight_bias(self):
        """(weight, bias) arrays or Nones, read from the parameter store directly:
        self.weight goes through Module.__getattr__, a microsecond a time, and a
        layer call of the digits CNN is tens of microseconds."""
        params = self._parameters
        w, b = params["weight"], params["bias"]
        return (None if w is None else w.data), (None if b is None else b.data)

    def forward(self, x):
        self._check_input(x)
        buffers, training, track = self._buffers, self.training, self.track_running_stats
        factor = 0.0 if self.momentum is None else float(self.momentum)
        if training and track:
            tracked = buffers["num_batches_tracked"]
            tracked += 1  # in place on the 0-d int64 buffer
            if self.momentum is None:
                factor = 1.0 / float(tracked)
        use_batch_stats = training or not track
        # In eval, or with tracking off, these are None when there are no buffers.
        rm = buffers["running_mean"] if (not training or track) else None
        rv = buffers["running_var"] if (not training or track) else None
        w, b = self._weight_bias()
        out = self.F.batch_norm(x, rm, rv, w, b, use_batch_stats, factor, self.eps)
        # Backward in eval mode needs the statistics forward used (copies: training
        # later updates the buffers in place).
        saved_rm = None if use_batch_stats else rm.copy()
        saved_rv = None if use_batch_stats else rv.copy()
        self._save(x=x, training=use_batch_stats, rm=saved_rm, rv=saved_rv)
        return out

    def backward(self, grad_out, input_grad=True):
        """With input_grad=False, only weight and bias gradients are kept (the kernel
        computes the three together; nothing at all when they are frozen or absent)."""
        c = self._saved()
        weight, bias = self._parameters["weight"], self._parameters["bias"]
        trainable = weight is not None and (weight.requires_grad or bias.requires_grad)
        if not (input_grad or trainable):
            return None
        w = None if weight is None else weight.data
        gx, gw, gb = self.F.batch_norm_backward(grad_out, c["x"], w, c["rm"], c["rv"],
                                                c["training"], self.eps)
        if weight is not None:
            weight.accumulate_grad(gw)
            bias.accumulate_grad(gb)
        return gx if input_grad else None

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input, per channel C."""
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input, per channel C."""
    _ranks = (4,)
