"""The MLP-BN workload of `fastnn bench` in each implementation: the preloaded data,
fastnn's, the NumPy baseline's and PyTorch's training step and predict, and the
step's GEMMs alone at the same shapes."""

import numpy as np

import fastnn
from fastnn import _kernels
from fastnn.bench.numpy_baseline import NumpyMLPBN

N_SAMPLES, N_FEATURES, N_CLASSES, HIDDEN = 16384, 784, 10, 512
TRAIN_BATCHES = (16, 128, 2048)
PREDICT_BATCHES = (1, 16, 256)
THREADS = (1, 2)
SCALING_SIZES = (65536, 262144, 1048576)  # the last is 3.3 GB of float32 features


def make_data(n=N_SAMPLES, features=N_FEATURES, classes=N_CLASSES, seed=0):
    """The preloaded data set: float32 X (n, features) ~ N(0, 1), int64 labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features), dtype=np.float32)
    y = rng.integers(0, classes, n, dtype=np.int64)
    return X, y


def _batches(n, batch):
    """Start offsets of successive batches, cycling through the data."""
    starts = list(range(0, n - batch + 1, batch)) or [0]
    while True:
        yield from starts


def fastnn_mlp_bn(dtype=np.float32, hidden=(HIDDEN, HIDDEN), p=0.5):
    layers, fan = [], N_FEATURES
    for h in hidden:
        layers += [
            fastnn.Dense(fan, h, dtype=dtype),
            fastnn.BatchNorm1d(h, dtype=dtype),
            fastnn.ReLU(),
            fastnn.Dropout(p),
        ]
        fan = h
    layers.append(fastnn.Dense(fan, N_CLASSES, dtype=dtype))
    return fastnn.Sequential(*layers)


def fastnn_train_step(X, y, batch, seed=0):
    """fastnn through its public API: Trainer.train_step on a slice of X."""
    return trainer_step(fastnn_mlp_bn, X, y, batch, seed)


def trainer_step(build, X, y, batch, seed=0):
    """A step of the model build() makes (after fastnn.seed(seed)), cross-entropy and
    Adam through Trainer.train_step on successive slices of X; `step.trainer` is the
    Trainer."""
    from fastnn.losses import CrossEntropyLoss
    from fastnn.optim import Adam

    fastnn.seed(seed)
    model = build()
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), Adam(model.parameters(), lr=1e-3), metrics=()
    )
    starts = _batches(X.shape[0], batch)
    train_step = trainer.train_step

    def step():
        s = next(starts)
        return train_step(X[s : s + batch], y[s : s + batch])

    step.trainer = trainer
    return step


def numpy_train_step(X, y, batch, seed=0):
    net = NumpyMLPBN(seed=seed)
    starts = _batches(X.shape[0], batch)
    train_step = net.train_step

    def step():
        s = next(starts)
        return train_step(X[s : s + batch], y[s : s + batch])

    return step


def torch_mlp_bn(torch, p=0.5):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(N_FEATURES, HIDDEN),
        nn.BatchNorm1d(HIDDEN),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(HIDDEN, HIDDEN),
        nn.BatchNorm1d(HIDDEN),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(HIDDEN, N_CLASSES),
    )


def torch_train_step(torch, Xt, yt, batch, fused=False, seed=0):
    """The usual PyTorch loop: zero_grad, forward, loss, backward, Adam step."""
    torch.manual_seed(seed)
    model = torch_mlp_bn(torch).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True if fused else None)
    loss_fn = torch.nn.CrossEntropyLoss()
    starts = _batches(Xt.shape[0], batch)

    def step():
        s = next(starts)
        opt.zero_grad()
        loss = loss_fn(model(Xt[s : s + batch]), yt[s : s + batch])
        loss.backward()
        opt.step()

    return step


def gemm_shapes(batch, widths=(HIDDEN, HIDDEN), features=N_FEATURES, classes=N_CLASSES):
    """The 8 GEMMs of an MLP-BN step as (label, A shape, B shape, C shape, trans_a,
    trans_b, beta), in the order fastnn runs them (weight gradients accumulate)."""
    dims = (features,) + tuple(widths) + (classes,)
    out = []
    for i in range(len(dims) - 1):
        out.append(
            (
                f"fwd {i}: x{i} @ W{i}.T",
                (batch, dims[i]),
                (dims[i + 1], dims[i]),
                (batch, dims[i + 1]),
                False,
                True,
                0.0,
            )
        )
    for i in range(len(dims) - 2, -1, -1):
        out.append(
            (
                f"bwd {i}: gW{i} += gz.T @ x{i}",
                (batch, dims[i + 1]),
                (batch, dims[i]),
                (dims[i + 1], dims[i]),
                True,
                False,
                1.0,
            )
        )
        if i > 0:
            out.append(
                (
                    f"bwd {i}: gx{i} = gz @ W{i}",
                    (batch, dims[i + 1]),
                    (dims[i + 1], dims[i]),
                    (batch, dims[i]),
                    False,
                    False,
                    0.0,
                )
            )
    return out


def gemm_calls(batch, dtype=np.float32, seed=0):
    """[(label, zero-argument callable)] for the 8 GEMMs at their step shapes, through
    fastnn._kernels.gemm (the BLAS fastnn uses)."""
    rng = np.random.default_rng(seed)
    calls = []
    for label, sa, sb, sc, ta, tb, beta in gemm_shapes(batch):
        a = rng.standard_normal(sa, dtype=dtype)
        b = rng.standard_normal(sb, dtype=dtype)
        c = np.zeros(sc, dtype)
        calls.append(
            (
                label,
                lambda a=a, b=b, c=c, ta=ta, tb=tb, beta=beta: _kernels.gemm(
                    a, b, c, ta, tb, 1.0, beta
                ),
            )
        )
    return calls


def gemm_only_step(batch):
    calls = [fn for _, fn in gemm_calls(batch)]

    def step():
        for fn in calls:
            fn()

    return step


def fastnn_predict(X, batch, seed=0):
    fastnn.seed(seed)
    model = fastnn_mlp_bn()
    starts = _batches(X.shape[0], batch)
    predict = model.predict

    def run():
        s = next(starts)
        return predict(X[s : s + batch], batch_size=batch)

    return run


def numpy_predict(X, batch, seed=0):
    net = NumpyMLPBN(seed=seed)
    starts = _batches(X.shape[0], batch)

    def run():
        s = next(starts)
        return net.predict(X[s : s + batch])

    return run


def torch_predict(torch, Xt, batch, seed=0):
    torch.manual_seed(seed)
    model = torch_mlp_bn(torch).eval()
    starts = _batches(Xt.shape[0], batch)

    def run():
        s = next(starts)
        with torch.inference_mode():
            return model(Xt[s : s + batch])

    return run


def _n_params(widths=(HIDDEN, HIDDEN)):
    dims = (N_FEATURES,) + tuple(widths) + (N_CLASSES,)
    dense = sum(a * b + b for a, b in zip(dims, dims[1:]))
    return dense + 2 * sum(widths)  # + BatchNorm gamma and beta
