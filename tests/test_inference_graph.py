"""The compiled evaluation forward of model graphs (fastnn.eval_graph): convolutions with
batch norm folded in, residual blocks, recurrent classifiers, every normalisation with
running statistics - against the model's own (unfolded) evaluation forward, in float32
and float64, and across the changes of model state that must refold them."""

import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import inference, state_version
from fastnn.layers import (
    GRU,
    LSTM,
    Add,
    AdaptiveAvgPool2d,
    AttentionPooling,
    AvgPool1d,
    BatchNorm1d,
    BatchNorm2d,
    BatchRenorm1d,
    Conv1d,
    Conv2d,
    Dense,
    Dropout,
    Dropout2d,
    Embedding,
    Flatten,
    InstanceNorm1d,
    InstanceNorm2d,
    MaxPool2d,
    ReLU,
    Residual,
    SyncBatchNorm,
    Tanh,
)


def assert_close_to(got, ref, dtype):
    """Agreement to the dtype's round-off, relative to the output's scale."""
    scale = max(1.0, float(np.abs(ref).max()))
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


def unfolded_eval(model, X):
    """The model's own evaluation forward, layer by layer (no compiled path)."""
    was = model.training
    model.eval()
    try:
        return np.array(model.forward(X))
    finally:
        model.train(was)


