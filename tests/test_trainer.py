"""The Trainer: learning real tasks, train_step, History, validation split, shuffling
and seeds, batching (memmap, partial batches, drop_last, any input layout), evaluate,
and input validation in fit."""

import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import metrics, optim
from fastnn.losses import CrossEntropyLoss, MSELoss


# -- data and models --------------------------------------------------------------------
def spirals(n_per_class=500, classes=3, noise=0.2, seed=0):
    """Interleaved spiral arms (one per class), shuffled with a fixed seed."""
    r = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        t = np.linspace(0.0, 1.0, n_per_class)
        angle = c * 2 * np.pi / classes + 3 * np.pi * t + r.normal(0, noise, n_per_class)
        xs.append(3 * np.c_[t * np.cos(angle), t * np.sin(angle)])
        ys.append(np.full(n_per_class, c))
    X, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
    order = r.permutation(len(y))
    return X[order], y[order]


def mlp_bn(n_in, n_out, hidden=64, p=0.1, dtype=np.float32):
    return fastnn.Sequential(
        fastnn.Dense(n_in, hidden, dtype=dtype),
        fastnn.BatchNorm1d(hidden, dtype=dtype),
        fastnn.ReLU(),
        fastnn.Dropout(p),
        fastnn.Dense(hidden, hidden, dtype=dtype),
        fastnn.BatchNorm1d(hidden, dtype=dtype),
        fastnn.ReLU(),
        fastnn.Dropout(p),
        fastnn.Dense(hidden, n_out, dtype=dtype),
    )


def small_classification(n=200, features=6, classes=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, features)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y % classes


def weights(model):
    return [v.copy() for v in model.state_dict().values()]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


