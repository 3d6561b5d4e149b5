"""The convolutional workloads of `fastnn bench`: a LeNet-5-style network on 1x28x28
and a small ResNet (channels 16-32-64, batch norm, three stages of one basic block,
global average pooling) on 3x32x32, each as one training step (forward, cross-entropy,
backward, Adam) in fastnn and in PyTorch, built with the same layers. Random data:
speed does not depend on what the pixels show."""
import numpy as np

import fastnn

N_IMAGES = 2048
N_CLASSES = 10
SHAPES = {"lenet5": (1, 28, 28), "resnet": (3, 32, 32)}


def make_images(name, n=N_IMAGES, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n,) + SHAPES[name]).astype(np.float32)
    return X, r.integers(0, N_CLASSES, n).astype(np.int64)


def fastnn_lenet5():
    L = fastnn.layers
    return fastnn.Sequential(
        L.Conv2d(1, 6, 5), L.ReLU(), L.MaxPool2d(2), L.Conv2d(6, 16, 5), L.ReLU(),
        L.MaxPool2d(2), L.Flatten(), L.Dense(16 * 4 * 4, 120), L.ReLU(), L.Dense(120, 84),
        L.ReLU(), L.Dense(84, N_CLASSES))


def basic_block(x, cin, cout, stride):
    """The ResNet basic block (He et al., 2016) on the symbolic tensor x: two 3x3
    convolutions with batch norm, added to x, or to a 1x1 projection of x where the
    shape changes, then ReLU."""
    L = fastnn.layers
    h = L.ReLU()(L.BatchNorm2d(cout)(L.Conv2d(cin, cout, 3, stride, 1, bias=False)(x)))
    h = L.BatchNorm2d(cout)(L.Conv2d(cout, cout, 3, 1, 1, bias=False)(h))
    if stride != 1 or cin != cout:
        x = L.BatchNorm2d(cout)(L.Conv2d(cin, cout, 1, stride, bias=False)(x))
    return L.ReLU()(L.Add()([h, x]))


def fastnn_resnet(widths=(16, 32, 64)):
    L = fastnn.layers
    x = fastnn.Input(SHAPES["resnet"])
    h = L.ReLU()(L.BatchNorm2d(widths[0])(L.Conv2d(3, widths[0], 3, 1, 1, bias=False)(x)))
    cin = widths[0]
    for i, w in enumerate(widths):
        h = basic_block(h, cin, w, 1 if i == 0 else 2)
        cin = w
    h = L.Flatten()(L.AdaptiveAvgPool2d(1)(h))
    return fastnn.Model(x, L.Dense(cin, N_CLASSES)(h))


def torch_lenet5(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, N_CLASSES))


def torch_resnet(torch, widths=(16, 32, 64)):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.f = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return torch.relu(self.f(x) + self.proj(x))

    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
              nn.ReLU()]
    cin = widths[0]
    for i, w in enumerate(widths):
        layers.append(Block(cin, w, 1 if i == 0 else 2))
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, N_CLASSES)]
    return nn.Sequential(*layers)


def _batches(n, batch):
    starts = list(range(0, n - batch + 1, batch)) or [0]
    while True:
        yield from starts


def fastnn_cnn_step(name, X, y, batch, seed=0):
    """fastnn through its public API: Trainer.train_step on successive slices of X."""
    from fastnn.losses import CrossEntropyLoss
    from fastnn.optim import Adam

    fastnn.seed(seed)
    model = fastnn_lenet5() if name == "lenet5" else fastnn_resnet()
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), Adam(model.parameters(), lr=1e-3),
                             metrics=())
    starts = _batches(X.shape[0], batch)
    train_step = trainer.train_step

    def step():
        s = next(starts)
        return train_step(X[s:s + batch], y[s:s + batch])

    step.trainer = trainer
    return step


def torch_cnn_step(torch, name, Xt, yt, batch, seed=0):
    """The usual PyTorch loop: zero_grad, forward, loss, backward, Adam step."""
    torch.manual_seed(seed)
    model = (torch_lenet5(torch) if name == "lenet5" else torch_resnet(torch)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    starts = _batches(Xt.shape[0], batch)

    def step():
        s = next(starts)
        opt.zero_grad()
        loss_fn(model(Xt[s:s + batch]), yt[s:s + batch]).backward()
        opt.step()

    return step


def conv_gemm_shapes(model, batch):
    """(m, n, k) of the GEMMs the convolutions of `model` run in one training step
    (forward, weight gradient, input gradient but the first layer's), from a forward
    of one sample recording each convolution's input shape."""
    from fastnn.layers import Conv1d, Conv2d

    shapes, seen = [], []
    convs = [m for m in model.modules() if isinstance(m, (Conv1d, Conv2d))]
    hooks = [c.register_forward_hook(lambda mod, inp, out: seen.append((mod, out.shape)))
             for c in convs]
    try:
        model.eval()
        model.predict(np.zeros((1,) + SHAPES["lenet5" if convs[0].in_channels == 1
                                             else "resnet"], np.float32))
    finally:
        model.train()
        for h in hooks:
            h.remove()
    for i, (c, out) in enumerate(seen):
        kg = c.out_channels // c.groups
        ckk = c.in_channels // c.groups * int(np.prod(c.kernel_size))
        cols = batch * int(np.prod(out[2:]))
        for _ in range(c.groups):
            shapes.append((kg, cols, ckk))  # forward
            shapes.append((kg, ckk, cols))  # weight gradient
            if i > 0:
                shapes.append((ckk, cols, kg))  # input gradient
    return shapes


def gemm_only_step(shapes, dtype=np.float32, seed=0):
    """A step of just the GEMMs in `shapes`, through the same fastnn GEMM the
    convolutions call (operands preallocated)."""
    from fastnn import _kernels

    r = np.random.default_rng(seed)
    calls = [(r.standard_normal((m, k)).astype(dtype), r.standard_normal((k, n)).astype(dtype),
              np.empty((m, n), dtype)) for m, n, k in shapes]

    def step():
        for a, b, c in calls:
            _kernels.gemm(a, b, c, False, False, 1.0, 0.0)

    return step
