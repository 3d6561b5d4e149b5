"""Callbacks: code the Trainer runs at fixed points of `fit`.

Subclass Callback and override any of on_train_begin(trainer), on_epoch_begin(trainer,
epoch), on_batch_begin(trainer, batch), on_batch_end(trainer, batch, logs),
on_epoch_end(trainer, epoch, logs), on_train_end(trainer) and
on_nonfinite_loss(trainer, value). `epoch` counts from 1; `logs` holds the figures so
far ('loss', metrics, 'val_*', 'lr', ...). Setting `trainer.stop_training = True`
ends fit after the current batch."""

import csv
import math
import os
import sys
import time
import warnings

import numpy as np

from . import state_version
from .validation import flag, real_number


class Callback:
    """Base class; every hook does nothing."""

    def on_train_begin(self, trainer):
        """Called once when fit starts, before the first epoch."""
        pass

    def on_epoch_begin(self, trainer, epoch):
        """Called before each epoch; epoch counts from 1."""
        pass

    def on_batch_begin(self, trainer, batch):
        """Called before each mini-batch; batch counts from 0 within the epoch."""
        pass

    def on_batch_end(self, trainer, batch, logs):
        """Called after each update; logs holds the batch's 'loss' and 'size'."""
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        """Called after each epoch with its figures: 'loss', the metrics, the 'val_'
        figures, 'lr', 'epoch_time'."""
        pass

    def on_train_end(self, trainer):
        """Called once when fit ends, also after an error or an interruption."""
        pass

    def on_nonfinite_loss(self, trainer, value):
        """Called when a batch's loss is NaN or infinite, before anything is updated; set
        trainer.stop_training to stop."""
        pass


def _check_monitor(trainer, monitor, who):
    """ValueError unless `monitor` is a figure this fit will log."""
    keys = trainer.log_keys
    if monitor not in keys:
        hint = " (it needs validation data)" if monitor.startswith("val_") else ""
        raise ValueError(f"{who}: unknown monitor {monitor!r}{hint}; this fit logs {sorted(keys)}")


def _mode_for(monitor, mode, who):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(s in monitor for s in ("acc", "auc", "f1")) else "min"


