"""Callbacks and what fit reports: EarlyStopping, ModelCheckpoint, CSVLogger,
TerminateOnNaN (on by default), LambdaCallback, ProgressBar and verbose output, Ctrl-C
during fit, metrics by name and as callables, and the keys of the History."""

import csv
import io
import math
import os
import signal
import threading
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, metrics, optim
from fastnn.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
)
from fastnn.losses import CrossEntropyLoss, MSELoss


# -- data, models, helpers --------------------------------------------------------------
def classification(n=160, features=6, classes=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, features)).astype(np.float32)
    y = ((X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)) % classes
    return X, y


def regression(n=120, features=4, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, features)).astype(np.float32)
    y = X[:, 0] - 2 * X[:, 1] + 0.1 * r.normal(size=n)
    return X, y


def mlp(n_in=6, n_out=3, hidden=16, bn=True, p=0.2):
    layers = [fastnn.Dense(n_in, hidden)]
    if bn:
        layers.append(fastnn.BatchNorm1d(hidden))
    layers.append(fastnn.ReLU())
    if p:
        layers.append(fastnn.Dropout(p))
    layers.append(fastnn.Dense(hidden, n_out))
    return fastnn.Sequential(*layers)


def trainer_for(model=None, seed=0, lr=1e-2, cbs=(), metrics_=("accuracy",), loss=None, **kw):
    fastnn.seed(seed)
    model = model if model is not None else mlp()
    return fastnn.Trainer(
        model,
        loss or CrossEntropyLoss(),
        optim.Adam(model.parameters(), lr=lr),
        metrics=metrics_,
        callbacks=list(cbs),
        **kw,
    )


def same_state(a, b):
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def finite_params(model):
    return all(np.isfinite(p.data).all() for p in model.parameters())


class Scripted:
    """A metric whose value in epoch e (from 1) is values[e - 1], whatever the batch:
    the epoch figure (the sample-weighted mean over batches) is exactly that value.
    `callback` must be in the trainer's callbacks (it tells the metric the epoch)."""

    def __init__(self, values, name="score"):
        self.values = list(values)
        self.epoch = 0
        self.__name__ = name
        self.callback = LambdaCallback(on_epoch_begin=self._begin)

    def _begin(self, trainer, epoch):
        self.epoch = epoch

    def __call__(self, y_true, y_pred):
        return float(self.values[self.epoch - 1])


def scripted_fit(values, es, metric_name="score", epochs=None, record=None, **fit_kw):
    """fit a small classifier for up to len(values) epochs while `metric_name` follows
    `values`; returns (trainer, history). record: a list that receives the model's
    state_dict at the end of every epoch."""
    X, y = classification()
    score = Scripted(values, metric_name)
    cbs = [score.callback]
    if record is not None:
        cbs.append(
            LambdaCallback(on_epoch_end=lambda t, e, logs: record.append(t.model.state_dict()))
        )
    cbs.append(es)
    trainer = trainer_for(cbs=cbs, metrics_=("accuracy", score))
    hist = trainer.fit(X, y, epochs=epochs or len(values), batch_size=32, verbose=0, **fit_kw)
    return trainer, hist


# -- EarlyStopping ----------------------------------------------------------------------
def test_early_stopping_stops_after_patience_epochs_without_improvement():
    # best at epoch 2; epochs 3 and 4 do not improve: patience=2 stops at epoch 4, the
    # second epoch without improvement (as Keras; before the fix it ran one epoch more)
    values = [5.0, 4.0, 4.5, 4.25, 4.125, 1.0, 0.5, 0.25]
    es = EarlyStopping("score", patience=2, restore_best=False)
    trainer, hist = scripted_fit(values, es)
    assert hist["score"] == values[:4]
    assert len(hist) == 4 and trainer.epoch == 4
    assert es.stopped_epoch == 4 and es.best_epoch == 2 and es.best == 4.0


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_counts_patience_epochs(patience):
    values = [1.0] + [2.0] * 8  # never improves after epoch 1
    es = EarlyStopping("score", patience=patience, restore_best=False)
    _, hist = scripted_fit(values, es)
    assert len(hist) == 1 + patience


def test_early_stopping_runs_to_the_end_while_improving():
    values = [5.0, 4.0, 3.0, 2.0, 1.0]
    es = EarlyStopping("score", patience=1, restore_best=False)
    trainer, hist = scripted_fit(values, es)
    assert len(hist) == 5 and es.stopped_epoch is None and es.best_epoch == 5


