"""The kernels and shapes `dlkern bench` times: those named in the kernel issues.

A Case holds zero-argument callables for each implementation (dlkern's, the NumPy
reference, PyTorch's when installed) over the same float32 data, the work one call
does (FLOPs for GEMM-bound kernels, bytes moved for memory-bound ones) and a check
that dlkern's result matches the reference before anything is timed.
"""
from dataclasses import dataclass, field

import numpy as np

import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close

F32 = np.float32


@dataclass
class Case:
    family: str
    kernel: str           # e.g. "conv2d fwd+bwd"
    shape: str
    unit: str             # "GFLOP/s" (compute-bound) or "GB/s" (memory-bound)
    work: float           # FLOPs or bytes per call
    impls: dict = field(default_factory=dict)   # name -> callable; "dlkern" first
    passes: tuple = ()    # bytes moved by each kernel call, when a case makes several

    @property
    def call_bytes(self):
        """Bytes moved by each kernel call of a memory-bound case (its copy ceiling is
        a copy per call, at that call's size)."""
        return self.passes or (self.work,)

    @property
    def name(self):
        return f"{self.kernel} {self.shape}"

    def check(self):
        """AssertionError unless dlkern's result (every output and gradient) matches
        the reference's."""
        _close_all(self.impls["dlkern"](), self.impls["reference"]())


def _two_passes(fwd, both):
    """A fwd+bwd case is two calls: the forward's bytes, then the backward's."""
    both.passes = (fwd.work, both.work - fwd.work)


