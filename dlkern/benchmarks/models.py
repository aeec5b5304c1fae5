"""One training step (forward, loss, backward, Adam step) of the `dlkern train`
models against the same architectures written in PyTorch, batch 64."""
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
        model.backward(loss_fn.backward())
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


def model_steps(torch=None):
    """[(name, {impl: step callable})] for the digits CNN and the adding TCN."""
    rng = np.random.default_rng(0)
    xd = rng.uniform(0, 1, (BATCH, 1, 8, 8)).astype(np.float32)
    yd = rng.integers(0, 10, BATCH)
    xa, ya = make_adding_data(BATCH, 200, seed=0)
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