def test_early_stopping_min_delta_needs_more_than_min_delta():
    # improvements are measured against the best value; one of exactly min_delta=0.5
    # (binary-exact) does not count
    values = [10.0, 9.5, 9.5, 9.0, 1.0]
    es = EarlyStopping("score", patience=2, min_delta=0.5, restore_best=False)
    _, hist = scripted_fit(values, es)
    assert len(hist) == 3 and es.best_epoch == 1 and es.best == 10.0
    # with min_delta=0 epochs 2, 4 and 5 improve: no stop
    es = EarlyStopping("score", patience=2, restore_best=False)
    _, hist = scripted_fit(values, es)
    assert len(hist) == 5 and es.best_epoch == 5


def test_early_stopping_mode_max_and_auto():
    values = [0.1, 0.2, 0.3, 0.25, 0.2, 0.9]
    es = EarlyStopping("score", patience=2, mode="max", restore_best=False)
    _, hist = scripted_fit(values, es)
    assert len(hist) == 5 and es.best_epoch == 3
    # auto: 'score' is minimised, so the same values stop after epoch 1 + 2
    es = EarlyStopping("score", patience=2, mode="auto", restore_best=False)
    _, hist = scripted_fit(values, es)
    assert len(hist) == 3 and es.best_epoch == 1
    # auto: names with acc / auc / f1 are maximised
    es = EarlyStopping("val_acc", patience=2, mode="auto", restore_best=False)
    _, hist = scripted_fit(values, es, metric_name="acc", validation_split=0.25)
    assert es.mode == "max" and len(hist) == 5 and es.best_epoch == 3
    assert EarlyStopping("val_accuracy").mode == "max"
    assert EarlyStopping("val_loss").mode == "min"
    assert EarlyStopping("val_accuracy", mode="min").mode == "min"


def test_early_stopping_restore_best_puts_back_the_best_epoch_exactly():
    values = [3.0, 1.0, 2.0, 2.5, 2.75, 0.5]
    states = []
    es = EarlyStopping("score", patience=3, restore_best=True)
    trainer, hist = scripted_fit(values, es, record=states)
    assert len(hist) == 5 and es.best_epoch == 2
    final = trainer.model.state_dict()
    assert any("running_mean" in k for k in final)  # buffers are part of it
    assert same_state(final, states[1])
    assert not same_state(final, states[-1])
    # without restore_best the last epoch's weights stay
    states = []
    es = EarlyStopping("score", patience=3, restore_best=False)
    trainer, _ = scripted_fit(values, es, record=states)
    assert same_state(trainer.model.state_dict(), states[-1])


def test_early_stopping_on_val_loss_with_real_training():
    """Overfitting a tiny noisy training set: the validation loss turns up; training
    stops early and the weights are those of the best validation epoch."""
    r = np.random.default_rng(3)
    X = r.normal(size=(80, 6)).astype(np.float32)
    y = r.integers(0, 3, 80)  # pure noise: validation loss rises once it memorises
    fastnn.seed(0)
    model = mlp(6, 3, hidden=64, bn=False, p=0)
    es = EarlyStopping("val_loss", patience=3)
    states = []
    rec = LambdaCallback(on_epoch_end=lambda t, e, logs: states.append(t.model.state_dict()))
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), optim.Adam(model.parameters(), lr=3e-2), callbacks=[rec, es]
    )
    hist = trainer.fit(X, y, epochs=200, batch_size=16, validation_split=0.3, verbose=0)
    assert len(hist) < 200
    best = int(np.argmin(hist["val_loss"]))
    assert es.best_epoch == best + 1 and es.stopped_epoch == len(hist)
    assert len(hist) == es.best_epoch + 3
    assert same_state(model.state_dict(), states[best])


def test_early_stopping_unknown_monitor_fails_at_fit_start_naming_the_keys(tmp_path):
    X, y = classification()
    log = tmp_path / "log.csv"
    csv_logger = CSVLogger(log)
    trainer = trainer_for(cbs=[csv_logger, EarlyStopping("val_loss")])
    before = trainer.model.state_dict()
    with pytest.raises(ValueError) as info:
        trainer.fit(X, y, epochs=2, verbose=0)  # no validation data: no val_loss
    msg = str(info.value)
    assert "val_loss" in msg
    for key in ("'loss'", "'accuracy'", "'lr'", "'epoch_time'"):
        assert key in msg, msg
    assert same_state(trainer.model.state_dict(), before) and len(trainer.history) == 0
    assert csv_logger._file is None  # the logger that had started was closed again
    with pytest.raises(ValueError, match="val_los"):
        trainer_for(cbs=[EarlyStopping("val_los")]).fit(
            X, y, epochs=1, verbose=0, validation_split=0.2
        )