def _rng():
    return np.random.default_rng(0)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _close_all(got, want):
    """assert_close over results that may be (nested) tuples; None entries are skipped."""
    if isinstance(got, tuple) or isinstance(want, tuple):
        assert isinstance(got, tuple) and isinstance(want, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _close_all(g, w)
    elif got is not None and want is not None:
        assert_close(got, want, dtype=F32)


# ---------------------------------------------------------------- conv2d
CONV2D_SHAPES = [
    # name, N, C, OC, H, k, stride, pad, groups
    ("LeNet conv1", 64, 1, 6, 28, 5, 1, 0, 1),
    ("CIFAR conv1", 32, 3, 32, 32, 3, 1, 1, 1),
    ("ResNet 3x3", 16, 64, 64, 32, 3, 1, 1, 1),
    ("strided 3x3", 16, 64, 128, 32, 3, 2, 1, 1),
    ("1x1", 16, 128, 256, 16, 1, 1, 0, 1),
    ("depthwise 3x3", 16, 64, 64, 32, 3, 1, 1, 64),
]


def conv2d_cases(torch):
    cases = []
    for label, n, c, oc, h, k, s, p, g in CONV2D_SHAPES:
        rng = _rng()
        x = rng.standard_normal((n, c, h, h)).astype(F32)
        w = (rng.standard_normal((oc, c // g, k, k)) / np.sqrt(c // g * k * k)).astype(F32)
        b = rng.standard_normal(oc).astype(F32)
        oh = (h + 2 * p - k) // s + 1
        flops = 2.0 * n * oc * oh * oh * (c // g) * k * k
        gy = rng.standard_normal((n, oc, oh, oh)).astype(F32)
        kw = dict(stride=s, padding=p, groups=g)
        shape = f"{label} N{n} {c}->{oc} {h}x{h} k{k} s{s} p{p}" + (f" g{g}" if g > 1 else "")
        fwd = Case("conv2d", "conv2d fwd", shape, "GFLOP/s", flops)
        both = Case("conv2d", "conv2d fwd+bwd", shape, "GFLOP/s", 3 * flops)
        fwd.impls["dlkern"] = lambda x=x, w=w, b=b, kw=kw: F.conv2d(x, w, b, **kw)
        both.impls["dlkern"] = lambda x=x, w=w, b=b, gy=gy, kw=kw: (
            F.conv2d(x, w, b, **kw), F.conv2d_backward(gy, x, w, **kw))
        fwd.impls["reference"] = lambda x=x, w=w, b=b, kw=kw: R.conv2d(x, w, b, **kw)
        both.impls["reference"] = lambda x=x, w=w, b=b, gy=gy, kw=kw: (
            R.conv2d(x, w, b, **kw), R.conv2d_backward(gy, x, w, **kw))
        if torch is not None:
            tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))
            fwd.impls["torch"] = lambda tx=tx, tw=tw, tb=tb, kw=kw: torch.nn.functional.conv2d(
                tx, tw, tb, **kw)
            both.impls["torch"] = _torch_fwd_bwd(
                torch, lambda a, ww, bb, kw=kw: torch.nn.functional.conv2d(a, ww, bb, **kw),
                (tx, tw, tb), tgy)
        cases += [fwd, both]
    return cases


def _torch_fwd_bwd(torch, fn, inputs, grad_out):
    """A callable running fn forward and autograd backward on fresh leaf tensors."""

    def run():
        leaves = [t.detach().requires_grad_(t.is_floating_point()) for t in inputs]
        out = fn(*leaves)
        out.backward(grad_out)
        return out

    return run


# ---------------------------------------------------------------- pooling
def pooling_cases(torch):
    cases = []
    rng = _rng()
    x = rng.standard_normal((32, 64, 32, 32)).astype(F32)
    for kind in ("max", "avg"):
        for k, s, p in ((2, 2, 0), (3, 2, 1)):
            kw = dict(kernel_size=k, stride=s, padding=p)
            fd, fr = getattr(F, f"{kind}_pool2d"), getattr(R, f"{kind}_pool2d")
            bd, br = getattr(F, f"{kind}_pool2d_backward"), getattr(R, f"{kind}_pool2d_backward")
            y = fd(x, **kw)
            gy = rng.standard_normal(y.shape).astype(F32)
            shape = f"(32, 64, 32, 32) {k}x{k}/{s} p{p}"
            fwd = Case("pooling", f"{kind}_pool2d fwd", shape, "GB/s", x.nbytes + y.nbytes)
            both = Case("pooling", f"{kind}_pool2d fwd+bwd", shape, "GB/s",
                        2 * x.nbytes + 3 * y.nbytes)
            _two_passes(fwd, both)
            fwd.impls["dlkern"] = lambda fd=fd, kw=kw: fd(x, **kw)
            fwd.impls["reference"] = lambda fr=fr, kw=kw: fr(x, **kw)
            both.impls["dlkern"] = lambda fd=fd, bd=bd, kw=kw, gy=gy: (fd(x, **kw), bd(gy, x, **kw))
            both.impls["reference"] = lambda fr=fr, br=br, kw=kw, gy=gy: (fr(x, **kw),
                                                                          br(gy, x, **kw))
            if torch is not None:
                tfn = getattr(torch.nn.functional, f"{kind}_pool2d")
                tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
                fwd.impls["torch"] = lambda tfn=tfn, kw=kw: tfn(tx, **kw)
                both.impls["torch"] = _torch_fwd_bwd(torch, lambda a, tfn=tfn, kw=kw: tfn(a, **kw),
                                                     (tx,), tgy)
            cases += [fwd, both]
    return cases


# ---------------------------------------------------------------- batch norm
def batch_norm_cases(torch):
    cases = []
    for shape in ((32, 64, 32, 32), (256, 512)):
        rng = _rng()
        x = rng.standard_normal(shape).astype(F32) * 2 + 1
        c = shape[1]
        w = rng.uniform(0.5, 1.5, c).astype(F32)
        b = rng.standard_normal(c).astype(F32)
        gy = rng.standard_normal(shape).astype(F32)
        stats = {k: (np.zeros(c, F32), np.ones(c, F32)) for k in ("dlkern", "reference", "torch")}

        def fwd_d(stats=stats, x=x, w=w, b=b):
            return F.batch_norm(x, *stats["dlkern"], w, b, training=True)

        def fwd_r(stats=stats, x=x, w=w, b=b):
            return R.batch_norm(x, *stats["reference"], w, b, training=True)

        label = str(shape)
        fwd = Case("batch_norm", "batch_norm train fwd", label, "GB/s", 2 * x.nbytes)
        both = Case("batch_norm", "batch_norm train fwd+bwd", label, "GB/s", 5 * x.nbytes)
        _two_passes(fwd, both)
        fwd.impls["dlkern"], fwd.impls["reference"] = fwd_d, fwd_r
        both.impls["dlkern"] = lambda fwd_d=fwd_d, x=x, w=w, gy=gy: (
            fwd_d(), F.batch_norm_backward(gy, x, w, training=True))
        both.impls["reference"] = lambda fwd_r=fwd_r, x=x, w=w, gy=gy: (
            fwd_r(), R.batch_norm_backward(gy, x, w, training=True))
        if torch is not None:
            tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))
            rm, rv = (torch.from_numpy(a) for a in stats["torch"])
            fwd.impls["torch"] = lambda tx=tx, tw=tw, tb=tb, rm=rm, rv=rv: (
                torch.nn.functional.batch_norm(tx, rm, rv, tw, tb, training=True))
            both.impls["torch"] = _torch_fwd_bwd(
                torch, lambda a, ww, bb, rm=rm, rv=rv: torch.nn.functional.batch_norm(
                    a, rm, rv, ww, bb, training=True), (tx, tw, tb), tgy)
        cases += [fwd, both]
    return cases


# ---------------------------------------------------------------- softmax family
def softmax_cases(torch):
    cases = []
    for shape in ((256, 1000), (4096, 10)):
        rng = _rng()
        x = (rng.standard_normal(shape) * 3).astype(F32)
        t = rng.integers(0, shape[1], shape[0])
        gy = rng.standard_normal(shape).astype(F32)
        label = str(shape)
        for name in ("softmax", "log_softmax"):
            fd, fr = getattr(F, name), getattr(R, name)
            bd, br = getattr(F, f"{name}_backward"), getattr(R, f"{name}_backward")
            fwd = Case("softmax", f"{name} fwd", label, "GB/s", 2 * x.nbytes)
            both = Case("softmax", f"{name} fwd+bwd", label, "GB/s", 5 * x.nbytes)
            _two_passes(fwd, both)
            fwd.impls["dlkern"] = lambda fd=fd, x=x: fd(x, dim=-1)
            fwd.impls["reference"] = lambda fr=fr, x=x: fr(x, dim=-1)
            both.impls["dlkern"] = lambda fd=fd, bd=bd, x=x, gy=gy: bd(gy, fd(x, dim=-1), dim=-1)
            both.impls["reference"] = lambda fr=fr, br=br, x=x, gy=gy: br(gy, fr(x, dim=-1),
                                                                         dim=-1)
            if torch is not None:
                tfn = getattr(torch, name)
                tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
                fwd.impls["torch"] = lambda tfn=tfn, tx=tx: tfn(tx, dim=-1)
                both.impls["torch"] = _torch_fwd_bwd(torch, lambda a, tfn=tfn: tfn(a, dim=-1),
                                                     (tx,), tgy)
            cases += [fwd, both]
        fwd = Case("softmax", "cross_entropy fwd", label, "GB/s", x.nbytes)
        both = Case("softmax", "cross_entropy fwd+bwd", label, "GB/s", 3 * x.nbytes)
        _two_passes(fwd, both)
        one = np.asarray(1.0, F32)
        fwd.impls["dlkern"] = lambda x=x, t=t: F.cross_entropy(x, t)
        fwd.impls["reference"] = lambda x=x, t=t: R.cross_entropy(x, t)
        both.impls["dlkern"] = lambda x=x, t=t: (F.cross_entropy(x, t),
                                                 F.cross_entropy_backward(one, x, t))
        both.impls["reference"] = lambda x=x, t=t: (R.cross_entropy(x, t),
                                                    R.cross_entropy_backward(one, x, t))
        if torch is not None:
            tx, tt = torch.from_numpy(x), torch.from_numpy(t)
            fwd.impls["torch"] = lambda tx=tx, tt=tt: torch.nn.functional.cross_entropy(tx, tt)
            both.impls["torch"] = _torch_fwd_bwd(
                torch, lambda a, tt=tt: torch.nn.functional.cross_entropy(a, tt), (tx,),
                torch.tensor(1.0))
        cases += [fwd, both]
    return cases


# ---------------------------------------------------------------- causal conv1d
def causal_conv1d_cases(torch):
    rng = _rng()
    n, c, L, k, d = 32, 64, 1024, 3, 4
    x = rng.standard_normal((n, c, L)).astype(F32)
    w = (rng.standard_normal((c, c, k)) / np.sqrt(c * k)).astype(F32)
    b = rng.standard_normal(c).astype(F32)
    gy = rng.standard_normal((n, c, L)).astype(F32)
    flops = 2.0 * n * c * c * k * L
    shape = f"(32, 64, 1024) k{k} d{d} 64->64"
    fwd = Case("causal_conv1d", "causal_conv1d fwd", shape, "GFLOP/s", flops)
    both = Case("causal_conv1d", "causal_conv1d fwd+bwd", shape, "GFLOP/s", 3 * flops)
    fwd.impls["dlkern"] = lambda: F.causal_conv1d(x, w, b, dilation=d)
    fwd.impls["reference"] = lambda: R.causal_conv1d(x, w, b, dilation=d)
    both.impls["dlkern"] = lambda: (F.causal_conv1d(x, w, b, dilation=d),
                                    F.causal_conv1d_backward(gy, x, w, dilation=d))
    both.impls["reference"] = lambda: (R.causal_conv1d(x, w, b, dilation=d),
                                       R.causal_conv1d_backward(gy, x, w, dilation=d))
    if torch is not None:
        tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))
        pad = (k - 1) * d

        def causal(a, ww, bb):
            return torch.nn.functional.conv1d(torch.nn.functional.pad(a, (pad, 0)), ww, bb,
                                              dilation=d)

        fwd.impls["torch"] = lambda: causal(tx, tw, tb)
        both.impls["torch"] = _torch_fwd_bwd(torch, causal, (tx, tw, tb), tgy)
    return [fwd, both]