class _Monitor:
    """Tracks the best value of a logged figure."""

    def __init__(self, monitor, mode, min_delta, who):
        self.monitor = monitor
        if not isinstance(monitor, str):
            raise TypeError(f"{who}: monitor must be the name of a logged figure, got {monitor!r}")
        self.mode = _mode_for(monitor, mode, who)
        min_delta = real_number(min_delta, f"{who}: min_delta")
        if min_delta < 0:
            raise ValueError(f"{who}: min_delta must be >= 0, got {min_delta}")
        self.min_delta = float(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None

    def improved(self, value):
        """True if value is better than the best so far by more than min_delta."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback, _Monitor):
    """Stop when `monitor` (default 'val_loss') has not improved by more than min_delta
    for `patience` epochs (stop when validation loss stops falling): fit
    ends with the patience-th consecutive epoch without improvement (as Keras and
    Lightning; patience=0 behaves as 1). restore_best=True puts back the weights (and
    buffers) of the best epoch when training ends."""

    def __init__(
        self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best=True
    ):
        _Monitor.__init__(self, monitor, mode, min_delta, "EarlyStopping")
        if isinstance(patience, (bool, np.bool_)) or not isinstance(patience, (int, np.integer)):
            raise TypeError(f"EarlyStopping: patience must be an integer, got {patience!r}")
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {int(patience)}")
        self.patience = int(patience)
        self.restore_best = flag(restore_best, "EarlyStopping: restore_best")
        self.wait = 0
        self.stopped_epoch = None
        self._best_state = None

    def on_train_begin(self, trainer):
        """Checks that the monitored figure will be logged."""
        _check_monitor(trainer, self.monitor, "EarlyStopping")

    def on_epoch_end(self, trainer, epoch, logs):
        """Counts epochs without improvement of the monitored figure; stops fit after
        patience of them."""
        value = logs[self.monitor]
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_state = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer):
        """Restores the weights of the best epoch (with restore_best=True)."""
        if self.restore_best and self._best_state is not None:
            trainer.model.load_state_dict(self._best_state)
            if trainer.verbose:
                print(
                    f"EarlyStopping: restored the weights of epoch {self.best_epoch} "
                    f"({self.monitor} {self.best:.4f})",
                    flush=True,
                )


class ModelCheckpoint(Callback, _Monitor):
    """Save the model (fastnn.save, atomic) after each epoch to `path`, which may hold
    format fields such as '{epoch:03d}' or '{val_loss:.4f}'. With `monitor` and
    save_best_only=True, save only when the monitored figure improves."""

    def __init__(self, path, monitor=None, save_best_only=False, mode="auto"):
        if save_best_only and monitor is None:
            monitor = "val_loss"
        _Monitor.__init__(self, monitor or "loss", mode, 0.0, "ModelCheckpoint")
        self.path = os.fspath(path)
        self.save_best_only = flag(save_best_only, "ModelCheckpoint: save_best_only")
        self._watch = monitor is not None
        self.last_saved = None

    def on_train_begin(self, trainer):
        """Checks that the monitored figure will be logged."""
        if self._watch:
            _check_monitor(trainer, self.monitor, "ModelCheckpoint")

    def on_epoch_end(self, trainer, epoch, logs):
        """Saves the model (every epoch, or only when the monitored figure improves)."""
        from .io import save

        if self.save_best_only:
            value = logs[self.monitor]
            if not self.improved(value):
                return
            self.best, self.best_epoch = value, epoch
        path = self.path.format(epoch=epoch, **logs)
        save(trainer.model, path)
        self.last_saved = path


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then every logged figure) to a CSV file,
    flushed after each epoch. append=False starts the file afresh."""

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = flag(append, "CSVLogger: append")
        self._file = self._writer = None

    def on_train_begin(self, trainer):
        """Opens the file (appending, or writing the header)."""
        header = None
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path, newline="") as f:  # continue under the existing columns
                header = next(csv.reader(f), None)
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file)
        self._header = header

    def on_epoch_end(self, trainer, epoch, logs):
        """Writes one row of the epoch's figures."""
        if self._header is None:
            self._header = ["epoch"] + list(logs)
            self._writer.writerow(self._header)
        self._writer.writerow([epoch] + [logs.get(k, "") for k in self._header[1:]])
        self._file.flush()

    def on_train_end(self, trainer):
        """Closes the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop when training diverges, whatever the optimizer: at a NaN or infinite loss
    (before that batch updates anything), or at a batch or epoch loss more than
    `factor` times (default 10^4) the reference - the larger of the best epoch's loss
    and the first batch's loss of this fit. (fit stops after the batch: an epoch whose
    mean loss explodes has such a batch.)

    Divergence is rolled back: the parameters, normalisation buffers and optimizer
    state go back to where they were at the end of the last good epoch (the start of
    the diverged one), which is not recorded in the History; a RuntimeWarning says what
    happened and what to try. `stopped` is then (epoch, loss) and `message` the
    explanation. The Trainer includes one by default."""

    def __init__(self, factor=1e4):
        factor = real_number(factor, "TerminateOnNaN: factor")
        if not factor > 1:
            raise ValueError(f"TerminateOnNaN: factor must be > 1, got {factor}")
        self.factor = factor
        self._buffers = self._live = None
        self._params = self._opt_state = None
        self.stopped = self.message = None
        self._first = self._best = None

    def on_train_begin(self, trainer):
        self.stopped = self.message = None
        self._first = None  # the first batch's loss of this fit
        losses = trainer.history.history.get("loss", []) if hasattr(trainer, "history") else []
        self._best = min(losses) if losses else None

    def on_epoch_begin(self, trainer, epoch):
        """Keeps a copy of the parameters and optimizer state to restore if the epoch goes
        non-finite."""
        self._params = [p.data.copy() for p in trainer.model.parameters()]
        self._opt_state = trainer.optimizer.state_dict()
        self._live = [b for _, b in trainer.model.named_buffers()]
        self._buffers = [b.copy() for b in self._live]

    def on_batch_end(self, trainer, batch, logs):
        if self._first is None:
            if logs["loss"] > 0:  # (a batch of zero weight says nothing about the scale)
                self._first = logs["loss"]
        elif self._exploded(logs["loss"]):
            self._diverged(trainer, logs["loss"], "exploded")

    def on_epoch_end(self, trainer, epoch, logs):
        # (an epoch's mean above the threshold has a batch above it: caught already)
        if self._best is None or logs["loss"] < self._best:
            self._best = logs["loss"]

    @property
    def _reference(self):
        known = [v for v in (self._first, self._best) if v is not None]
        return max(known) if known else None

    def _exploded(self, value):
        ref = self._reference
        return ref is not None and ref > 0 and value > self.factor * ref

    def on_nonfinite_loss(self, trainer, value):
        self._diverged(trainer, value, "non-finite")

    def _diverged(self, trainer, value, how):
        model, opt = trainer.model, trainer.optimizer
        epoch = trainer.epoch + 1
        if self._params is not None:
            for p, saved in zip(model.parameters(), self._params):
                p.data = saved
            opt.load_state_dict(self._opt_state)
        for saved, b in zip(self._buffers or (), self._live or ()):
            np.copyto(b, saved)
        state_version.bump()  # running statistics restored in place
        where = f"the end of epoch {epoch - 1}" if epoch > 1 else "their initial values"
        what = (
            f"the loss became {value}"
            if how == "non-finite"
            else f"the loss exploded to {value:.4g} (over {self.factor:g} times "
            f"{self._reference:.4g})"
        )
        lr = getattr(opt, "lr", None)
        self.stopped = (epoch, value)
        self.message = (
            f"training diverged in epoch {epoch}: {what}. The model and optimizer state "
            f"were restored to {where}. Try a lower learning rate"
            + (f" (it is {lr:g})" if isinstance(lr, float) else "")
            + ", gradient clipping (clip_grad_norm=1.0), or check the data for huge or "
            "non-finite values."
        )
        trainer.stop_training = trainer.diverged = True
        warnings.warn(f"TerminateOnNaN: {self.message}", RuntimeWarning, stacklevel=2)