def test_early_stopping_rejects_bad_arguments():
    with pytest.raises(ValueError):
        EarlyStopping(mode="maximum")
    with pytest.raises(ValueError):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError):
        EarlyStopping(min_delta=-0.1)


# -- ModelCheckpoint --------------------------------------------------------------------
def _record_predictions(X, store):
    return LambdaCallback(on_epoch_end=lambda t, e, logs: store.__setitem__(e, t.model.predict(X)))


def test_model_checkpoint_saves_every_epoch_with_formatted_paths(tmp_path):
    X, y = classification()
    preds = {}
    ck = ModelCheckpoint(tmp_path / "model-{epoch:02d}.safetensors")
    trainer = trainer_for(cbs=[_record_predictions(X, preds), ck])
    trainer.fit(X, y, epochs=3, batch_size=32, verbose=0)
    names = sorted(os.listdir(tmp_path))
    assert names == ["model-01.safetensors", "model-02.safetensors", "model-03.safetensors"]
    for e in (1, 2, 3):
        loaded = fastnn.load(tmp_path / f"model-{e:02d}.safetensors")
        np.testing.assert_array_equal(loaded.predict(X), preds[e])
    assert ck.last_saved == str(tmp_path / "model-03.safetensors")
    assert not np.array_equal(preds[1], preds[3])
    assert same_state(fastnn.load(ck.last_saved).state_dict(), trainer.model.state_dict())


