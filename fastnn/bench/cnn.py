"""The convolutional workloads of `fastnn bench`: a LeNet-5-style network on 1x28x28
and a small ResNet (channels 16-32-64, batch norm, three stages of one basic block,
global average pooling) on 3x32x32, each as one training step (forward, cross-entropy,
backward, Adam) in fastnn and in PyTorch, built with the same layers. Random data:
speed does not depend on what the pixels show."""

import time

import numpy as np

import fastnn
from fastnn.bench.workloads import _batches, trainer_step

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
        L.Conv2d(1, 6, 5),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Conv2d(6, 16, 5),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Flatten(),
        L.Dense(16 * 4 * 4, 120),
        L.ReLU(),
        L.Dense(120, 84),
        L.ReLU(),
        L.Dense(84, N_CLASSES),
    )


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
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, N_CLASSES),
    )


def torch_resnet(torch, widths=(16, 32, 64)):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.f = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.proj = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.f(x) + self.proj(x))

    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for i, w in enumerate(widths):
        layers.append(Block(cin, w, 1 if i == 0 else 2))
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, N_CLASSES)]
    return nn.Sequential(*layers)


def fastnn_cnn_step(name, X, y, batch, seed=0):
    """fastnn through its public API: Trainer.train_step on successive slices of X."""
    return trainer_step(fastnn_lenet5 if name == "lenet5" else fastnn_resnet, X, y, batch, seed)


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
        loss_fn(model(Xt[s : s + batch]), yt[s : s + batch]).backward()
        opt.step()

    return step


def conv_gemm_shapes(model, batch):
    """(m, n, k) of the products the convolutions of `model` compute in one training
    step (forward, weight gradient, input gradient but the first layer's) written as
    im2col GEMMs, from a forward of one sample recording each convolution's input
    shape."""
    from fastnn.layers import Conv1d, Conv2d

    shapes, seen = [], []
    convs = [m for m in model.modules() if isinstance(m, (Conv1d, Conv2d))]
    hooks = [
        c.register_forward_hook(lambda mod, inp, out: seen.append((mod, out.shape))) for c in convs
    ]
    try:
        model.eval()
        model.predict(
            np.zeros((1,) + SHAPES["lenet5" if convs[0].in_channels == 1 else "resnet"], np.float32)
        )
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
    """A step of just the GEMMs in `shapes` through fastnn's BLAS GEMM (operands
    preallocated): what the convolutions' products cost as GEMMs."""
    from fastnn import _kernels

    r = np.random.default_rng(seed)
    calls = [
        (
            r.standard_normal((m, k)).astype(dtype),
            r.standard_normal((k, n)).astype(dtype),
            np.empty((m, n), dtype),
        )
        for m, n, k in shapes
    ]

    def step():
        for a, b, c in calls:
            _kernels.gemm(a, b, c, False, False, 1.0, 0.0)

    return step


def torch_cnn_case(torch, name, batch):
    """The PyTorch worker's case for `fastnn bench --cnn` (kind 'cnn_<name>')."""
    from fastnn.bench.harness import Case

    X, y = make_images(name)
    return Case(
        f"torch {name}",
        torch_cnn_step(torch, name, torch.from_numpy(X), torch.from_numpy(y), batch),
        batch,
    )


def conv_layer_step(model, batch, seed=0):
    """A step of the model's convolutions alone (forward and backward of a copy of each
    on random input of the shape it sees in the model): the convolutions' own time."""
    from fastnn.layers import Conv2d
    from fastnn.module import Context

    shapes = []
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    hooks = [
        c.register_forward_hook(lambda mod, inp, out: shapes.append((mod, inp.shape[1:])))
        for c in convs
    ]
    try:
        model.predict(np.zeros((1,) + _input_shape(convs[0]), np.float32))
    finally:
        for h in hooks:
            h.remove()
    r = np.random.default_rng(seed)
    runs = []
    for i, (c, shape) in enumerate(shapes):
        copy = Conv2d(
            c.in_channels,
            c.out_channels,
            c.kernel_size,
            c.stride,
            c.padding,
            c.dilation,
            c.groups,
            c.bias is not None,
        )
        x = r.standard_normal((batch,) + shape).astype(np.float32)
        runs.append((copy, Context(), x, i > 0))

    def step():
        for layer, ctx, x, need in runs:
            y = layer._forward(ctx, x)
            layer._backward(ctx, y, need)

    return step