class LambdaCallback(Callback):
    """A callback from plain functions, e.g.
    LambdaCallback(on_epoch_end=lambda trainer, epoch, logs: print(epoch, logs))."""

    _HOOKS = (
        "on_train_begin",
        "on_epoch_begin",
        "on_batch_begin",
        "on_batch_end",
        "on_epoch_end",
        "on_train_end",
        "on_nonfinite_loss",
    )

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise ValueError(
                    f"LambdaCallback: unknown hook {name!r}; expected one of {list(self._HOOKS)}"
                )
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable")
            setattr(self, name, fn)


def format_logs(logs):
    """'loss 0.1234 - accuracy 0.9800 - val_loss ... - lr 0.001' for an epoch's logs."""
    parts = []
    for key, value in logs.items():
        if key == "epoch_time":
            continue
        if key == "lr":
            parts.append(f"lr {value:.3g}")
        else:
            parts.append(f"{key} {value:.4f}")
    return " - ".join(parts)


def epoch_line(trainer, epoch, logs):
    """The closing line of an epoch: number, time, train and validation figures."""
    return (
        f"epoch {epoch}/{trainer.target_epochs} - {logs['epoch_time']:.2f}s - {format_logs(logs)}"
    )


class EpochLogger(Callback):
    """Print one line per epoch (what fit(verbose=2) shows)."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_epoch_end(self, trainer, epoch, logs):
        """Prints one line with the epoch's figures."""
        print(epoch_line(trainer, epoch, logs), file=self.stream or sys.stdout, flush=True)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and the batch rate, closed by one line
    with the epoch's train and validation figures. stream: where to print (stderr)."""

    def __init__(self, stream=None):
        self.stream = stream
        self._bar = None

    def on_epoch_begin(self, trainer, epoch):
        """Starts a progress bar over the epoch's batches."""
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=trainer.batches_per_epoch,
            desc=f"epoch {epoch}/{trainer.target_epochs}",
            unit="batch",
            leave=False,
            file=self.stream or sys.stderr,
            dynamic_ncols=True,
            disable=None,
        )  # no bar when not a terminal
        self._sum = self._count = 0
        self._next_refresh = 0.0

    def on_batch_end(self, trainer, batch, logs):
        """Advances the bar and shows the running loss."""
        self._sum += logs["loss"] * logs["size"]
        self._count += logs["size"]
        self._bar.update(1)
        now = time.monotonic()
        if now >= self._next_refresh:  # formatting costs more than a small batch
            self._bar.set_postfix_str(f"loss {self._sum / self._count:.4f}", refresh=False)
            self._next_refresh = now + 0.2

    def on_epoch_end(self, trainer, epoch, logs):
        """Closes the bar and prints the epoch's figures."""
        self._bar.close()
        print(epoch_line(trainer, epoch, logs), file=self.stream or sys.stdout, flush=True)

    def on_train_end(self, trainer):
        """Closes a bar left open by an interrupted epoch."""
        if self._bar is not None:
            self._bar.close()