# ---------------------------------------------------------------- linear
def linear_cases(torch):
    rng = _rng()
    xl = rng.standard_normal((256, 512)).astype(F32)
    wl = (rng.standard_normal((1000, 512)) / np.sqrt(512)).astype(F32)
    bl = rng.standard_normal(1000).astype(F32)
    gl = rng.standard_normal((256, 1000)).astype(F32)
    flops = 2.0 * 256 * 512 * 1000
    fwd = Case("linear", "linear fwd", "(256, 512)->1000", "GFLOP/s", flops)
    both = Case("linear", "linear fwd+bwd", "(256, 512)->1000", "GFLOP/s", 3 * flops)
    fwd.impls["dlkern"] = lambda: F.linear(xl, wl, bl)
    fwd.impls["reference"] = lambda: R.linear(xl, wl, bl)
    both.impls["dlkern"] = lambda: (F.linear(xl, wl, bl), F.linear_backward(gl, xl, wl))
    both.impls["reference"] = lambda: (R.linear(xl, wl, bl), R.linear_backward(gl, xl, wl))
    if torch is not None:
        tx, tw, tb, tgy = (torch.from_numpy(a) for a in (xl, wl, bl, gl))
        fwd.impls["torch"] = lambda: torch.nn.functional.linear(tx, tw, tb)
        both.impls["torch"] = _torch_fwd_bwd(torch, torch.nn.functional.linear, (tx, tw, tb), tgy)
    return [fwd, both]


