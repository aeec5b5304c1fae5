"""One training step (forward, loss, backward, Adam step) of the `dlkern train`
models against the same architectures written in PyTorch, batch 64."""
import time
import warnings

import numpy as np

from dlkern import nn, optim
from dlkern.tasks.adding import AddingTCN, make_adding_data
from dlkern.tasks.digits import digits_cnn

BATCH = 64


def _dlkern_step(model, loss_fn, x, y):
    opt = optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)  # as torch: x needs no grad
        opt.step()

    return step


def _torch_step(torch, model, loss_fn, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    model.train()

    def step():
        opt.zero_grad()
        loss_fn(model(tx), ty).backward()
        opt.step()

    return step


def _torch_digits_cnn(torch):
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3, padding=1), tnn.BatchNorm2d(64), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Dropout(0.25), tnn.Linear(256, 10))


def _torch_adding_tcn(torch, channels=24, levels=4, kernel_size=8):
    tnn, tF = torch.nn, torch.nn.functional

    class CausalConv(tnn.Conv1d):
        def forward(self, x):
            pad = (self.kernel_size[0] - 1) * self.dilation[0]
            return super().forward(tF.pad(x, (pad, 0)))

    class Block(tnn.Module):
        def __init__(self, cin, cout, dilation):
            super().__init__()
            self.conv1 = CausalConv(cin, cout, kernel_size, dilation=dilation)
            self.conv2 = CausalConv(cout, cout, kernel_size, dilation=dilation)
            self.down = tnn.Conv1d(cin, cout, 1) if cin != cout else None

        def forward(self, x):
            h = tF.relu(self.conv2(tF.relu(self.conv1(x))))
            return tF.relu(h + (x if self.down is None else self.down(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            chans = [2] + [channels] * levels
            self.blocks = tnn.Sequential(*[Block(chans[i], chans[i + 1], 2 ** i)
                                           for i in range(levels)])
            self.linear = tnn.Linear(channels, 1)

        def forward(self, x):
            return self.linear(self.blocks(x)[:, :, -1])

    return Net()


def _batches():
    """The fixed batches both models train on: (x, y) for digits and for adding."""
    rng = np.random.default_rng(0)
    xd = rng.uniform(0, 1, (BATCH, 1, 8, 8)).astype(np.float32)
    yd = rng.integers(0, 10, BATCH)
    return (xd, yd), make_adding_data(BATCH, 200, seed=0)


def model_steps(torch=None):
    """[(name, {impl: step callable})] for the digits CNN and the adding TCN."""
    (xd, yd), (xa, ya) = _batches()
    out = []
    digits = {"dlkern": _dlkern_step(digits_cnn(), nn.CrossEntropyLoss(), xd, yd)}
    adding = {"dlkern": _dlkern_step(AddingTCN(dropout=0.0), nn.MSELoss(), xa, ya)}
    if torch is not None:
        digits["torch"] = _torch_step(torch, _torch_digits_cnn(torch),
                                      torch.nn.CrossEntropyLoss(), xd, yd)
        adding["torch"] = _torch_step(torch, _torch_adding_tcn(torch), torch.nn.MSELoss(),
                                      xa, ya)
    out.append(("train step: digits CNN, batch 64", digits))
    out.append(("train step: adding TCN T=200, batch 64", adding))
    return out


def layer_budget(model="digits", steps=50, warmup=10):
    """Where the dlkern step of one model ("digits" or "adding") spends its time: the
    median over `steps` steps of each module's own forward and backward (its children
    excluded, so a composite's entry is its glue: residual adds, reshapes), keyed
    (dotted module name or "<model>", class name, "forward"/"backward"), plus the
    phases "zero_grad", "loss" (forward and backward), "optimizer.step" and "step"
    (the whole step), each keyed (phase, "", ""). Seconds. Each timed call carries
    about a microsecond of timer overhead."""
    (xd, yd), (xa, ya) = _batches()
    if model == "digits":
        net, loss_fn, x, y = digits_cnn(), nn.CrossEntropyLoss(), xd, yd
    elif model == "adding":
        net, loss_fn, x, y = AddingTCN(dropout=0.0), nn.MSELoss(), xa, ya
    else:
        raise ValueError(f"layer_budget: model must be 'digits' or 'adding', got {model!r}")
    opt = optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    times, nesting = {}, []

    def timed(key, fn):
        def call(*args, **kwargs):
            nesting.append(0.0)  # time spent in children of this call
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                times.setdefault(key, []).append(elapsed - nesting.pop())
                if nesting:
                    nesting[-1] += elapsed
        return call

    for name, m in net.named_modules():
        for kind in ("forward", "backward"):
            key = (name or "<model>", type(m).__name__, kind)
            object.__setattr__(m, kind, timed(key, getattr(m, kind)))  # instance attribute
    for i in range(warmup + steps):
        if i == warmup:
            times.clear()  # keep the timed steps only
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        out = net(x)
        t2 = time.perf_counter()
        loss_fn(out, y)
        grad = loss_fn.backward()
        t3 = time.perf_counter()
        net.backward(grad, input_grad=False)
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        for key, dt in (("zero_grad", t1 - t0), ("loss", t3 - t2), ("optimizer.step", t5 - t4),
                        ("step", t5 - t0)):
            times.setdefault((key, "", ""), []).append(dt)
    return {key: float(np.median(ts)) for key, ts in times.items()}


def torch_layer_budget(torch, model="digits", steps=50, warmup=10):
    """layer_budget of the PyTorch twin of a model (same keys: torch's module names
    and classes, "forward"/"backward", and the phases), timed with module hooks:
    forward between the forward pre-hook and hook, backward between the full
    backward pre-hook and hook. Those hooks put extra autograd nodes around each
    module, so the step here is slower than the hook-free one `dlkern bench`
    times; compare layers with layers. A module's entry excludes its children.
    The first layer's input needs no gradient, and torch then fires its backward
    hook before its weight gradient is computed: that work lands in the phase
    "backward" (all of loss.backward()), not in the layer's entry."""
    (xd, yd), (xa, ya) = _batches()
    if model == "digits":
        net, loss_fn, x, y = _torch_digits_cnn(torch), torch.nn.CrossEntropyLoss(), xd, yd
    elif model == "adding":
        net, loss_fn, x, y = _torch_adding_tcn(torch), torch.nn.MSELoss(), xa, ya
    else:
        raise ValueError(f"torch_layer_budget: model must be 'digits' or 'adding', got "
                         f"{model!r}")
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    times, nesting, starts = {}, [], {}

    def begin(key):
        nesting.append(0.0)
        starts[key] = time.perf_counter()

    def end(key):
        elapsed = time.perf_counter() - starts.pop(key)
        times.setdefault(key, []).append(elapsed - nesting.pop())
        if nesting:
            nesting[-1] += elapsed

    for name, m in net.named_modules():
        fkey = (name or "<model>", type(m).__name__, "forward")
        bkey = (name or "<model>", type(m).__name__, "backward")
        m.register_forward_pre_hook(lambda *a, k=fkey: begin(k))
        m.register_forward_hook(lambda *a, k=fkey: end(k))
        m.register_full_backward_pre_hook(lambda *a, k=bkey: begin(k))
        m.register_full_backward_hook(lambda *a, k=bkey: end(k))
    for i in range(warmup + steps):
        if i == warmup:
            times.clear()
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        out = net(tx)
        t2 = time.perf_counter()
        loss = loss_fn(out, ty)
        t3 = time.perf_counter()
        with warnings.catch_warnings():  # the first layer's hook fires early (see above)
            warnings.simplefilter("ignore", UserWarning)
            loss.backward()
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        # the loss's backward runs inside loss.backward(), before the model's
        for key, dt in (("zero_grad", t1 - t0), ("loss", t3 - t2), ("backward", t4 - t3),
                        ("optimizer.step", t5 - t4), ("step", t5 - t0)):
            times.setdefault((key, "", ""), []).append(dt)
    return {key: float(np.median(ts)) for key, ts in times.items()}
