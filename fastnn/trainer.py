"""The training loop: mini-batch gradient descent with one shuffle per epoch, per-epoch
train and validation figures in a History, callbacks, schedules, gradient clipping,
exact checkpoints (the procedure of seed notes 000 and 001)."""
import json
import math
import signal
import threading
import time
import warnings

import numpy as np

from . import distributed, metrics as _metrics, rng
from .batching import Batches
from .callbacks import EpochLogger, ProgressBar, TerminateOnNaN
from .losses import CrossEntropyLoss, check_labels
from .optim import clip_grad_norm_
from .schedules import BatchSizeSchedule
from .validation import as_array, check_finite, positive_int


class History:
    """Per-epoch training record: `history` maps 'loss', each metric, 'val_loss',
    'val_<metric>', 'lr', 'epoch_time' (and 'grad_norm' when clipping) to lists with
    one value per epoch; `epoch` lists the epoch numbers (from 1)."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.epoch)

    def state_dict(self):
        return {"history": self.history, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.epoch = list(state["epoch"])

    def __repr__(self):
        if not self.epoch:
            return "History(no epochs)"
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items())
        return f"History({len(self.epoch)} epochs; last: {last})"


_DEFAULT_METRICS = ("accuracy",)


class Trainer:
    """Trains `model` by minimising `loss` with `optimizer`.

    metrics: names ('accuracy', 'top_<k>_accuracy', 'mse', 'mae') or callables
    metric(y_true, y_pred). The default ('accuracy',) applies to classification
    losses; with a regression loss the default is no metric.
    scheduler: a fastnn.schedules object (or anything with step() / step(value)),
    stepped after every epoch, or after every batch when its interval is 'step';
    ReduceOnPlateau gets its monitored figure.
    callbacks: fastnn.callbacks objects; TerminateOnNaN is added unless one is given
    (pass `callbacks=[...]` with your own instance, or set `trainer.terminate_on_nan =
    False` to train through non-finite losses).
    clip_grad_norm: clip the gradients' global L2 norm to this before every update;
    the per-epoch mean of the pre-clip norms is logged as 'grad_norm'.
    batch_size_schedule: a fastnn.schedules.BatchSizeSchedule: the batch size (from
    fit's batch_size) and optionally the learning rates grow at its milestones; the
    History records 'batch_size'.
    Under MPI (`mpiexec`, see fastnn.distributed) fit trains data-parallel: batch_size
    is the global batch, each rank takes a shard of it and the gradient is all-reduced.
    """

    def __init__(self, model, loss, optimizer, scheduler=None, metrics=_DEFAULT_METRICS,
                 callbacks=(), clip_grad_norm=None, batch_size_schedule=None):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.scheduler = scheduler
        classification = isinstance(loss, CrossEntropyLoss)
        if metrics is _DEFAULT_METRICS and not classification:
            metrics = ()
        resolved = [_metrics.resolve(m) for m in metrics]
        for name, _ in resolved:
            if _metrics.needs_labels(name) and not classification:
                raise ValueError(f"metric {name!r} needs a classification loss, got "
                                 f"{type(loss).__name__}")
        self.metrics = resolved
        self.callbacks = list(callbacks)
        self.terminate_on_nan = True
        if clip_grad_norm is not None:
            clip_grad_norm = float(clip_grad_norm)
            if not (math.isfinite(clip_grad_norm) and clip_grad_norm > 0):
                raise ValueError(f"clip_grad_norm must be a positive number or None, got "
                                 f"{clip_grad_norm}")
        self.clip_grad_norm = clip_grad_norm
        if batch_size_schedule is not None and not isinstance(batch_size_schedule,
                                                              BatchSizeSchedule):
            raise TypeError(f"batch_size_schedule must be a fastnn.schedules."
                            f"BatchSizeSchedule, got {type(batch_size_schedule).__name__}")
        self.batch_size_schedule = batch_size_schedule
        self._dp = None  # fastnn.distributed.DataParallel while a data-parallel fit runs
        self.history = History()
        self.epoch = 0  # epochs completed
        self.stop_training = False
        self.interrupted = False
        self.verbose = 0
        self._penalty_list = None

    @property
    def _classification(self):
        return isinstance(self.loss, CrossEntropyLoss)

    # -- one step -----------------------------------------------------------------------
    def train_step(self, xb, yb):
        """Forward, loss (+ weight penalties), backward and one optimizer update on a
        batch; returns the loss. A model in eval mode is put in training mode first
        (submodules you set to eval yourself, with the model in training mode, stay so)."""
        if not self.model.training:
            self.model.train()
        return self._step(xb, yb, ())[0]

    def _step(self, xb, yb, callbacks):
        """One update; (loss, model output, pre-clip gradient norm or None). With a
        non-finite loss the callbacks decide, before anything is updated."""
        model, opt = self.model, self.optimizer
        opt.zero_grad()
        out = model._forward(xb)
        value = self.loss(out, yb)
        if self._dp is not None:  # the global batch's loss; any rank's Ctrl-C stops all
            value, stop = self._dp.step_loss(value, self.interrupted)
            if stop:
                self.interrupted = self.stop_training = True
        if not math.isfinite(value):
            for cb in callbacks:
                cb.on_nonfinite_loss(self, value)
            if self.stop_training:
                return value, out, None
        model._backward(self.loss._backward(), False)
        for m in self._penalties():
            value += m._weight_penalty(m.regularizer, True)
        if self._dp is not None:
            self._dp.allreduce_gradients(self._dp.store)
        norm = None
        if self.clip_grad_norm is not None:
            norm = clip_grad_norm_(model.parameters(), self.clip_grad_norm)
        opt.step()
        if getattr(self.scheduler, "interval", "epoch") == "step":
            self.scheduler.step()
        return value, out, norm

    def _penalties(self):
        """The model's layers that have a regularizer, found once (fit looks again at
        its start); as Module.add_penalties, without walking the model every step."""
        if self._penalty_list is None:
            self._penalty_list = [m for m in self.model.modules()
                                  if getattr(m, "regularizer", None) is not None]
        return self._penalty_list

    # -- data -------------------------------------------------------------------------
    def _prepare(self, X, y, where):
        """Validated (X, y): X numeric with >= 2 dims, finite; y of matching length,
        integer labels in range for classification, float targets otherwise."""
        X = as_array(X, f"{where} X")
        if X.ndim < 2:
            raise ValueError(f"{where}: X must be 2-D (samples, features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{where}: X is empty")
        y = as_array(y, f"{where} y")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"{where}: X has {X.shape[0]} samples but y has {y.shape[0]}")
        distributed.sharded_check(check_finite, X, f"{where} X")
        dtype = self.model.dtype or np.float32
        n_out = self.model.predict(X[:2]).shape[1]
        if self._classification:
            y = check_labels(y, X.shape[0], n_out, where)
        else:
            if y.ndim == 1 and n_out == 1:
                y = y.reshape(-1, 1)
            check_finite(y, f"{where} y")
            y = np.ascontiguousarray(y, dtype=dtype)
        return X, y

    def _split(self, X, y, validation_data, validation_split):
        """(X, y, validation pair or None)."""
        if validation_data is not None and validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"fit: validation_split={validation_split} leaves no "
                                 f"training or validation samples out of {X.shape[0]}")
            return X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (X_val, y_val)")
            return X, y, self._prepare(*validation_data, "fit validation_data")
        return X, y, None

    # -- fit ----------------------------------------------------------------------------
    def fit(self, X, y, epochs=10, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, drop_last=False):
        """Train until `epochs` epochs are complete and return the History.

        `epochs` counts every epoch this trainer has run (as Keras' epochs with
        initial_epoch = the epochs already done): a new trainer runs `epochs` epochs, a
        trainer restored by load_checkpoint continues from its saved epoch to `epochs`,
        and a second fit with the same `epochs` has nothing left to do.

        Each epoch permutes the sample indices once (shuffle=True) and visits them in
        mini-batches of batch_size, gathered into a reused buffer (X is never copied
        whole, so it may be a memory-mapped file); the last partial batch is kept unless
        drop_last. validation_split takes that fraction of the samples, from the end,
        before any shuffling (as Keras does); validation_data=(X_val, y_val) gives them
        directly. verbose: 0 silent, 1 progress bar and a line per epoch, 2 a line per
        epoch. Ctrl-C stops after the current batch and returns the History so far
        (trainer.interrupted is then True); the model stays usable.
        """
        batch_size = positive_int(batch_size, "batch_size")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
        X, y = self._prepare(X, y, "fit")
        X, y, val = self._split(X, y, validation_data, validation_split)
        dtype = self.model.dtype or np.float32
        world = distributed.world()
        if world is not None:
            world.check_batches(X.shape[0], batch_size, drop_last)
        batches = Batches(X, y, batch_size, dtype, y.dtype, drop_last=drop_last, world=world)
        if len(batches) == 0:
            raise ValueError(f"fit: {X.shape[0]} samples make no batch of {batch_size} "
                             "with drop_last=True")
        if epochs <= self.epoch:
            warnings.warn(f"fit: this trainer has already run {self.epoch} epochs; pass "
                          f"epochs > {self.epoch} to train more", stacklevel=2)
            return self.history
        self.verbose = int(verbose)
        self.target_epochs = int(epochs)
        self.batches_per_epoch = len(batches)
        self.log_keys = self._log_keys(val is not None)
        self._penalty_list = None  # layers may have changed since the last fit
        monitor = getattr(self.scheduler, "monitor", None)
        if monitor is not None and monitor not in self.log_keys:
            raise ValueError(f"scheduler: unknown monitor {monitor!r}; this fit logs "
                             f"{sorted(self.log_keys)}")
        self._dp = None if world is None else distributed.DataParallel(world)
        callbacks = self._callbacks()
        self.stop_training = self.interrupted = False
        started = []
        try:
            if self._dp is not None:
                self._dp.start(self.model)
            # Inside the try: when a callback refuses to start (an unknown monitor), the
            # ones already started still get on_train_end (a CSVLogger closes its file).
            for cb in callbacks:
                cb.on_train_begin(self)
                started.append(cb)
            with _StopOnInterrupt(self):
                while self.epoch < epochs and not self.stop_training:
                    batches = self._scheduled_batches(batches, batch_size)
                    self._run_epoch(batches, X.shape[0], shuffle, val, callbacks)
        finally:
            for cb in started:
                cb.on_train_end(self)
            if self._dp is not None:
                self._dp.stop()
                self._dp = None
        return self.history

    def _scheduled_batches(self, batches, base):
        """The batches of the next epoch under the batch-size schedule (a new Batches
        when the size changes), scaling the learning rates as the schedule says."""
        s = self.batch_size_schedule
        if s is None:
            return batches
        size = s.batch_size(self.epoch, base)
        if self.epoch > 0:
            ratio = s.lr_factor(self.epoch, base) / s.lr_factor(self.epoch - 1, base)
            if ratio != 1.0:
                for g in self.optimizer.param_groups:
                    g["lr"] *= ratio
                if hasattr(self.scheduler, "base_lrs"):
                    self.scheduler.base_lrs = [lr * ratio for lr in self.scheduler.base_lrs]
        if size == batches.batch_size:
            return batches
        if batches.world is not None:
            batches.world.check_batches(batches.X.shape[0], size, batches.drop_last)
        batches = Batches(batches.X, batches.y, size, batches._xbuf.dtype, batches.y.dtype,
                          drop_last=batches.drop_last, world=batches.world)
        self.batches_per_epoch = len(batches)
        return batches

    def _log_keys(self, validation):
        keys = ["loss"] + [name for name, _ in self.metrics]
        if validation:
            keys += ["val_" + k for k in keys]
        keys += ["lr", "epoch_time"]
        if self.batch_size_schedule is not None:
            keys.append("batch_size")
        if self.clip_grad_norm is not None:
            keys.append("grad_norm")
        return keys

    def _callbacks(self):
        callbacks = list(self.callbacks)
        if self.terminate_on_nan and not any(isinstance(c, TerminateOnNaN) for c in callbacks):
            callbacks.insert(0, TerminateOnNaN())
        if self.verbose == 1 and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(ProgressBar())
        elif self.verbose == 2:
            callbacks.append(EpochLogger())
        return callbacks if self._dp is None else self._dp.callbacks(callbacks)

    def _run_epoch(self, batches, n, shuffle, val, callbacks):
        epoch = self.epoch + 1
        start = time.perf_counter()
        self.model.train()
        for cb in callbacks:
            cb.on_epoch_begin(self, epoch)
        order = rng.generator().permutation(n) if shuffle else np.arange(n)
        total = count = local_count = 0
        sums = [0.0] * len(self.metrics)
        norms = []
        for i, (xb, yb) in enumerate(batches.epoch(order)):
            for cb in callbacks:
                cb.on_batch_begin(self, i)
            value, out, norm = self._step(xb, yb, callbacks)
            if self.stop_training and not math.isfinite(value):
                return  # the bad batch counts for nothing; the epoch is not recorded
            m = local = xb.shape[0]
            if self._dp is not None:  # value is the global batch's loss
                m = self._dp.world.batch_rows
            total += value * m
            count += m
            local_count += local
            for j, (_, fn) in enumerate(self.metrics):
                sums[j] += fn(yb, out) * local
            if norm is not None:
                norms.append(norm)
            batch_logs = {"loss": value, "size": m}
            for cb in callbacks:
                cb.on_batch_end(self, i, batch_logs)
            if self.interrupted:
                return
        if self._dp is not None:  # metrics over every rank's rows; rank 0's BN statistics
            local_count, *sums = self._dp.sum([local_count, *sums])
            self._dp.sync_state(self.model)
        logs = {"loss": total / count}
        logs.update({name: s / local_count for (name, _), s in zip(self.metrics, sums)})
        if val is not None:
            logs.update({f"val_{k}": v for k, v in self._evaluate(*val, 256).items()})
        logs["lr"] = self.optimizer.lr
        logs["epoch_time"] = time.perf_counter() - start
        if self.batch_size_schedule is not None:
            logs["batch_size"] = batches.batch_size
        if norms:
            logs["grad_norm"] = float(np.mean(norms))
        self.epoch = epoch
        self.history.append(epoch, logs)
        self._step_scheduler(logs)
        for cb in callbacks:
            cb.on_epoch_end(self, epoch, logs)

    def _step_scheduler(self, logs):
        s = self.scheduler
        if s is None or getattr(s, "interval", "epoch") != "epoch":
            return
        monitor = getattr(s, "monitor", None)
        if monitor is not None:
            s.step(logs[monitor])
        else:
            s.step()

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self, X, y, batch_size=256):
        """Loss (with weight penalties) and metrics of the model in eval mode over
        (X, y): a dict."""
        X, y = self._prepare(X, y, "evaluate")
        return self._evaluate(X, y, positive_int(batch_size, "batch_size"))

    def _evaluate(self, X, y, batch_size):
        """Under MPI each rank evaluates a contiguous shard; the sums are all-reduced."""
        world = distributed.world()
        n = X.shape[0]
        if world is not None:
            part = world.shard(n)
            X, y = X[part], y[part]
        model = self.model
        was_training = model.training
        model.eval()
        try:
            total = 0.0
            sums = [0.0] * len(self.metrics)
            for start in range(0, X.shape[0], batch_size):
                xb, yb = X[start : start + batch_size], y[start : start + batch_size]
                out = model._forward(xb)
                m = xb.shape[0]
                total += self.loss(out, yb) * m
                for i, (_, fn) in enumerate(self.metrics):
                    sums[i] += fn(yb, out) * m
        finally:
            model.train(was_training)
        if world is not None:
            total, *sums = world.sum([total, *sums])
        result = {"loss": total / n + model.penalty()}
        result.update({name: s / n for (name, _), s in zip(self.metrics, sums)})
        return result

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, path):
        """Write everything a resumed fit needs, atomically, to one safetensors file:
        the model's tensors, the optimizer's state, the scheduler, the epoch count, the
        History and fastnn's random state (shuffling and dropout streams). A fit after
        load_checkpoint ends with the same weights, bit for bit, as an uninterrupted
        run with the same thread count. Under MPI only rank 0 writes."""
        from .io import atomic_write, encode, layer_spec

        if not distributed.is_main_process():
            return
        opt = self.optimizer.state_dict()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"optimizer.{k}": v for k, v in opt["state"].items()})
        try:
            architecture = layer_spec(self.model)
        except NotImplementedError:
            architecture = None
        meta = {
            "format": "fastnn-checkpoint",
            "format_version": "1",
            "architecture": architecture,
            "epoch": self.epoch,
            "optimizer": {"type": type(self.optimizer).__name__,
                          "param_groups": opt["param_groups"]},
            "scheduler": None if self.scheduler is None else {
                "type": type(self.scheduler).__name__,
                "state": self.scheduler.state_dict()},
            "history": self.history.state_dict(),
            "rng": rng.get_state(),
        }
        atomic_write(path, encode(tensors, meta))

    def load_checkpoint(self, path):
        """Restore the state written by save_checkpoint into this trainer (whose model,
        optimizer and scheduler must be built as they were)."""
        from .io import decode

        tensors, meta = decode(path)
        if meta.get("format") != "fastnn-checkpoint":
            raise ValueError(f"{path}: not a fastnn checkpoint (use fastnn.load for model "
                             "files)")
        opt_meta = json.loads(meta["optimizer"])
        if opt_meta["type"] != type(self.optimizer).__name__:
            raise ValueError(f"{path}: checkpoint of a {opt_meta['type']} optimizer, this "
                             f"trainer has {type(self.optimizer).__name__}")
        sched = json.loads(meta["scheduler"])
        if (sched is None) != (self.scheduler is None) or (
                sched is not None and sched["type"] != type(self.scheduler).__name__):
            raise ValueError(f"{path}: the checkpoint's scheduler ({sched and sched['type']}) "
                             "does not match this trainer's")
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        opt_state = {k[10:]: v for k, v in tensors.items() if k.startswith("optimizer.")}
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict({"state": opt_state,
                                            "param_groups": opt_meta["param_groups"]})
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: the checkpoint does not fit this trainer: {e}") from None
        if sched is not None:
            self.scheduler.load_state_dict(sched["state"])
        self.history.load_state_dict(json.loads(meta["history"]))
        self.epoch = int(json.loads(meta["epoch"]))
        rng.set_state(json.loads(meta["rng"]))
        return self


class _StopOnInterrupt:
    """During fit, Ctrl-C (SIGINT) asks the loop to stop after the current batch instead
    of raising KeyboardInterrupt in the middle of an update. A second Ctrl-C raises.
    Only the main thread can install signal handlers; elsewhere this does nothing."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.previous = None

    def _handler(self, signum, frame):
        if self.trainer.interrupted:
            signal.signal(signal.SIGINT, self.previous)
            raise KeyboardInterrupt
        self.trainer.interrupted = True
        self.trainer.stop_training = True
        print("\nfit: interrupted; stopping after this batch (Ctrl-C again to abort)",
              flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