def _input_shape(first_conv):
    return SHAPES["lenet5" if first_conv.in_channels == 1 else "resnet"]


def _rss(field):
    """VmRSS or VmHWM (peak) of this process in bytes (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def _memory_probe(lib, name, batch, steps=3):
    """Peak resident memory (bytes) above the resident set before the model is built,
    over `steps` training steps, in this process: the peak is reset first (Linux
    clear_refs), so the imports' own peak does not count."""
    X, y = make_images(name, n=batch * 2)
    if lib == "torch":
        import torch

        torch.set_num_threads(2)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss("VmRSS")
        step = torch_cnn_step(torch, name, Xt, yt, batch)
    else:
        fastnn.set_num_threads(2)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss("VmRSS")
        step = fastnn_cnn_step(name, X, y, batch)
    for _ in range(steps):
        step()
    return _rss("VmHWM") - base


def peak_memory(lib, name, batch):
    """_memory_probe in a fresh process (so nothing else's high-water mark counts)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, fastnn.bench.cnn as c; "
        f"print(json.dumps(c._memory_probe({lib!r}, {name!r}, {batch})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class _Timed:
    """A plan step's run with its forward and backward timed into `acc`."""

    def __init__(self, run, name, acc):
        self.run, self.name, self.acc = run, name, acc
        self.layers = run.layers if hasattr(run, "layers") else (run,)

    def _forward(self, ctx, x):
        t = time.perf_counter()
        y = self.run._forward(ctx, x)
        self.acc[self.name][0] += time.perf_counter() - t
        return y

    def _backward(self, ctx, g, need_input_grad=True):
        t = time.perf_counter()
        gx = self.run._backward(ctx, g, need_input_grad)
        self.acc[self.name][1] += time.perf_counter() - t
        return gx


def profile_cnn(name, batch, repeats=5, min_time=0.3, step=None):
    """Where a training step of `name` goes: per step of the model's plan (a layer or a
    fused run of layers, in order) its forward and backward ms per training step, and
    the rest (loss, optimizer, bookkeeping) as the step's time minus theirs; each the
    median over `repeats` blocks of steps filling ~min_time. step: the fastnn_cnn_step
    to profile (default: a new one)."""
    if step is None:
        X, y = make_images(name)
        step = fastnn_cnn_step(name, X, y, batch)
    step(), step()  # warm: workspaces, gradient pool, scratch
    plan = step.trainer.model._plan()
    names = [
        f"{k:2d} " + "+".join(type(m).__name__ for m in st.layers)
        for k, st in enumerate(plan.steps)
    ]
    acc = {n: [0.0, 0.0] for n in names}
    runs = [st.run for st in plan.steps]
    t = time.perf_counter()
    step()
    calls = max(1, int(min_time / max(time.perf_counter() - t, 1e-9)))
    blocks = []
    for st, n in zip(plan.steps, names):
        st.run = _Timed(st.run, n, acc)
    try:
        for _ in range(repeats):
            for v in acc.values():
                v[0] = v[1] = 0.0
            t = time.perf_counter()
            for _ in range(calls):
                step()
            total = (time.perf_counter() - t) / calls
            blocks.append((total, {n: (f / calls, b / calls) for n, (f, b) in acc.items()}))
    finally:
        for st, r in zip(plan.steps, runs):
            st.run = r
    med = lambda xs: float(np.median(xs))  # noqa: E731
    layers = {
        n: (med([b[1][n][0] for b in blocks]), med([b[1][n][1] for b in blocks])) for n in names
    }
    return {"model": name, "batch": batch, "step_s": med([b[0] for b in blocks]), "layers": layers}