# ---------------------------------------------------------------- activations
ACTIVATIONS = [
    # name, backward takes the output (True) or the input (False)
    ("relu", False), ("leaky_relu", False), ("elu", False), ("sigmoid", True),
    ("tanh", True), ("softplus", False),
]


def activation_cases(torch):
    cases = []
    rng = _rng()
    x = (rng.standard_normal((32, 64, 32, 32)) * 3).astype(F32)
    gy = rng.standard_normal(x.shape).astype(F32)
    shape = "(32, 64, 32, 32)"
    for name, uses_output in ACTIVATIONS:
        fd, fr = getattr(F, name), getattr(R, name)
        bd, br = getattr(F, f"{name}_backward"), getattr(R, f"{name}_backward")
        fwd = Case("activations", f"{name} fwd", shape, "GB/s", 2 * x.nbytes)
        both = Case("activations", f"{name} fwd+bwd", shape, "GB/s", 5 * x.nbytes)
        _two_passes(fwd, both)
        fwd.impls["dlkern"] = lambda fd=fd: fd(x)
        fwd.impls["reference"] = lambda fr=fr: fr(x)
        if uses_output:
            both.impls["dlkern"] = lambda fd=fd, bd=bd: bd(gy, fd(x))
            both.impls["reference"] = lambda fr=fr, br=br: br(gy, fr(x))
        else:
            both.impls["dlkern"] = lambda fd=fd, bd=bd: (fd(x), bd(gy, x))
            both.impls["reference"] = lambda fr=fr, br=br: (fr(x), br(gy, x))
        if torch is not None:
            tfn = getattr(torch.nn.functional, name, None) or getattr(torch, name)
            tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
            fwd.impls["torch"] = lambda tfn=tfn, tx=tx: tfn(tx)
            both.impls["torch"] = _torch_fwd_bwd(torch, lambda a, tfn=tfn: tfn(a), (tx,), tgy)
        cases += [fwd, both]
    return cases


FAMILIES = {
    "conv2d": conv2d_cases,
    "pooling": pooling_cases,
    "batch_norm": batch_norm_cases,
    "softmax": softmax_cases,
    "causal_conv1d": causal_conv1d_cases,
    "linear": linear_cases,
    "activations": activation_cases,
}


def all_cases(torch=None):
    cases = []
    for build in FAMILIES.values():
        cases += build(torch)
    return cases