def test_model_checkpoint_path_can_hold_logged_figures(tmp_path):
    X, y = classification()
    ck = ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_loss:.3f}.safetensors"))
    trainer = trainer_for(cbs=[ck])
    hist = trainer.fit(X, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    expected = sorted(f"m-{e}-{v:.3f}.safetensors" for e, v in zip((1, 2), hist["val_loss"]))
    assert sorted(os.listdir(tmp_path)) == expected


def test_model_checkpoint_save_best_only(tmp_path):
    X, y = classification()
    values = [3.0, 2.0, 2.5, 1.0, 1.5]
    score = Scripted(values)
    preds = {}
    every = ModelCheckpoint(
        tmp_path / "best-{epoch}.safetensors", monitor="score", save_best_only=True
    )
    fixed = ModelCheckpoint(tmp_path / "best.safetensors", monitor="score", save_best_only=True)
    trainer = trainer_for(
        cbs=[score.callback, _record_predictions(X, preds), every, fixed], metrics_=(score,)
    )
    trainer.fit(X, y, epochs=5, batch_size=32, verbose=0)
    assert sorted(os.listdir(tmp_path)) == [
        "best-1.safetensors",
        "best-2.safetensors",
        "best-4.safetensors",
        "best.safetensors",
    ]
    np.testing.assert_array_equal(fastnn.load(tmp_path / "best.safetensors").predict(X), preds[4])
    assert fixed.best_epoch == 4 and fixed.best == 1.0
    # mode max keeps the highest instead
    out = tmp_path / "max"
    out.mkdir()
    score = Scripted(values)
    ck = ModelCheckpoint(
        out / "e{epoch}.safetensors", monitor="score", mode="max", save_best_only=True
    )
    trainer_for(cbs=[score.callback, ck], metrics_=(score,)).fit(X, y, epochs=5, verbose=0)
    assert os.listdir(out) == ["e1.safetensors"]


def test_model_checkpoint_save_best_only_defaults_to_val_loss(tmp_path):
    X, y = classification()
    ck = ModelCheckpoint(tmp_path / "m.safetensors", save_best_only=True)
    assert ck.monitor == "val_loss"
    with pytest.raises(ValueError, match="val_loss"):
        trainer_for(cbs=[ck]).fit(X, y, epochs=1, verbose=0)
    assert not os.listdir(tmp_path)
    trainer_for(cbs=[ck]).fit(X, y, epochs=2, validation_split=0.25, verbose=0)
    assert os.listdir(tmp_path) == ["m.safetensors"]


# -- CSVLogger --------------------------------------------------------------------------
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_writes_a_header_and_one_row_per_epoch(tmp_path):
    X, y = classification()
    path = tmp_path / "log.csv"
    trainer = trainer_for(cbs=[CSVLogger(path)])
    hist = trainer.fit(X, y, epochs=3, batch_size=32, validation_split=0.25, verbose=0)
    rows = _read_csv(path)
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"]
    assert len(rows) == 4
    for i, row in enumerate(rows[1:]):
        assert int(row[0]) == i + 1
        for key, cell in zip(rows[0][1:], row[1:]):
            assert float(cell) == hist[key][i], key  # full precision


def test_csv_logger_append_keeps_the_columns(tmp_path):
    X, y = classification()
    path = tmp_path / "log.csv"
    trainer = trainer_for(cbs=[CSVLogger(path)])
    trainer.fit(X, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    header = _read_csv(path)[0]
    # continue (epochs 3, 4) without validation data, appending
    trainer.callbacks = [CSVLogger(path, append=True)]
    trainer.fit(X, y, epochs=2, batch_size=32, verbose=0)
    rows = _read_csv(path)
    assert rows[0] == header and header.count("epoch") == 1
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert all(len(r) == len(header) for r in rows)
    val = header.index("val_loss")
    assert rows[3][val] == "" and rows[4][val] == ""  # no validation in the second fit
    assert float(rows[4][header.index("loss")]) == trainer.history["loss"][3]
    # append=False starts afresh
    trainer2 = trainer_for(cbs=[CSVLogger(path)])
    trainer2.fit(X, y, epochs=1, batch_size=32, verbose=0)
    rows = _read_csv(path)
    assert rows[0] == ["epoch", "loss", "accuracy", "lr", "epoch_time"] and len(rows) == 2


# -- TerminateOnNaN ---------------------------------------------------------------------
class NaNAt(CrossEntropyLoss):
    """Cross-entropy that reports NaN for the training batch number `at` (counting
    training calls from 1); the gradient stays the true one."""

    def __init__(self, model, at):
        super().__init__()
        self.model, self.at, self.calls = model, at, 0

    def forward(self, pred, target):
        value = super().forward(pred, target)
        if self.model.training:
            self.calls += 1
            if self.calls == self.at:
                return float("nan")
        return value


def _nan_run(at, terminate=True, epochs=5):
    X, y = classification(100)
    fastnn.seed(0)
    model = mlp(bn=True, p=0.2)
    loss = NaNAt(model, at)
    last_good = {}
    seen = []

    def batch_end(t, b, logs):
        last_good["state"] = t.model.state_dict()
        last_good["where"] = (t.epoch + 1, b)

    rec = LambdaCallback(on_batch_end=batch_end, on_nonfinite_loss=lambda t, v: seen.append(v))
    trainer = fastnn.Trainer(
        model, loss, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), callbacks=[rec]
    )
    trainer.terminate_on_nan = terminate
    return trainer, X, y, last_good, seen, epochs


def test_terminate_on_nan_is_on_by_default_and_rolls_back_to_the_last_good_epoch():
    # 5 batches of 20 per epoch: training batch 13 is the third of epoch 3
    trainer, X, y, last_good, seen, epochs = _nan_run(at=13)
    starts = {}
    trainer.callbacks.append(
        LambdaCallback(on_epoch_begin=lambda t, e: starts.__setitem__(e, t.model.state_dict()))
    )
    with pytest.warns(RuntimeWarning, match="diverged in epoch 3: the loss became nan"):
        hist = trainer.fit(X, y, epochs=epochs, batch_size=20, verbose=0)
    assert len(seen) == 1 and math.isnan(seen[0])
    assert last_good["where"] == (3, 1)  # no batch ran after the bad one
    assert len(hist) == 2 and trainer.epoch == 2 and hist.epoch == [1, 2]
    assert all(len(v) == 2 for v in hist.history.values())
    assert all(math.isfinite(v) for v in hist["loss"])
    final = trainer.model.state_dict()
    # parameters and BatchNorm statistics as at the end of epoch 2
    assert same_state(final, starts[3])
    assert int(final["1.num_batches_tracked"]) == 10
    assert finite_params(trainer.model)
    assert trainer.stop_training and trainer.diverged and not trainer.interrupted


@pytest.mark.parametrize("big", [1e15, 1e25])
def test_terminate_on_nan_with_data_that_makes_training_explode(big):
    """Two clean epochs, then a fit on data with one huge sample in the third batch:
    the loss explodes (1e15) or overflows (1e25). Either way the model and optimizer go
    back to the end of epoch 2, every parameter and output is finite and the History
    keeps the two clean epochs."""
    r = np.random.default_rng(0)
    X = r.normal(size=(64, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 3.0, 0.5], np.float32)
    X_bad = X.copy()
    X_bad[20] = big  # batch 2 (rows 16..23) of 8
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(4, 16), fastnn.ReLU(), fastnn.Dense(16, 1))
    states = {}
    rec = LambdaCallback(
        on_epoch_begin=lambda t, e: states.__setitem__("epoch_start", t.model.state_dict())
    )
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    trainer = fastnn.Trainer(model, MSELoss(), opt, callbacks=[rec])
    trainer.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    clean = list(trainer.history["loss"])
    opt_state = {k: v.copy() for k, v in opt.state.items()}
    with pytest.warns(RuntimeWarning, match="diverged in epoch 3") as record:
        hist = trainer.fit(X_bad, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert "restored to the end of epoch 2" in str(record[0].message)
    assert len(hist) == 2 and hist["loss"] == clean and trainer.epoch == 2
    assert finite_params(model) and np.isfinite(model.predict(X_bad)).all()
    assert same_state(model.state_dict(), states["epoch_start"])
    assert all(np.array_equal(opt.state[k], v) for k, v in opt_state.items())


def test_terminate_on_nan_can_be_switched_off():
    trainer, X, y, last_good, seen, epochs = _nan_run(at=13, terminate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no TerminateOnNaN warning
        hist = trainer.fit(X, y, epochs=epochs, batch_size=20, verbose=0)
    assert len(hist) == epochs and len(seen) == 1
    assert math.isnan(hist["loss"][2])
    assert all(math.isfinite(v) for i, v in enumerate(hist["loss"]) if i != 2)
    assert finite_params(trainer.model)  # the gradient itself was fine


def test_terminate_on_nan_given_explicitly_is_not_doubled():
    trainer, X, y, *_ = _nan_run(at=3)
    own = TerminateOnNaN()
    trainer.callbacks.append(own)
    with pytest.warns(RuntimeWarning) as record:
        trainer.fit(X, y, epochs=3, batch_size=20, verbose=0)
    assert len([w for w in record if "TerminateOnNaN" in str(w.message)]) == 1
    assert own.stopped is not None and own.stopped[0] == 1 and math.isnan(own.stopped[1])
    assert len(trainer.history) == 0


# -- LambdaCallback ---------------------------------------------------------------------
def test_lambda_callback_hooks_get_the_right_arguments_and_counts():
    X, y = classification(100)
    calls = {k: [] for k in LambdaCallback._HOOKS}

    def hook(name):
        return lambda *args: calls[name].append(args)

    cb = LambdaCallback(**{name: hook(name) for name in LambdaCallback._HOOKS})
    trainer = trainer_for(cbs=[cb])
    hist = trainer.fit(X, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
    n_train, batches = 80, 3  # 32 + 32 + 16
    assert [len(calls[k]) for k in LambdaCallback._HOOKS] == [1, 3, 9, 9, 3, 1, 0]
    assert all(args == (trainer,) for args in calls["on_train_begin"] + calls["on_train_end"])
    assert [a[1] for a in calls["on_epoch_begin"]] == [1, 2, 3]
    assert [a[1] for a in calls["on_batch_begin"]] == [0, 1, 2] * 3
    assert [a[1] for a in calls["on_batch_end"]] == [0, 1, 2] * 3
    sizes = [a[2]["size"] for a in calls["on_batch_end"]]
    assert sizes == [32, 32, 16] * 3 and sum(sizes) == 3 * n_train
    assert all(isinstance(a[2]["loss"], float) for a in calls["on_batch_end"])
    for i, (t, epoch, logs) in enumerate(calls["on_epoch_end"]):
        assert t is trainer and epoch == i + 1
        assert list(logs) == list(hist.history)
        assert all(logs[k] == hist[k][i] for k in logs)
    # the epoch loss is the sample-weighted mean of the batch losses
    first = calls["on_batch_end"][:batches]
    expected = sum(a[2]["loss"] * a[2]["size"] for a in first) / n_train
    assert hist["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(ValueError, match="on_epoch_finish"):
        LambdaCallback(on_epoch_finish=lambda *a: None)
    with pytest.raises(TypeError):
        LambdaCallback(on_epoch_end=3)


def test_stop_training_from_a_callback_ends_fit_after_the_batch():
    X, y = classification(100)
    batches = []

    def stop(t, b, logs):
        batches.append((t.epoch + 1, b))
        if t.epoch == 1 and b == 1:
            t.stop_training = True

    trainer = trainer_for(cbs=[LambdaCallback(on_batch_end=stop)])
    hist = trainer.fit(X, y, epochs=5, batch_size=20, verbose=0)
    # the current epoch still finishes its batches (stop_training is read between epochs)
    assert batches[-1] == (2, 4) and len(hist) == 2 and not trainer.interrupted


# -- ProgressBar, verbose ---------------------------------------------------------------
def test_progress_bar_writes_to_the_given_stream(capsys):
    X, y = classification(100)
    stream = io.StringIO()
    trainer = trainer_for(cbs=[ProgressBar(stream=stream)])
    trainer.fit(X, y, epochs=2, batch_size=32, validation_split=0.2, verbose=1)
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and lines[1].startswith("epoch 2/2")
    assert "loss" in lines[0] and "val_accuracy" in lines[0]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # nothing else printed (no second bar)


def test_progress_bar_draws_a_bar_on_a_terminal_stream(capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    X, y = classification(100)
    stream = Terminal()
    trainer = trainer_for(cbs=[ProgressBar(stream=stream)])
    trainer.fit(X, y, epochs=2, batch_size=20, verbose=1)
    text = stream.getvalue()
    assert "/5 [" in text and "batch/s" in text  # tqdm's bar over 5 batches per epoch
    assert text.count("epoch 2/2") >= 2  # the bar's label and the closing line
    assert [l for l in text.splitlines() if l.startswith("epoch 1/2 - ")]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_verbose_levels(capsys, verbose):
    X, y = classification(100)
    trainer = trainer_for()
    hist = trainer.fit(X, y, epochs=3, batch_size=32, validation_split=0.2, verbose=verbose)
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    if verbose == 0:
        assert out.out == "" and out.err == ""
        return
    # not a terminal: no bar, one line per epoch on stdout
    assert len(lines) == 3, lines
    for e, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {e}/3 - ")
        assert f"loss {hist['loss'][e - 1]:.4f}" in line
        assert f"val_accuracy {hist['val_accuracy'][e - 1]:.4f}" in line
        assert "lr 0.01" in line


# -- Ctrl-C -------------------------------------------------------------------------------
@pytest.fixture
def sigint_handler():
    """A recognisable SIGINT handler installed for the test, then the old one back."""
    calls = []

    def handler(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield handler, calls
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_mid_epoch_returns_the_history_so_far(sigint_handler, capsys):
    handler, calls = sigint_handler
    X, y = classification(100)
    seen = []

    def interrupt(t, b, logs):
        seen.append((t.epoch + 1, b))
        if t.epoch == 2 and b == 1:  # second batch of epoch 3
            os.kill(os.getpid(), signal.SIGINT)

    trainer = trainer_for(cbs=[LambdaCallback(on_batch_end=interrupt)])
    hist = trainer.fit(X, y, epochs=10, batch_size=20, verbose=0)
    assert hist is trainer.history
    assert trainer.interrupted and trainer.stop_training
    assert seen[-1] == (3, 1)  # stopped right after the interrupted batch
    assert len(hist) == 2 and trainer.epoch == 2  # the partial epoch is not recorded
    assert calls == []  # fit's own handler took the signal...
    assert signal.getsignal(signal.SIGINT) is handler  # ...and the old one is back
    assert "interrupted" in capsys.readouterr().out
    assert finite_params(trainer.model)
    pred = trainer.model.predict(X)
    assert pred.shape == (100, 3) and np.isfinite(pred).all()
    # usable: evaluate and fit again (the flag is reset)
    assert 0 <= trainer.evaluate(X, y)["accuracy"] <= 1
    trainer.callbacks = []
    trainer.fit(X, y, epochs=2, batch_size=20, verbose=0)
    assert not trainer.interrupted and len(trainer.history) == 4
    os.kill(os.getpid(), signal.SIGINT)
    assert calls == [signal.SIGINT]


def test_second_ctrl_c_aborts_and_restores_the_handler(sigint_handler):
    handler, calls = sigint_handler
    X, y = classification(100)

    def twice(t, b, logs):
        if b == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    trainer = trainer_for(cbs=[LambdaCallback(on_batch_end=twice)])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X, y, epochs=3, batch_size=20, verbose=0)
    assert signal.getsignal(signal.SIGINT) is handler and calls == []


def test_fit_in_a_thread_leaves_sigint_alone(sigint_handler):
    handler, _ = sigint_handler
    X, y = classification(100)
    during = []
    trainer = trainer_for(
        cbs=[LambdaCallback(on_epoch_end=lambda *a: during.append(signal.getsignal(signal.SIGINT)))]
    )
    errors = []

    def run():
        try:
            trainer.fit(X, y, epochs=2, batch_size=32, verbose=0)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert not errors and len(trainer.history) == 2
    assert during == [handler, handler]


# -- metrics ------------------------------------------------------------------------------
def _frozen_trainer(model, loss, metrics_, dtype=np.float64):
    """SGD with lr=0: the model does not change, so each epoch's training figures are
    those of the fixed model over the whole training set."""
    model.astype(dtype)
    return fastnn.Trainer(model, loss, optim.SGD(model.parameters(), lr=0.0), metrics=metrics_)


def test_accuracy_and_top_k_metrics():
    r = np.random.default_rng(1)
    X = r.normal(size=(150, 8))
    y = r.integers(0, 6, 150)
    fastnn.seed(2)
    model = fastnn.Sequential(fastnn.Dense(8, 16), fastnn.Tanh(), fastnn.Dense(16, 6))
    trainer = _frozen_trainer(model, CrossEntropyLoss(), ("accuracy", "top_3_accuracy"))
    hist = trainer.fit(
        X[:100], y[:100], epochs=1, batch_size=16, validation_data=(X[100:], y[100:]), verbose=0
    )
    for prefix, Xs, ys in (("", X[:100], y[:100]), ("val_", X[100:], y[100:])):
        out = model.predict(Xs)
        acc = np.mean(out.argmax(axis=1) == ys)
        top3 = np.mean([ys[i] in np.argsort(-out[i])[:3] for i in range(len(ys))])
        assert hist[prefix + "accuracy"][0] == pytest.approx(acc, abs=1e-12)
        assert hist[prefix + "top_3_accuracy"][0] == pytest.approx(top3, abs=1e-12)
        assert top3 > acc
    y_small = np.array([0, 1, 2])
    scores = np.array([[0.1, 0.5, 0.4, 0.0], [0.9, 0.05, 0.03, 0.02], [0.3, 0.3, 0.2, 0.2]])
    assert metrics.resolve("top_2_accuracy")[1](y_small, scores) == pytest.approx(1 / 3)
    assert metrics.resolve("top_1_accuracy")[1](y_small, scores) == pytest.approx(0.0)
    assert metrics.resolve("top_4_accuracy")[1](y_small, scores) == 1.0


def test_regression_metrics_mse_mae():
    X, y = regression()
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(4, 8), fastnn.ReLU(), fastnn.Dense(8, 1))
    trainer = _frozen_trainer(model, MSELoss(), ("mse", "mae"))
    hist = trainer.fit(X, y, epochs=1, batch_size=25, verbose=0)
    err = model.predict(X)[:, 0] - y
    assert hist["mse"][0] == pytest.approx(np.mean(err**2), rel=1e-10)
    assert hist["mae"][0] == pytest.approx(np.mean(np.abs(err)), rel=1e-10)
    assert hist["loss"][0] == pytest.approx(hist["mse"][0], rel=1e-10)
    assert set(hist.history) == {"loss", "mse", "mae", "lr", "epoch_time"}


def test_classification_metrics_need_a_classification_loss():
    model = fastnn.Sequential(fastnn.Dense(4, 1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    for name in ("accuracy", "top_5_accuracy", "top_3_accuracy"):
        with pytest.raises(ValueError, match=name):
            fastnn.Trainer(model, MSELoss(), opt, metrics=(name,))
    with pytest.raises(ValueError, match="top_x_accuracy"):
        fastnn.Trainer(model, CrossEntropyLoss(), opt, metrics=("top_x_accuracy",))


def test_custom_callable_metric():
    X, y = classification(120)
    calls = []

    def error_rate(y_true, y_pred):
        calls.append(len(y_true))
        return float(np.mean(y_pred.argmax(axis=1) != y_true))

    fastnn.seed(0)
    model = mlp(bn=False, p=0)
    trainer = _frozen_trainer(model, CrossEntropyLoss(), ("accuracy", error_rate))
    hist = trainer.fit(X, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    assert set(hist.history) >= {"error_rate", "val_error_rate"}
    for prefix in ("", "val_"):
        for a, e in zip(hist[prefix + "accuracy"], hist[prefix + "error_rate"]):
            assert a + e == pytest.approx(1.0, abs=1e-12)
    assert calls[:3] == [32, 32, 26]  # training batches, then the validation batch


def test_history_keys_with_validation_and_clipping():
    X, y = classification(120)
    trainer = trainer_for(clip_grad_norm=1.0)
    hist = trainer.fit(X, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    assert list(hist.history) == [
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_time",
        "grad_norm",
    ]
    assert all(len(v) == 2 for v in hist.history.values())
    assert all(v > 0 and math.isfinite(v) for v in hist["grad_norm"])
    assert hist["lr"] == [1e-2, 1e-2]
    assert "grad_norm" not in trainer_for().fit(X, y, epochs=1, verbose=0).history
    assert repr(hist).startswith("History(2 epochs")


def test_grad_norm_is_the_mean_pre_clip_norm_of_the_batches():
    X, y = classification(96)
    X = X.astype(np.float64)
    fastnn.seed(0)
    model = mlp(bn=False, p=0).astype(np.float64)
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.0), clip_grad_norm=1e-3
    )
    hist = trainer.fit(X, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    ce, norms = CrossEntropyLoss(), []
    for start in range(0, 96, 32):
        model.zero_grad()
        ce(model.forward(X[start : start + 32]), y[start : start + 32])
        model.backward(ce.backward())
        norms.append(np.sqrt(sum(float(np.sum(p.grad**2)) for p in model.parameters())))
    assert min(norms) > 1e-3  # clipping was active
    assert hist["grad_norm"][0] == pytest.approx(np.mean(norms), rel=1e-9)


def test_reduce_on_plateau_monitor_must_be_logged():
    X, y = classification()
    fastnn.seed(0)
    model = mlp()
    opt = optim.Adam(model.parameters())
    sched = fastnn.schedules.ReduceOnPlateau(opt, "val_loss")
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), opt, scheduler=sched)
    with pytest.raises(ValueError, match="val_loss"):
        trainer.fit(X, y, epochs=1, verbose=0)
    assert len(trainer.history) == 0


def test_callbacks_module_exports():
    for name in (
        "Callback",
        "EarlyStopping",
        "ModelCheckpoint",
        "CSVLogger",
        "TerminateOnNaN",
        "LambdaCallback",
        "ProgressBar",
    ):
        assert hasattr(callbacks, name)


def test_terminate_on_nan_leaves_a_trainer_that_can_train_on():
    """An update that made the optimizer's state (and the weights) non-finite is undone
    with the epoch: a later fit on clean data trains normally."""
    X, y = classification()
    trainer = trainer_for(mlp(p=0.0), lr=1e-2)
    trainer.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    bad = X.copy()
    bad[16:24] = 3e38  # overflows the first Dense layer: that batch's loss is NaN
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(bad, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert trainer.diverged and any("TerminateOnNaN" in str(w.message) for w in record)
    done = len(trainer.history)
    assert done in (2, 3) and finite_params(trainer.model)
    assert all(np.isfinite(v).all() for v in trainer.optimizer.state.values())
    trainer.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert len(trainer.history) == done + 2 and np.isfinite(trainer.history["loss"]).all()


def test_terminate_on_nan_restores_parameters_and_optimizer_state_of_the_epoch():
    X, y = classification()
    trainer = trainer_for(mlp(p=0.0))
    trainer.fit(X, y, epochs=1, batch_size=16, verbose=0)
    cb = TerminateOnNaN()
    cb.on_epoch_begin(trainer, 2)
    params = [p.data.copy() for p in trainer.model.parameters()]
    state = {k: v.copy() for k, v in trainer.optimizer.state.items()}
    for p in trainer.model.parameters():  # an update gone wrong
        p.data[...] = np.nan
    trainer.optimizer.state["exp_avg"][...] = np.inf
    with pytest.warns(RuntimeWarning, match="optimizer state were restored"):
        cb.on_nonfinite_loss(trainer, float("nan"))
    assert trainer.stop_training
    assert all(np.array_equal(p.data, q) for p, q in zip(trainer.model.parameters(), params))
    assert all(np.array_equal(trainer.optimizer.state[k], v) for k, v in state.items())