def profile_table(prof):
    from fastnn.bench.report import _table

    step = prof["step_s"]
    rows = [
        (n, f"{f * 1e3:.2f}", f"{b * 1e3:.2f}", f"{100 * (f + b) / step:.1f}%")
        for n, (f, b) in prof["layers"].items()
    ]
    inside = sum(f + b for f, b in prof["layers"].values())
    rows.append(("loss, optimizer, bookkeeping", "", "", f"{100 * (step - inside) / step:.1f}%"))
    rows.append(("training step", "", "", f"{step * 1e3:.2f} ms"))
    head = f"{prof['model']} batch {prof['batch']}: step (layer or fused run)"
    return _table([head, "fwd ms", "bwd ms", "of step"], rows, ["l", "r", "r", "r"])


def run(args, opts, worker, out, log):
    """`fastnn bench --cnn`: training steps of LeNet-5 and the small ResNet at batch 32
    and 256 against PyTorch (each in its own process), the convolutions' time against
    the same products as BLAS GEMMs, and peak memory at batch 256."""
    from fastnn.bench.harness import Case, measure, set_threads
    from fastnn.bench.report import _table

    threads = max(args.threads) if args.threads else (1 if args.quick else 2)
    batches = args.batches or [32, 256]
    set_threads(threads)
    if getattr(args, "profile", False):
        for name in ("lenet5", "resnet"):
            for b in batches:
                log(f"cnn profile: {name} batch {b}, {threads} threads")
                prof = profile_cnn(name, b, opts.repeats, opts.min_time)
                print(f"\n{profile_table(prof)}", file=out)
        return 0
    rows, shares = [], []
    for name in ("lenet5", "resnet"):
        X, y = make_images(name)
        for b in batches:
            log(f"cnn: {name} batch {b}, {threads} threads")
            step = fastnn_cnn_step(name, X, y, b)
            cases = [
                Case("fastnn", step, b),
                Case("convs", conv_layer_step(step.trainer.model, b)),
                Case("gemms", gemm_only_step(conv_gemm_shapes(step.trainer.model, b))),
            ]
            if worker is not None:
                cases.append(worker.case("torch", f"cnn_{name}", b, threads))
            res = measure(cases, opts.repeats, opts.min_time, opts.warmup, opts.pause)
            ours = res["fastnn"]["items_per_s"]
            theirs = res["torch"]["items_per_s"] if worker is not None else None
            rows.append(
                (
                    name,
                    b,
                    f"{ours:,.0f}",
                    "-" if theirs is None else f"{theirs:,.0f}",
                    "-" if theirs is None else f"{ours / theirs:.2f}x",
                )
            )
            conv, gemm = res["convs"]["median_s"], res["gemms"]["median_s"]
            step_s = res["fastnn"]["median_s"]
            shares.append(
                (
                    name,
                    b,
                    f"{step_s * 1e3:.1f}",
                    f"{conv * 1e3:.1f}",
                    f"{100 * conv / step_s:.0f}%",
                    f"{gemm * 1e3:.1f}",
                    f"{conv / gemm:.2f}x",
                )
            )
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(
        f"\nCNN training step (forward, cross-entropy, backward, Adam), samples/s, {threads} "
        f"threads, float32; PyTorch in its own process:"
    )
    p(
        _table(
            ["model", "batch", "fastnn", "PyTorch", "fastnn / PyTorch"],
            rows,
            ["l", "r", "r", "r", "r"],
        )
    )
    p(
        "\nWhere fastnn's step goes: its convolutions (forward + backward, each layer alone) "
        "against the same products as GEMMs through BLAS (im2col shapes):"
    )
    p(
        _table(
            [
                "model",
                "batch",
                "step ms",
                "convs ms",
                "convs share",
                "their GEMMs ms",
                "convs / GEMMs",
            ],
            shares,
            ["l"] + ["r"] * 6,
        )
    )
    if worker is not None and not getattr(args, "quick", False):
        mem = [(lib, peak_memory(lib, "resnet", 256)) for lib in ("fastnn", "torch")]
        p(
            "\nPeak memory added by 3 training steps of the small ResNet at batch 256 (fresh "
            "process each): "
            + ", ".join(f"{lib} {m / 2**20:,.0f} MiB" for lib, m in mem)
            + (f" (fastnn / PyTorch {mem[0][1] / mem[1][1]:.2f}x)" if mem[1][1] > 0 else "")
        )
    return 0