def randomize_stats(model, seed=0):
    """Running statistics and affine parameters far from their defaults, so a predictor
    that skipped a normalisation fails the comparison."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            n = m.running_mean.shape[0]
            m.running_mean[...] = rng.standard_normal(n)
            m.running_var[...] = rng.uniform(0.2, 3.0, n)
        if getattr(m, "affine", False) or getattr(m, "elementwise_affine", False):
            m.weight.data[...] = rng.uniform(0.5, 2.0, m.weight.shape)
            m.bias.data[...] = rng.standard_normal(m.bias.shape)
    state_version.bump()
    return model


def check(model, X, dtype, steps=None):
    """Compiled predict == the unfolded evaluation forward; the predictor's steps are
    `steps` (class names) when given; returns the predictor."""
    ref = unfolded_eval(model, X)
    predictor = inference.compile(model)
    if steps is not None:
        assert [type(s).__name__ for s in predictor.steps] == steps
    out = predictor(X)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert_close_to(out, ref, dtype)
    assert_close_to(model.predict(X, batch_size=3), ref, dtype)
    return predictor


# ------------------------------------------------------------ normalisations, one by one
def conv2d_norm(norm, dt):
    return fastnn.Sequential(Conv2d(3, 6, 3, padding=1, dtype=dt), norm(6, dtype=dt), ReLU())


def conv1d_norm(norm, dt):
    return fastnn.Sequential(Conv1d(3, 6, 3, dtype=dt), norm(6, dtype=dt), Tanh())


def dense_norm(norm, dt):
    return fastnn.Sequential(
        Dense(5, 6, dtype=dt), norm(6, dtype=dt), ReLU(), Dense(6, 2, dtype=dt)
    )


def tracked(cls):
    return lambda n, dtype: cls(n, track_running_stats=True, affine=True, dtype=dtype)


NORM_CASES = {
    "BatchNorm2d": (conv2d_norm, BatchNorm2d, (4, 3, 6, 5)),
    "SyncBatchNorm/conv": (conv2d_norm, SyncBatchNorm, (4, 3, 6, 5)),
    "InstanceNorm2d": (conv2d_norm, tracked(InstanceNorm2d), (4, 3, 6, 5)),
    "BatchNorm1d/conv": (conv1d_norm, BatchNorm1d, (4, 3, 9)),
    "BatchRenorm1d/conv": (conv1d_norm, BatchRenorm1d, (4, 3, 9)),
    "InstanceNorm1d": (conv1d_norm, tracked(InstanceNorm1d), (4, 3, 9)),
    "BatchNorm1d/dense": (dense_norm, BatchNorm1d, (4, 5)),
    "BatchRenorm1d/dense": (dense_norm, BatchRenorm1d, (4, 5)),
    "SyncBatchNorm/dense": (dense_norm, SyncBatchNorm, (4, 5)),
}


@pytest.mark.parametrize("case", sorted(NORM_CASES))
def test_every_norm_with_running_stats_folds(case, dtype, rng):
    make, norm, shape = NORM_CASES[case]
    model = randomize_stats(make(norm, dtype))
    X = rng.standard_normal(shape).astype(dtype)
    predictor = check(model, X, dtype)
    assert len(predictor.steps if hasattr(predictor, "steps") else [predictor]) == 1
    # the fold matters: the same model without the normalisation differs
    plain = fastnn.Sequential(*[m for m in model.layers if m is not model.layers[1]])
    assert np.abs(unfolded_eval(plain, X) - unfolded_eval(model, X)).max() > 0.1


def test_norm_without_running_stats_runs_its_own_forward(rng, dtype):
    model = fastnn.Sequential(
        Conv2d(3, 4, 3, dtype=dtype), BatchNorm2d(4, track_running_stats=False, dtype=dtype), ReLU()
    )
    X = rng.standard_normal((3, 3, 5, 5)).astype(dtype)
    check(model, X, dtype, ["_ConvStep", "_LayerStep", "_LayerStep"])


# ------------------------------------------------------------ whole networks
def lenet(dt):
    return fastnn.Sequential(
        Conv2d(1, 6, 5, padding=2, dtype=dt),
        BatchNorm2d(6, dtype=dt),
        ReLU(),
        MaxPool2d(2),
        Conv2d(6, 16, 5, dtype=dt),
        BatchNorm2d(16, dtype=dt),
        ReLU(),
        Dropout2d(0.2),
        MaxPool2d(2),
        Flatten(),
        Dense(16 * 5 * 5, 120, dtype=dt),
        BatchNorm1d(120, dtype=dt),
        ReLU(),
        Dropout(0.5),
        Dense(120, 84, dtype=dt),
        ReLU(),
        Dense(84, 10, dtype=dt),
    )


LENET_STEPS = ["_ConvStep", "_LayerStep", "_ConvStep", "_LayerStep", "_LayerStep", "_ChainStep"]


def test_lenet(dtype, rng):
    model = randomize_stats(lenet(dtype))
    X = rng.standard_normal((7, 1, 28, 28)).astype(dtype)
    check(model, X, dtype, LENET_STEPS)


def basic_block(dt, channels=4, out=8):
    """A ResNet basic block with a strided 1x1 projection on the shortcut."""
    inp = fastnn.Input((channels, 8, 8), dtype=dt)
    h = Conv2d(channels, out, 3, stride=2, padding=1, bias=False, dtype=dt)(inp)
    h = BatchNorm2d(out, dtype=dt)(h)
    h = ReLU()(h)
    h = Conv2d(out, out, 3, padding=1, bias=False, dtype=dt)(h)
    h = BatchNorm2d(out, dtype=dt)(h)
    s = Conv2d(channels, out, 1, stride=2, bias=False, dtype=dt)(inp)
    s = BatchNorm2d(out, dtype=dt)(s)
    y = ReLU()(Add()([h, s]))
    y = AdaptiveAvgPool2d(1)(y)
    y = Dense(out, 3, dtype=dt)(Flatten()(y))
    return fastnn.Model(inp, y)


def test_resnet_basic_block_with_projection(dtype, rng):
    model = randomize_stats(basic_block(dtype))
    X = rng.standard_normal((5, 4, 8, 8)).astype(dtype)
    check(
        model,
        X,
        dtype,
        [
            "_ConvStep",
            "_ConvStep",
            "_ConvStep",
            "_AddActStep",
            "_LayerStep",
            "_LayerStep",
            "_ChainStep",
        ],
    )


def test_residual_inside_sequential(dtype, rng):
    model = randomize_stats(
        fastnn.Sequential(
            Conv2d(2, 4, 3, padding=1, dtype=dtype),
            Residual(Conv2d(4, 4, 3, padding=1, dtype=dtype), BatchNorm2d(4, dtype=dtype), ReLU()),
            ReLU(),
            Flatten(),
            Dense(4 * 5 * 5, 3, dtype=dtype),
        )
    )
    X = rng.standard_normal((3, 2, 5, 5)).astype(dtype)
    check(model, X, dtype, ["_ConvStep", "_ConvStep", "_AddActStep", "_LayerStep", "_ChainStep"])


@pytest.mark.parametrize("cell", [LSTM, GRU])
def test_recurrent_classifier(cell, dtype, rng):
    model = fastnn.Sequential(
        Embedding(20, 6, dtype=dtype),
        cell(6, 8, batch_first=True, bidirectional=True, num_layers=2, dropout=0.3, dtype=dtype),
        AttentionPooling(16, dtype=dtype),
        Dense(16, 8, dtype=dtype),
        BatchNorm1d(8, dtype=dtype),
        ReLU(),
        Dense(8, 3, dtype=dtype),
    )
    randomize_stats(model)
    ids = rng.integers(0, 20, (5, 7))
    check(model, ids, dtype, ["_LayerStep", "_LayerStep", "_LayerStep", "_ChainStep"])


def test_input_of_the_wrong_shape_meets_the_layers_own_checks(rng):
    model = fastnn.Sequential(GRU(4, 6, batch_first=True), Dense(6, 3))
    with pytest.raises(ValueError, match=r"Dense\(6, 3\): expected a 2-D array"):
        model.predict(rng.standard_normal((3, 7, 4)).astype(np.float32))
    model = fastnn.Sequential(Conv1d(2, 3, 3), Flatten(), Dense(9, 2))
    with pytest.raises(ValueError, match=r"Dense\(9, 2\): expected 9 features"):
        model.predict(rng.standard_normal((3, 2, 6)).astype(np.float32))


def test_conv1d_sequence_model(dtype, rng):
    model = randomize_stats(
        fastnn.Sequential(
            Conv1d(3, 5, 3, padding="same", dtype=dtype),
            BatchNorm1d(5, dtype=dtype),
            ReLU(),
            AvgPool1d(2),
            Flatten(),
            Dense(5 * 4, 2, dtype=dtype),
        )
    )
    X = rng.standard_normal((4, 3, 8)).astype(dtype)
    check(model, X, dtype, ["_ConvStep", "_LayerStep", "_LayerStep", "_ChainStep"])


def test_branching_graph_and_several_outputs(rng):
    inp = fastnn.Input((6,))
    a = Dense(6, 4)(inp)
    b = ReLU()(Dense(6, 4)(inp))
    s = Add()([a, b])
    model = fastnn.Model(inp, [s, Dense(4, 2)(s)])
    X = rng.standard_normal((5, 6)).astype(np.float32)
    got = model.predict(X, batch_size=2)
    model.eval()
    ref = model.forward(X)
    for g, r in zip(got, ref):
        assert_close_to(g, r, np.float32)


# ------------------------------------------------------------ refolding, allocation
def test_training_step_and_load_state_dict_after_predict_refold(rng):
    model = lenet(np.float32)
    X = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    before = model.predict(X)
    state = model.state_dict()
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.SGD(model.parameters(), lr=0.1))
    trainer.train_step(X, y)  # moves the weights and the running statistics
    after = model.predict(X)
    assert np.abs(after - before).max() > 1e-3
    assert_close_to(after, unfolded_eval(model, X), np.float32)
    model.load_state_dict(state)
    np.testing.assert_allclose(model.predict(X), before, rtol=1e-6, atol=1e-6)


def test_no_allocation_per_call_but_the_output(rng):
    model = randomize_stats(basic_block(np.float32))
    predictor = inference.compile(model)
    X = rng.standard_normal((64, 4, 8, 8)).astype(np.float32)
    predictor(X)
    predictor(X[:1])
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            predictor(X)
            predictor(X[:1])
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # one (64, 8, 4, 4) float32 map of the block is 32 kB; a call's Python objects a few
    assert peak < 16384


def test_hooks_keep_the_uncompiled_path(rng):
    model = lenet(np.float32)
    seen = []
    handle = model.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with pytest.raises(inference.NotCompilable, match="hooks"):
        inference.compile(model)
    model.predict(rng.standard_normal((2, 1, 28, 28)).astype(np.float32))
    assert seen == [(2, 6, 28, 28)]
    handle.remove()


def test_lenet_against_torch_eval(rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = randomize_stats(lenet(np.float32))
    tm = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Dropout2d(0.2),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.BatchNorm1d(120),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    ).eval()
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    X = rng.standard_normal((6, 1, 28, 28)).astype(np.float32)
    with torch.inference_mode():
        ref = tm(torch.from_numpy(X)).numpy()
    assert_close_to(model.predict(X), ref, np.float32)
