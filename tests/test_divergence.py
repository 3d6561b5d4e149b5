"""Divergence for every optimizer (rolled back to the last good epoch, reported, every
output finite; the CLI writes what it has and exits 1) and Keras' meaning of
fit(epochs=N, initial_epoch=...)."""

import json
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.cli import main as cli_main
from fastnn.losses import CrossEntropyLoss

OPTIMIZERS = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam"]


def _digits():
    X, y = fastnn.datasets.load_digits()
    return X / 16, y


def _trainer(name, lr):
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(64, 32), fastnn.ReLU(), fastnn.Dense(32, 10))
    return fastnn.Trainer(
        model, CrossEntropyLoss(), getattr(optim, name)(model.parameters(), lr=lr)
    )


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_stops_at_divergence_and_rolls_back_to_the_last_good_epoch(name):
    X, y = _digits()
    t = _trainer(name, lr=1e-3)
    t.fit(X, y, epochs=1, verbose=0)
    good = t.model.state_dict()
    good_opt = {k: v.copy() for k, v in t.optimizer.state.items()}
    t.optimizer.lr = 1e7
    with pytest.warns(
        RuntimeWarning,
        match=r"diverged in epoch 2.*restored to the end of "
        r"epoch 1.*lower learning rate",
    ):
        t.fit(X, y, epochs=3, verbose=0)
    assert t.diverged and t.epoch == 1 and len(t.history) == 1
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, good[k])
    for k, v in t.optimizer.state.items():
        np.testing.assert_array_equal(v, good_opt[k])
    assert np.isfinite(t.model.predict(X)).all()


def test_a_loss_that_keeps_falling_is_not_divergence():
    X, y = _digits()
    t = _trainer("Adam", lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        t.fit(X, y, epochs=15, verbose=0)
    assert not t.diverged and t.history["loss"][-1] < 0.05


def test_fit_runs_epochs_more_each_call_unless_initial_epoch_is_given():
    X, y = _digits()
    t = _trainer("SGD", lr=0.1)
    t.fit(X, y, epochs=2, verbose=0)
    t.fit(X, y, epochs=1, verbose=0)  # used to do nothing
    assert t.epoch == 3 and t.history.epoch == [1, 2, 3]
    t.fit(X, y, epochs=5, initial_epoch=3, verbose=0)  # Keras: up to epoch 5
    assert t.epoch == 5 and t.history.epoch == [1, 2, 3, 4, 5]
    with pytest.warns(UserWarning, match="nothing to run"):
        t.fit(X, y, epochs=4, initial_epoch=5, verbose=0)
    with pytest.raises(ValueError, match="initial_epoch"):
        t.fit(X, y, epochs=1, initial_epoch=-1, verbose=0)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer, got 2.5"):
        t.fit(X, y, epochs=2.5, verbose=0)


def test_cli_divergence_writes_what_it_has_and_exits_1(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(
        [
            "train",
            "--optimizer",
            "sgd",
            "--lr",
            "1e6",
            "--epochs",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "diverged" in err and "Traceback" not in err
    model = fastnn.load(out / "model.safetensors")
    X, _ = _digits()
    assert np.isfinite(model.predict(X * 16)).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(np.isfinite(v) for v in metrics["test"].values())


def test_cli_npz_with_nan_targets_is_refused(tmp_path, capsys):
    path = tmp_path / "d.npz"
    y = np.arange(40, dtype=np.float64)
    y[7] = np.nan
    np.savez(path, X=np.random.default_rng(0).normal(size=(40, 3)), y=y)
    code = cli_main(["train", "--data", str(path), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "NaN or infinite target in row 7" in err


# -- odd batches ---------------------------------------------------------------------------
def test_a_trailing_batch_of_one_joins_the_previous_batch_with_batch_norm():
    X, y = _digits()
    X, y = X[:239], y[:239]  # 239 = 2 * 119 + 1
    fastnn.seed(0)
    model = fastnn.Sequential(
        fastnn.Dense(64, 16), fastnn.BatchNorm1d(16), fastnn.ReLU(), fastnn.Dense(16, 10)
    )
    sizes = []
    t = fastnn.Trainer(
        model,
        CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.1),
        callbacks=[
            fastnn.callbacks.LambdaCallback(
                on_batch_end=lambda tr, b, logs: sizes.append(logs["size"])
            )
        ],
    )
    t.fit(X, y, epochs=2, batch_size=119, verbose=0)
    assert sizes == [119, 120] * 2 and t.epoch == 2
    sizes.clear()
    t.fit(X, y, epochs=1, batch_size=119, drop_last=True, verbose=0)
    assert sizes == [119, 119]
    # without batch statistics a batch of one is trained on as it is
    fastnn.seed(0)
    plain = fastnn.Sequential(fastnn.Dense(64, 10))
    sizes.clear()
    t2 = fastnn.Trainer(
        plain,
        CrossEntropyLoss(),
        optim.SGD(plain.parameters(), lr=0.1),
        callbacks=[
            fastnn.callbacks.LambdaCallback(
                on_batch_end=lambda tr, b, logs: sizes.append(logs["size"])
            )
        ],
    )
    t2.fit(X, y, epochs=1, batch_size=119, verbose=0)
    assert sizes == [119, 119, 1]


def test_cli_batch_norm_with_an_odd_batch_size_trains(tmp_path, capsys):
    code = cli_main(["train", "--batch-norm", "--batch-size", "119", "--epochs", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    code = cli_main(
        ["train", "--batch-norm", "--batch-size", "119", "--epochs", "1", "--drop-last", "--quiet"]
    )
    assert code == 0