class RecordingMSE(MSELoss):
    """MSELoss that records the targets of every call, split by the model's mode."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.train_targets, self.eval_targets = [], []

    def forward(self, pred, target):
        dest = self.train_targets if self.model.training else self.eval_targets
        dest.append(np.array(target, copy=True).reshape(-1))
        return super().forward(pred, target)


def index_regression(n):
    """X random, y = the row index: the recorded targets say which rows were used."""
    X = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return X, np.arange(n, dtype=np.float64)


def recording_trainer(seed=0):
    fastnn.seed(seed)
    model = fastnn.Sequential(fastnn.Dense(4, 8), fastnn.ReLU(), fastnn.Dense(8, 1))
    loss = RecordingMSE(model)
    return fastnn.Trainer(model, loss, optim.SGD(model.parameters(), lr=1e-6)), loss


# -- learning ---------------------------------------------------------------------------
def test_mlp_bn_dropout_learns_three_spirals():
    X, y = spirals()
    fastnn.seed(0)
    model = mlp_bn(2, 3, hidden=64, p=0.1)
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2))
    before = trainer.evaluate(X, y)["accuracy"]
    hist = trainer.fit(X, y, epochs=60, batch_size=128, validation_split=0.2, verbose=0)
    n_train = len(X) - 300
    train_acc = trainer.evaluate(X[:n_train], y[:n_train])["accuracy"]
    assert before < 0.6
    assert train_acc >= 0.95, train_acc
    assert hist["val_accuracy"][-1] >= 0.9, hist["val_accuracy"]  # chance is 1/3
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert hist["accuracy"][-1] > hist["accuracy"][0] + 0.3


def test_regression_loss_drops_tenfold():
    r = np.random.default_rng(1)
    X = r.uniform(-1.5, 1.5, size=(1000, 3))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 0] * X[:, 2] + r.normal(0, 0.05, 1000)
    fastnn.seed(1)
    model = fastnn.Sequential(
        fastnn.Dense(3, 64), fastnn.ReLU(), fastnn.Dense(64, 64), fastnn.Tanh(), fastnn.Dense(64, 1)
    )
    trainer = fastnn.Trainer(model, MSELoss(), optim.Adam(model.parameters(), lr=3e-3))
    start = trainer.evaluate(X, y)["loss"]
    hist = trainer.fit(X, y, epochs=40, batch_size=32, verbose=0)
    end = trainer.evaluate(X, y)["loss"]
    assert end < start / 10, (start, end)
    assert hist["loss"][-1] < hist["loss"][0] / 5
    assert set(hist.history) == {"loss", "lr", "epoch_time"}  # no metric by default


def test_train_step_returns_the_loss_and_applies_the_update():
    fastnn.seed(3)
    model = fastnn.Sequential(
        fastnn.Dense(6, 8, dtype=np.float64), fastnn.ReLU(), fastnn.Dense(8, 3, dtype=np.float64)
    )
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    X, y = small_classification(32)
    X = X.astype(np.float64)
    # expected loss and gradients, by hand
    ce = CrossEntropyLoss()
    model.zero_grad()
    expected_loss = ce(model.forward(X), y)
    model.backward(ce.backward())
    grads = [p.grad.copy() for p in model.parameters()]
    before = [p.data.copy() for p in model.parameters()]
    model.eval()
    value = trainer.train_step(X, y)
    assert type(value) is float
    assert value == pytest.approx(expected_loss, rel=1e-12)
    assert model.training  # train_step trains
    for p, b, g in zip(model.parameters(), before, grads):
        assert not np.array_equal(p.data, b)
        np.testing.assert_allclose(p.data, b - 0.1 * g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("max_norm", [0.05, 1e3])
def test_clip_grad_norm_bounds_the_update(max_norm):
    """With SGD(lr=1) the update is the (clipped) gradient: its global norm is at most
    max_norm, and clipping only shrinks (a large max_norm leaves the gradient alone)."""
    fastnn.seed(4)
    X, y = small_classification(64)
    X = X.astype(np.float64) * 10

    def step(clip):
        fastnn.seed(4)
        model = fastnn.Sequential(
            fastnn.Dense(6, 16, dtype=np.float64),
            fastnn.ReLU(),
            fastnn.Dense(16, 3, dtype=np.float64),
        )
        trainer = fastnn.Trainer(
            model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0), clip_grad_norm=clip
        )
        before = np.concatenate([p.data.ravel() for p in model.parameters()])
        trainer.train_step(X, y)
        return before - np.concatenate([p.data.ravel() for p in model.parameters()])

    free, clipped = step(None), step(max_norm)
    norm = np.linalg.norm(free)
    assert norm > 0.5
    if max_norm < norm:
        np.testing.assert_allclose(clipped, free * max_norm / (norm + 1e-6), rtol=1e-9)
        assert np.linalg.norm(clipped) <= max_norm
    else:
        np.testing.assert_allclose(clipped, free, rtol=1e-12)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_clip_grad_norm_rejects_bad_values(bad):
    model = fastnn.Sequential(fastnn.Dense(6, 3))
    with pytest.raises(ValueError):
        fastnn.Trainer(
            model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), clip_grad_norm=bad
        )


# -- History ----------------------------------------------------------------------------
def test_history_has_per_epoch_lists(capsys):
    X, y = small_classification(120)
    fastnn.seed(0)
    model = mlp_bn(6, 3, hidden=16)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), opt)
    hist = trainer.fit(
        X[:90], y[:90], epochs=3, batch_size=16, validation_data=(X[90:], y[90:]), verbose=0
    )
    assert hist is trainer.history and isinstance(hist, fastnn.History)
    keys = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"}
    assert set(hist.history) == keys
    for k in keys:
        assert len(hist[k]) == 3, k
        assert all(isinstance(v, float) for v in hist[k]), k
    assert hist.epoch == [1, 2, 3] and len(hist) == 3
    assert hist["lr"] == [1e-2] * 3
    assert all(t > 0 for t in hist["epoch_time"])
    assert all(0 <= a <= 1 for a in hist["accuracy"] + hist["val_accuracy"])
    assert capsys.readouterr().out == ""
    # the last val figures are those of evaluate on the validation data
    ev = trainer.evaluate(X[90:], y[90:])
    assert ev["loss"] == hist["val_loss"][-1]
    assert ev["accuracy"] == hist["val_accuracy"][-1]
    # A second fit continues the history (numbering goes on from epoch 4) and verbose
    # prints one line per epoch. Whether epochs=5 means "5 more" or "up to epoch 5"
    # (API.md's checkpoint wording) is left open here.
    opt.lr = 5e-3
    trainer.fit(
        X[:90], y[:90], epochs=5, batch_size=16, validation_data=(X[90:], y[90:]), verbose=1
    )
    n = len(hist)
    assert n > 3 and hist.epoch == list(range(1, n + 1)) and trainer.epoch == n
    assert all(len(v) == n for v in hist.history.values())
    assert hist["lr"][3:] == [5e-3] * (n - 3)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == n - 3
    assert lines[0].startswith("epoch 4") and "val_loss" in lines[0]


# -- validation split, batches ----------------------------------------------------------
def test_validation_split_takes_the_last_fraction():
    X, y = index_regression(40)
    trainer, rec = recording_trainer()
    hist = trainer.fit(X, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    seen = np.sort(np.concatenate(rec.train_targets))
    np.testing.assert_array_equal(seen, np.repeat(np.arange(30.0), 2))  # each epoch once
    val_seen = np.concatenate(rec.eval_targets)
    np.testing.assert_array_equal(val_seen, np.tile(np.arange(30.0, 40.0), 2))
    assert trainer.evaluate(X[30:], y[30:])["loss"] == hist["val_loss"][-1]


def _batch_sizes(n, batch_size, drop_last):
    sizes = []

    def count(y_true, y_pred):
        sizes.append(len(y_true))
        return 0.0

    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(4, 1))
    trainer = fastnn.Trainer(
        model, MSELoss(), optim.SGD(model.parameters(), lr=0.01), metrics=[count]
    )
    X, y = index_regression(n)
    hist = trainer.fit(X, y, epochs=2, batch_size=batch_size, drop_last=drop_last, verbose=0)
    assert hist["count"] == [0.0, 0.0]
    return sizes


def test_last_partial_batch_is_used():
    assert _batch_sizes(50, 16, False) == [16, 16, 16, 2] * 2


def test_drop_last_drops_the_partial_batch():
    assert _batch_sizes(50, 16, True) == [16, 16, 16] * 2
    assert _batch_sizes(48, 16, True) == [16, 16, 16] * 2
    with pytest.raises(ValueError):
        _batch_sizes(10, 16, True)


def test_batch_larger_than_the_data_set():
    assert _batch_sizes(10, 64, False) == [10, 10]


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    X, y = index_regression(50)
    trainer, rec = recording_trainer()
    trainer.optimizer.lr = 0.0  # the model does not change, so batch losses are comparable
    hist = trainer.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    pred = trainer.model.predict(X)[:, 0]
    np.testing.assert_allclose(hist["loss"][0], np.mean((pred - y) ** 2), rtol=1e-5)


# -- shuffling and seeds ----------------------------------------------------------------
def test_shuffle_false_visits_rows_in_order():
    X, y = index_regression(40)
    trainer, rec = recording_trainer()
    trainer.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_array_equal(np.concatenate(rec.train_targets), np.tile(np.arange(40.0), 2))


def _orders(seed, shuffle=True, epochs=2):
    X, y = index_regression(40)
    # the trainer draws its own stream from fastnn.seed when it is made
    trainer, rec = recording_trainer(seed)
    trainer.fit(X, y, epochs=epochs, batch_size=8, shuffle=shuffle, verbose=0)
    flat = np.concatenate(rec.train_targets)
    return flat.reshape(epochs, 40)


def test_shuffle_uses_one_permutation_per_epoch_from_fastnn_seed():
    a = _orders(5)
    for epoch in a:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(40.0))
        assert not np.array_equal(epoch, np.arange(40.0))
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(_orders(5), a)
    assert not np.array_equal(_orders(6), a)


def _run(seed, shuffle, X=None, y=None, epochs=3):
    if X is None:
        X, y = small_classification(150)
    fastnn.seed(seed)
    model = mlp_bn(X.shape[1], 3, hidden=16, p=0.2)
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2))
    trainer.fit(X, y, epochs=epochs, batch_size=16, shuffle=shuffle, verbose=0)
    return weights(model)


def test_runs_are_reproducible_with_shuffle_false():
    a, b = _run(0, False), _run(0, False)
    assert same(a, b)


def test_runs_are_reproducible_with_shuffle_true_and_differ_by_seed():
    a, b, c = _run(0, True), _run(0, True), _run(1, True)
    assert same(a, b)
    assert not any(np.array_equal(x, z) for x, z in list(zip(a, c)) if x.dtype.kind == "f")


def test_training_does_not_depend_on_the_thread_count():
    """API: results must not depend on the number of threads. Sizes are chosen so that
    the elementwise kernels and the optimizer cross the one-thread threshold; inner
    dimensions stay <= 512 because OpenBLAS itself is not bit-identical across thread
    counts for larger k (strict xfail in test_kernels.test_gemm_thread_independent)."""
    r = np.random.default_rng(0)
    X, y = r.normal(size=(512, 40)).astype(np.float32), r.integers(0, 5, 512)
    n = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            assert fastnn.get_num_threads() == threads
            fastnn.seed(0)
            model = fastnn.Sequential(
                fastnn.Dense(40, 256),
                fastnn.BatchNorm1d(256),
                fastnn.ReLU(),
                fastnn.Dropout(0.3),
                fastnn.Dense(256, 256),
                fastnn.ReLU(),
                fastnn.Dense(256, 5),
            )
            trainer = fastnn.Trainer(
                model, CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3)
            )
            trainer.fit(X, y, epochs=1, batch_size=256, verbose=0)
            results.append(weights(model))
    finally:
        fastnn.set_num_threads(n)
    assert same(results[0], results[1])


def test_shuffle_changes_the_result():
    assert not same(_run(0, True), _run(0, False))


# -- batching and input layouts ---------------------------------------------------------
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "Fortran"])
def test_fit_on_a_float64_memmap_without_copying_it(tmp_path, fortran):
    """Only batches are materialised: neither a float32 copy of X nor (for a
    Fortran-ordered X, which np.take would copy whole on every call) one per batch."""
    n, f = 40_000, 32
    path = tmp_path / "X.npy"
    r = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float64, shape=(n, f), fortran_order=fortran
    )
    for start in range(0, n, 10_000):
        mm[start : start + 10_000] = r.normal(size=(10_000, f))
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    assert isinstance(X, np.memmap) and X.dtype == np.float64
    assert X.flags.f_contiguous == fortran and X.flags.c_contiguous != fortran
    y = (X[:, :3].sum(axis=1) > 0).astype(np.float64)

    def train(data):
        fastnn.seed(0)
        model = fastnn.Sequential(fastnn.Dense(f, 16), fastnn.ReLU(), fastnn.Dense(16, 1))
        trainer = fastnn.Trainer(model, MSELoss(), optim.Adam(model.parameters()))
        tracemalloc.start()
        try:
            trainer.fit(data, y, epochs=1, batch_size=256, verbose=0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert model.dtype == np.float32
        return weights(model), peak

    w_mm, peak = train(X)
    # A copy of X (even converted to float32) would be X.nbytes / 2 = 5 MB.
    assert peak < X.nbytes / 4, (
        f"fit allocated {peak / 1e6:.1f} MB for a {X.nbytes / 1e6:.1f} MB memmap"
    )
    w_ram, _ = train(np.asarray(X).astype(np.float32))
    assert same(w_mm, w_ram)


def test_any_input_layout_gives_the_same_training_result():
    r = np.random.default_rng(2)
    X_int = r.integers(-3, 4, size=(120, 6))
    y = (X_int[:, 0] + X_int[:, 1] > 0).astype(np.int64) + (X_int[:, 2] > 1)
    X_c = X_int.astype(np.float32)
    big = np.zeros((240, 18), np.float64)
    big[::2, ::3] = X_c
    layouts = {
        "fortran": np.asfortranarray(X_c),
        "strided-f64": big[::2, ::3],
        "int64": X_int,
        "int32": X_int.astype(np.int32),
        "float64": X_c.astype(np.float64),
    }
    expected = _run(0, True, X_c, y)
    for name, X in layouts.items():
        assert not (X.flags.c_contiguous and X.dtype == np.float32)
        assert same(_run(0, True, X, y), expected), name
    assert same(_run(0, True, X_c, y.astype(np.int32)), expected)
    assert same(_run(0, True, X_c, list(y)), expected)


def test_fit_does_not_modify_its_input():
    X, y = small_classification(64)
    Xc, yc = X.copy(), y.copy()
    _run(0, True, X, y)
    assert np.array_equal(X, Xc) and np.array_equal(y, yc)


# -- evaluate ---------------------------------------------------------------------------
def test_evaluate_returns_loss_and_metrics_and_restores_mode():
    X, y = small_classification(100)
    fastnn.seed(0)
    model = mlp_bn(6, 3, hidden=16, p=0.5)
    trainer = fastnn.Trainer(
        model,
        CrossEntropyLoss(),
        optim.Adam(model.parameters()),
        metrics=("accuracy", "top_2_accuracy"),
    )
    trainer.fit(X, y, epochs=2, batch_size=16, verbose=0)
    state = weights(model)
    model.train()
    res = trainer.evaluate(X, y, batch_size=7)  # partial last batch
    assert set(res) == {"loss", "accuracy", "top_2_accuracy"}
    assert model.training
    assert same(weights(model), state)  # running statistics untouched
    model.eval()
    out = model.forward(X)
    assert res["loss"] == pytest.approx(CrossEntropyLoss()(out, y), rel=1e-6)
    assert res["accuracy"] == pytest.approx(metrics.accuracy(y, out), abs=1e-12)
    assert res["top_2_accuracy"] >= res["accuracy"]
    assert trainer.evaluate(X, y)["loss"] == pytest.approx(res["loss"], rel=1e-6)
    assert not model.training  # called in eval mode, stays in eval mode


def test_metrics_by_name():
    y = np.array([0, 1, 2, 1])
    pred = np.array([[2, 1, 0], [0, 3, 1], [1, 2, 0], [0, 0, 1]], np.float32)
    assert metrics.accuracy(y, pred) == 0.5
    assert metrics.resolve("top_2_accuracy")[1](y, pred) == 0.75
    assert metrics.mse(np.zeros(3), np.array([1.0, 2.0, 2.0])) == 3.0
    assert metrics.mae(np.zeros(3), np.array([1.0, -2.0, 3.0])) == 2.0


# -- input validation -------------------------------------------------------------------
def _classifier():
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(6, 8), fastnn.ReLU(), fastnn.Dense(8, 3))
    return fastnn.Trainer(model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))


def _with(X, i, j, value):
    X = X.copy()
    X[i, j] = value
    return X


X0, Y0 = small_classification(40)

BAD_FIT = {
    "nan": (dict(X=_with(X0, 3, 2, np.nan)), ValueError),
    "inf": (dict(X=_with(X0, 39, 5, -np.inf)), ValueError),
    "length-mismatch": (dict(y=Y0[:-1]), ValueError),
    "empty": (dict(X=X0[:0], y=Y0[:0]), ValueError),
    "1-D": (dict(X=X0[:, 0]), ValueError),
    "label-too-big": (dict(y=np.where(np.arange(40) == 7, 3, Y0)), ValueError),
    "negative-label": (dict(y=np.where(np.arange(40) == 7, -1, Y0)), ValueError),
    "fractional-labels": (dict(y=Y0 + 0.5), TypeError),
    "2-D-labels": (dict(y=Y0.reshape(-1, 1)), ValueError),
    "batch-0": (dict(batch_size=0), ValueError),
    "batch-negative": (dict(batch_size=-4), ValueError),
    "batch-float": (dict(batch_size=2.5), TypeError),
    "split-1": (dict(validation_split=1.0), ValueError),
    "split-negative": (dict(validation_split=-0.1), ValueError),
    "split-and-data": (dict(validation_split=0.2, validation_data=(X0, Y0)), ValueError),
    "val-nan": (dict(validation_data=(_with(X0, 0, 0, np.nan), Y0)), ValueError),
    "val-labels": (dict(validation_data=(X0, Y0 + 3)), ValueError),
    "wrong-features": (dict(X=X0[:, :5]), ValueError),
    "string-X": (dict(X=np.full((40, 6), "a")), TypeError),
}


@pytest.mark.parametrize("case", list(BAD_FIT), ids=list(BAD_FIT))
def test_fit_rejects_bad_input(case):
    kwargs, exc = BAD_FIT[case]
    args = dict(X=X0, y=Y0, epochs=1, batch_size=8, verbose=0)
    args.update(kwargs)
    trainer = _classifier()
    before = weights(trainer.model)
    with pytest.raises(exc) as info:
        trainer.fit(**args)
    assert str(info.value)  # a message, not a bare exception
    assert same(weights(trainer.model), before)  # nothing was trained
    assert len(trainer.history) == 0


def test_fit_rejects_nan_in_regression_targets():
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(6, 1))
    trainer = fastnn.Trainer(model, MSELoss(), optim.SGD(model.parameters(), lr=0.1))
    y = np.ones(40)
    y[5] = np.nan
    with pytest.raises(ValueError):
        trainer.fit(X0, y, epochs=1, verbose=0)


def test_error_messages_say_what_is_wrong():
    trainer = _classifier()
    with pytest.raises(ValueError, match="NaN"):
        trainer.fit(_with(X0, 3, 2, np.nan), Y0, verbose=0)
    with pytest.raises(ValueError, match="40.*39"):
        trainer.fit(X0, Y0[:-1], verbose=0)
    with pytest.raises(ValueError, match="label 3"):
        trainer.fit(X0, np.where(np.arange(40) == 7, 3, Y0), verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(X0, Y0, batch_size=0, verbose=0)


def test_trainer_rejects_bad_metrics():
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(6, 1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="accuracy"):
        fastnn.Trainer(model, MSELoss(), opt, metrics=("accuracy",))
    with pytest.raises(ValueError, match="f1_score"):
        fastnn.Trainer(model, CrossEntropyLoss(), opt, metrics=("f1_score",))
    fastnn.Trainer(model, MSELoss(), opt, metrics=("mse", "mae"))  # fine
