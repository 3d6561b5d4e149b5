"""The training loop: mini-batch gradient descent with one shuffle per epoch, per-epoch
train and validation figures in a History, callbacks, schedules, gradient clipping,
exact checkpoints (the usual procedure)."""

import json
import math
import signal
import threading
import time
import warnings

import numpy as np

from . import distributed
from . import losses as _losses
from . import metrics as _metrics
from . import rng
from .batching import Batches, as_inputs
from .callbacks import EpochLogger, ProgressBar, TerminateOnNaN
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss, check_labels
from .module import Context
from .optim import clip_grad_norm_
from .schedules import BatchSizeSchedule
from .threads import governor
from .validation import check_finite, plain, positive_int

# Losses on class labels (the others take float targets).
_LABEL_LOSSES = (CrossEntropyLoss, NLLLoss)


class History:
    """Per-epoch training record: `history` maps 'loss', each metric, 'val_loss',
    'val_<metric>', 'lr', 'epoch_time' (and 'grad_norm' when clipping) to lists with
    one value per epoch; `epoch` lists the epoch numbers (from 1)."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def append(self, epoch, logs):
        """Record the figures `logs` of epoch number `epoch`."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.epoch)

    def state_dict(self):
        """The record as plain lists (for checkpoints)."""
        return {"history": self.history, "epoch": self.epoch}

    def load_state_dict(self, state):
        """Restore a record written by state_dict()."""
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
    is the global batch, each rank takes a shard of it, and the gradient is all-reduced
    by an 'after_backward' hook of order 200.

    `model` is any Module with forward/backward: a Sequential, a fastnn.Model (several
    inputs: pass X as a list of arrays), or a Module subclass of your own. One step:
    the gradients in the model's parameter store (model.parameter_store()) are zeroed,
    forward, loss, backward (module backward hooks fire), then the store's
    'after_backward' hooks together with the trainer's weight penalties (order 100)
    and gradient clipping (order 300), then 'before_step' hooks, optimizer.step() and
    'after_step' hooks.
    """

    def __init__(
        self,
        model,
        loss,
        optimizer,
        scheduler=None,
        metrics=_DEFAULT_METRICS,
        callbacks=(),
        clip_grad_norm=None,
        batch_size_schedule=None,
        seed=None,
    ):
        loss = _losses.get(loss)  # a loss object, or its name: 'cross_entropy', 'mse', ...
        self.model, self.loss, self.optimizer = model, loss, optimizer
        # The trainer's own random stream (shuffling, dropout masks): from `seed`, or
        # drawn from fastnn's stream (fastnn.seed) when the trainer is made. Its steps
        # run with it current, so trainers in different threads do not interleave draws.
        self.rng = rng.Stream(rng.check_seed(seed)) if seed is not None else rng.spawn()
        self._augment = None  # fit's augment (a transform of each training batch)
        self.scheduler = scheduler
        # The labels fit encodes (None: integer labels are class indices); a loaded
        # classifier brings those it was trained on (fastnn.load sets model.classes_).
        self.classes_ = getattr(model, "classes_", None)
        classification = isinstance(loss, _LABEL_LOSSES)
        if metrics is _DEFAULT_METRICS and not classification:
            metrics = ()
        resolved = [_metrics.resolve(m) for m in metrics]
        for name, _ in resolved:
            if _metrics.needs_labels(name) and not classification:
                raise ValueError(
                    f"metric {name!r} needs a classification loss, got {type(loss).__name__}"
                )
        self.metrics = resolved
        # the label metrics leave out what the loss ignores (padded sequence steps)
        self._ignore_index = getattr(loss, "ignore_index", None)
        self.callbacks = list(callbacks)
        self.terminate_on_nan = True
        if clip_grad_norm is not None:
            clip_grad_norm = float(clip_grad_norm)
            if not (math.isfinite(clip_grad_norm) and clip_grad_norm > 0):
                raise ValueError(
                    f"clip_grad_norm must be a positive number or None, got {clip_grad_norm}"
                )
        self.clip_grad_norm = clip_grad_norm
        if batch_size_schedule is not None and not isinstance(
            batch_size_schedule, BatchSizeSchedule
        ):
            raise TypeError(
                f"batch_size_schedule must be a fastnn.schedules."
                f"BatchSizeSchedule, got {type(batch_size_schedule).__name__}"
            )
        self.batch_size_schedule = batch_size_schedule
        self._dp = None  # fastnn.distributed.DataParallel while a data-parallel fit runs
        self.history = History()
        self.epoch = 0  # epochs completed
        self.stop_training = False
        self.interrupted = False
        self.diverged = False  # set by TerminateOnNaN: the epoch was rolled back
        self.verbose = 0
        self._penalty_list = None
        self._store = None
        self._ctx, self._eval_ctx = Context(), Context()
        self._step_info = {}

    @property
    def _classification(self):
        return isinstance(self.loss, _LABEL_LOSSES)

    # -- one step -----------------------------------------------------------------------
    def train_step(self, xb, yb):
        """Forward, loss (+ weight penalties), backward and one optimizer update on a
        batch; returns the loss. A model in eval mode is put in training mode first
        (submodules you set to eval yourself, with the model in training mode, stay so)."""
        if not self.model.training:
            self.model.train()
        with rng.using(self.rng):
            return self._step(xb, yb, ())[0]

    def _step(self, xb, yb, callbacks, wb=None):
        """One update; (loss, model output, pre-clip gradient norm or None). With a
        non-finite loss the callbacks decide, before anything is updated. wb: the
        batch's per-sample weights (or None)."""
        governor.poll()
        model, opt, store = self.model, self.optimizer, self._parameter_store()
        store.zero_grad()
        out = model._forward(self._ctx, xb)
        value = self.loss(out, yb, sample_weight=wb)
        if self._dp is not None:  # the global batch's loss; any rank's Ctrl-C stops all
            value, stop = self._dp.step_loss(value, self.interrupted)
            if stop:
                self.interrupted = self.stop_training = True
        if not math.isfinite(value):
            for cb in callbacks:
                cb.on_nonfinite_loss(self, value)
            if self.stop_training:
                return value, out, None
        model._backward(self._ctx, self.loss._backward(), False)
        info = self._step_info
        info["penalty"], info["grad_norm"] = 0.0, None
        store.run_hooks("after_backward", extra=self._builtin_hooks, trainer=self)
        store.run_hooks("before_step", trainer=self)
        opt.step()
        store.run_hooks("after_step", trainer=self)
        if getattr(self.scheduler, "interval", "epoch") == "step":
            self.scheduler.step()
        return value + info["penalty"], out, info["grad_norm"]

    def _parameter_store(self):
        """The model's parameter store and the trainer's own after-backward hooks,
        found once (fit looks again at its start)."""
        if self._store is None:
            self._store = self.model.parameter_store()
            hooks = []
            if self._penalties():
                hooks.append((100, self._add_penalties))
            if self.clip_grad_norm is not None:
                hooks.append((300, self._clip))
            self._builtin_hooks = hooks
        return self._store

    def _add_penalties(self, store, trainer):
        self._step_info["penalty"] = sum(
            m._weight_penalty(m.regularizer, True) for m in self._penalties()
        )

    def _clip(self, store, trainer):
        self._step_info["grad_norm"] = clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)

    def _penalties(self):
        """The model's layers that have a regularizer, found once (fit looks again at
        its start); as Module.add_penalties, without walking the model every step."""
        if self._penalty_list is None:
            self._penalty_list = [
                m for m in self.model.modules() if getattr(m, "regularizer", None) is not None
            ]
        return self._penalty_list

    # -- data -------------------------------------------------------------------------
    def _prepare(self, X, y, where):
        """Validated (X, y): X an array of shape (n_samples, ...) - or a list of them for
        a model with several inputs - finite; y of matching length, integer labels in
        range for classification (shape (N,) for (N, C) outputs, (N, *) for (N, C, *)),
        float targets otherwise."""
        inputs = as_inputs(X, f"{where} X")
        n = inputs[0].shape[0]
        dtype = self.model.dtype or np.float32
        for i, x in enumerate(inputs):
            # Finite and within the model's float range (1e300 would become inf in
            # float32); under MPI each rank checks its block.
            distributed.sharded_check(
                lambda a, name: check_finite(a, name, dtype),
                x,
                f"{where} X" if len(inputs) == 1 else f"{where} X[{i}]",
            )
        y = np.asarray(y) if not isinstance(y, np.ndarray) else y
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(
                f"{where}: X has {n} samples but y has "
                f"{'no samples' if y.ndim == 0 else y.shape[0]}"
            )
        out = self.model.predict([x[:2] for x in inputs] if len(inputs) > 1 else inputs[0][:2])
        if isinstance(out, list):
            raise ValueError(
                f"{where}: the model has {len(out)} outputs; the Trainer "
                "trains a model with one output"
            )
        if self._classification:  # (n, *) labels for (N, C, *) scores; ignore_index allowed
            y = self._encode_labels(y, where)
            y = check_labels(
                y, n, out.shape[1], where, (n,) + out.shape[2:], self.loss.ignore_index
            )[0]
        else:
            if y.ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
                y = y.reshape(-1, 1)
            check_finite(
                np.asarray(y, dtype=np.float64) if y.dtype.kind not in "f" else y, f"{where} y"
            )
            y = np.ascontiguousarray(y, dtype=dtype)
        X = inputs if isinstance(X, (list, tuple)) else inputs[0]
        return X, y

    def _split(self, X, y, weights, validation_data, validation_split):
        """(X, y, weights, validation triple (X_val, y_val, weights or None) or None):
        validation_split takes the samples and their weights from the end;
        validation_data is (X_val, y_val) or (X_val, y_val, sample_weight_val)."""
        if validation_data is not None and validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split:
            n = y.shape[0]
            n_val = int(round(n * validation_split))
            if n_val < 1 or n_val >= n:
                raise ValueError(
                    f"fit: validation_split={validation_split} leaves no "
                    f"training or validation samples out of {n}"
                )
            head, tail = slice(None, -n_val), slice(-n_val, None)
            w, w_val = (None, None) if weights is None else (weights[head], weights[tail])
            return _rows(X, head), y[head], w, (_rows(X, tail), y[tail], w_val)
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ValueError(
                    "fit: validation_data must be (X_val, y_val) or "
                    "(X_val, y_val, sample_weight_val)"
                )
            X_val, y_val = self._prepare(*validation_data[:2], "fit validation_data")
            w_val = None
            if len(validation_data) == 3 and validation_data[2] is not None:
                w_val = self._check_weights(validation_data[2], y_val, "fit validation_data")
            return X, y, weights, (X_val, y_val, w_val)
        return X, y, weights, None

    # -- fit ----------------------------------------------------------------------------
    def _encode_labels(self, y, where):
        """Class labels as integers: integer-valued floats become int64; class names
        (strings, booleans, ...) become indices into the classes found by the first fit
        (self.classes_, sorted), which every later call reuses. Integers are class
        indices, unless the classes are integers themselves (a loaded classifier trained
        on labels such as 3, 5, 7): then they are encoded as names."""
        if y.dtype.kind == "f":
            if not (np.isfinite(y).all() and (y == np.round(y)).all()):
                bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
                raise TypeError(
                    f"{where}: class labels must be integers or class names, "
                    f"got the float {float(bad)}"
                )
            y = y.astype(np.int64)
        if y.dtype.kind in "iu" and (self.classes_ is None or self.classes_.dtype.kind not in "iu"):
            return y
        if self.classes_ is None:
            if where != "fit":
                raise ValueError(f"{where}: class names need a fit first (it encodes them)")
            self.classes_ = np.unique(y)
            self.model.classes_ = self.classes_  # fastnn.save records them for predict
        idx = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if unknown.any():
            raise ValueError(
                f"{where}: labels {np.unique(y[unknown])[:5].tolist()} are not "
                f"among the classes seen by fit {self.classes_.tolist()[:10]}"
            )
        return idx.astype(np.int64)

    @staticmethod
    def _check_weights(sample_weight, y, where):
        """sample_weight as a float64 (N,) array of finite weights >= 0."""
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != y.shape[:1]:
            raise ValueError(
                f"{where}: sample_weight must have shape ({y.shape[0]},), got {w.shape}"
            )
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"{where}: sample_weight must be finite and >= 0")
        return w

    def _sample_weights(self, y, sample_weight, class_weight):
        """Per-sample weights (N,) float64 from sample_weight and class_weight (a dict
        {label: weight} in the labels given to fit, or 'balanced': n / (K * count)), or
        None when neither is given."""
        w = None if sample_weight is None else self._check_weights(sample_weight, y, "fit")
        if class_weight is not None:
            if not self._classification:
                raise ValueError(
                    f"fit: class_weight needs a classification loss, got {type(self.loss).__name__}"
                )
            labels = y.reshape(-1) if y.ndim == 1 else y[:, 0].reshape(-1)
            counts = np.bincount(labels)
            if isinstance(class_weight, str) and class_weight == "balanced":
                present = counts > 0
                per_class = np.zeros(len(counts))
                per_class[present] = len(labels) / (present.sum() * counts[present])
            elif isinstance(class_weight, dict):
                names = self.classes_ if self.classes_ is not None else np.arange(len(counts))
                per_class = np.ones(max(len(counts), len(names)))
                for label, weight in class_weight.items():
                    hit = np.flatnonzero(names == label)
                    if not hit.size:
                        raise ValueError(f"fit: class_weight names the unknown class {label!r}")
                    per_class[hit[0]] = float(weight)
            else:
                raise ValueError(
                    "fit: class_weight must be a dict {class: weight} or "
                    f"'balanced', got {class_weight!r}"
                )
            cw = per_class[labels]
            w = cw if w is None else w * cw
        return w

    def predict_proba(self, X, batch_size=256):
        """Class probabilities of the model in eval mode, from the loss it was trained
        with: softmax over axis 1 for CrossEntropyLoss ((N, C) or (N, C, *)), exp for
        NLLLoss (log-probabilities), the sigmoid of each output for BCEWithLogitsLoss.
        Same shape as the model's output; float64."""
        out = np.asarray(self.model.predict(X, batch_size=batch_size), dtype=np.float64)
        if isinstance(self.loss, CrossEntropyLoss):
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if isinstance(self.loss, NLLLoss):
            return np.exp(out)
        if isinstance(self.loss, BCEWithLogitsLoss):
            return 1.0 / (1.0 + np.exp(-out))
        raise ValueError(
            f"predict_proba needs a classification loss (CrossEntropyLoss, "
            f"NLLLoss, BCEWithLogitsLoss), got {type(self.loss).__name__}"
        )

    def predict_classes(self, X, batch_size=256):
        """Predicted labels: the most probable class on axis 1 ((N,) or (N, *)), in the
        labels given to fit (class names when fit encoded them); for BCEWithLogitsLoss,
        1 where the probability exceeds 0.5, else 0 (the output's shape)."""
        p = self.predict_proba(X, batch_size)
        if isinstance(self.loss, BCEWithLogitsLoss):
            return (p > 0.5).astype(np.int64)
        k = p.argmax(axis=1)
        return k if self.classes_ is None else self.classes_[k]

    def fit(
        self,
        X,
        y,
        epochs=10,
        batch_size=32,
        validation_data=None,
        validation_split=0.0,
        shuffle=True,
        verbose=1,
        drop_last=False,
        sample_weight=None,
        class_weight=None,
        initial_epoch=None,
        augment=None,
    ):
        """Train and return the History (as Keras' fit).

        Without `initial_epoch`, `epochs` is the number of epochs to run now: each fit
        call trains `epochs` more (numbered on from the epochs this trainer has already
        run). With it, training counts from epoch `initial_epoch` up to `epochs` in all
        (Keras' meaning), e.g. `fit(X, y, epochs=20, initial_epoch=trainer.epoch)` after
        load_checkpoint finishes a 20-epoch run, bit for bit as if never interrupted.

        Each epoch permutes the sample indices once (shuffle=True) and visits them in
        mini-batches of batch_size, gathered into a reused buffer (X is never copied
        whole, so it may be a memory-mapped file); the last partial batch is kept unless
        drop_last - merged into the batch before it when it is too small for the model
        (a single sample, with BatchNorm, whose batch statistics need two). validation_split takes that fraction of the samples, from the end,
        before any shuffling (as Keras does); validation_data=(X_val, y_val) gives them
        directly. verbose: 0 silent, 1 progress bar and a line per epoch, 2 a line per
        epoch. Ctrl-C stops after the current batch and returns the History so far
        (trainer.interrupted is then True); the model stays usable. augment: a callable
        applied to each training batch of inputs before its step (fastnn.augment), never
        to validation data.

        Labels: for a classification loss y holds integer labels, integer-valued floats,
        or class names of any type (strings, ...), which fit encodes once as indices
        into the sorted names (trainer.classes_, also set as model.classes_ so that
        fastnn.save records them and `fastnn predict` answers in them).
        sample_weight (N,): each sample's weight in the loss (the batch loss is their
        weighted mean); class_weight: {label: weight} or 'balanced' (n / (K * count)),
        multiplied into the sample weights.
        """
        if augment is not None and not callable(augment):
            raise TypeError(f"fit: augment must be callable (see fastnn.augment), got {augment!r}")
        self._augment = augment
        batch_size = positive_int(batch_size, "batch_size")
        for what, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if value is not None and (
                isinstance(value, (bool, np.bool_))
                or not isinstance(value, (int, np.integer))
                or value < 0
            ):
                raise ValueError(
                    f"fit: {what} must be a non-negative integer, got {plain(value)!r}"
                )
        if epochs is None:
            raise ValueError("fit: epochs must be a non-negative integer, got None")
        X, y = self._prepare(X, y, "fit")
        weights = self._sample_weights(y, sample_weight, class_weight)
        X, y, weights, val = self._split(X, y, weights, validation_data, validation_split)
        dtype = self.model.dtype or np.float32
        world = distributed.world()
        if world is not None:
            if weights is not None:
                raise NotImplementedError(
                    "fit: sample_weight and class_weight are not "
                    "supported in data-parallel training yet"
                )
            world.check_batches(y.shape[0], batch_size, drop_last)
        min_batch = max(getattr(m, "min_train_batch", 1) for m in self.model.modules())

        def make_batches(size):
            return Batches(
                X,
                y,
                size,
                dtype,
                y.dtype,
                drop_last=drop_last,
                min_batch=min_batch,
                weights=weights,
                world=world,
            )

        batches = make_batches(batch_size)
        if len(batches) == 0:
            raise ValueError(
                f"fit: {y.shape[0]} samples make no batch of {batch_size} with drop_last=True"
            )
        if initial_epoch is None:
            epochs = self.epoch + int(epochs)
        else:
            self.epoch = int(initial_epoch)
        if epochs <= self.epoch:
            warnings.warn(
                f"fit: nothing to run: epochs={epochs} with initial_epoch={self.epoch}",
                stacklevel=2,
            )
            return self.history
        self.verbose = int(verbose)
        self.target_epochs = int(epochs)
        self.batches_per_epoch = len(batches)
        self.log_keys = self._log_keys(val is not None)
        self._penalty_list = self._store = None  # the model may have changed since
        monitor = getattr(self.scheduler, "monitor", None)
        if monitor is not None and monitor not in self.log_keys:
            raise ValueError(
                f"scheduler: unknown monitor {monitor!r}; this fit logs {sorted(self.log_keys)}"
            )
        self._dp = None if world is None else distributed.DataParallel(world)
        callbacks = self._callbacks()
        self.stop_training = self.interrupted = self.diverged = False
        started = []
        try:
            if self._dp is not None:
                self._dp.start(self.model, self._parameter_store(), self.rng)
            # Inside the try: when a callback refuses to start (an unknown monitor), the
            # ones already started still get on_train_end (a CSVLogger closes its file).
            for cb in callbacks:
                cb.on_train_begin(self)
                started.append(cb)
            with _StopOnInterrupt(self), rng.using(self.rng):
                while self.epoch < epochs and not self.stop_training:
                    batches = self._scheduled_batches(batches, batch_size, make_batches)
                    self._run_epoch(batches, y.shape[0], shuffle, val, callbacks)
        finally:
            for cb in started:
                cb.on_train_end(self)
            if self._dp is not None:
                self._dp.stop()
                self._dp = None
        return self.history

    def _scheduled_batches(self, batches, base, make_batches):
        """The batches of the next epoch under the batch-size schedule (new ones when
        the size changes), scaling the learning rates as the schedule says."""
        s = self.batch_size_schedule
        if s is None:
            return batches
        if self.epoch > 0:
            ratio = s.lr_factor(self.epoch, base) / s.lr_factor(self.epoch - 1, base)
            if ratio != 1.0:
                for g in self.optimizer.param_groups:
                    g["lr"] *= ratio
                if hasattr(self.scheduler, "base_lrs"):
                    self.scheduler.base_lrs = [lr * ratio for lr in self.scheduler.base_lrs]
        size = s.batch_size(self.epoch, base)
        if size != batches.batch_size:
            if batches.world is not None:
                batches.world.check_batches(batches.y.shape[0], size, batches.drop_last)
            batches = make_batches(size)
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
        total = mass = count = 0
        sums, counts = [0.0] * len(self.metrics), [0.0] * len(self.metrics)
        norms = []
        for i, (xb, yb, wb) in enumerate(batches.epoch(order)):
            for cb in callbacks:
                cb.on_batch_begin(self, i)
            if self._augment is not None:
                xb = self._augment(xb)
            value, out, norm = self._step(xb, yb, callbacks, wb)
            if self.stop_training and not math.isfinite(value):
                return  # the bad batch counts for nothing; the epoch is not recorded
            m = yb.shape[0]
            w = m if wb is None else float(wb.sum())  # the batch loss is a weighted mean
            if self._dp is not None:  # value is the global batch's loss
                m = w = self._dp.world.batch_rows
            total += value * w
            mass += w
            count += m
            self._add_metrics(sums, counts, yb, out)
            if norm is not None:
                norms.append(norm)
            batch_logs = {"loss": value, "size": m}
            for cb in callbacks:
                cb.on_batch_end(self, i, batch_logs)
            if self.interrupted or self.diverged:
                return  # (a diverged epoch is rolled back, not recorded)
        if self._dp is not None:  # metrics over every rank's rows; rank 0's BN statistics
            sums, counts = self._unpack_sums(self._dp.sum([*sums, *counts]))
            self._dp.sync_state(self.model)
        logs = {"loss": total / mass}
        logs.update(self._metric_logs(sums, counts))
        if val is not None:
            X_val, y_val, w_val = val
            logs.update(
                {f"val_{k}": v for k, v in self._evaluate(X_val, y_val, 256, w_val).items()}
            )
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
    def evaluate(self, X, y, batch_size=256, sample_weight=None):
        """Loss (with weight penalties) and metrics of the model in eval mode over
        (X, y): a dict. sample_weight (N,): each sample's weight, as in fit; the loss and
        every metric are then weighted means over the samples (Keras' evaluate), and a
        metric function of your own must take `sample_weight=` too."""
        X, y = self._prepare(X, y, "evaluate")
        w = None if sample_weight is None else self._check_weights(sample_weight, y, "evaluate")
        return self._evaluate(X, y, positive_int(batch_size, "batch_size"), w)

    def _evaluate(self, X, y, batch_size, weights=None):
        """Under MPI each rank evaluates a contiguous shard; the sums are all-reduced."""
        world = distributed.world()
        if world is not None:
            part = world.shard(y.shape[0])
            X, y = _rows(X, part), y[part]
            weights = None if weights is None else weights[part]
        model = self.model
        was_training = model.training
        model.eval()
        try:
            total = mass = 0.0
            sums, counts = [0.0] * len(self.metrics), [0.0] * len(self.metrics)
            for start in range(0, y.shape[0], batch_size):
                rows = slice(start, start + batch_size)
                xb, yb = _rows(X, rows), y[rows]
                wb = None if weights is None else weights[rows]
                # each batch's means count with the batch's weight
                m = yb.shape[0] if wb is None else float(wb.sum())
                if m == 0:
                    continue  # samples of weight 0 count for nothing
                out = model._forward(self._eval_ctx, xb)
                total += self.loss(out, yb, sample_weight=wb) * m
                mass += m
                self._add_metrics(sums, counts, yb, out, wb)
        finally:
            model.train(was_training)
        if world is not None:
            total, mass, *rest = world.sum([total, mass, *sums, *counts])
            sums, counts = self._unpack_sums(rest)
        if mass == 0:
            raise ValueError("evaluate: sample_weight is 0 for every sample")
        result = {"loss": total / mass + model.penalty()}
        result.update(self._metric_logs(sums, counts))
        return result

    def _add_metrics(self, sums, counts, yb, out, wb=None):
        """Add one batch's metric sums and their weights (metrics.batch_sums)."""
        for j, (name, fn) in enumerate(self.metrics):
            s, w = _metrics.batch_sums(name, fn, yb, out, wb, self._ignore_index)
            sums[j] += s
            counts[j] += w

    def _unpack_sums(self, values):
        """[*sums, *counts] back into the two lists."""
        k = len(self.metrics)
        return list(values[:k]), list(values[k:])

    def _metric_logs(self, sums, counts):
        return {
            name: s / c if c else float("nan")
            for (name, _), s, c in zip(self.metrics, sums, counts)
        }

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
            "optimizer": {
                "type": type(self.optimizer).__name__,
                "param_groups": opt["param_groups"],
            },
            "scheduler": None
            if self.scheduler is None
            else {"type": type(self.scheduler).__name__, "state": self.scheduler.state_dict()},
            "history": self.history.state_dict(),
            "rng": rng.get_state(self.rng),
        }
        atomic_write(path, encode(tensors, meta))

    def load_checkpoint(self, path):
        """Restore the state written by save_checkpoint into this trainer (whose model,
        optimizer and scheduler must be built as they were)."""
        from .io import decode

        tensors, meta = decode(path)
        if meta.get("format") != "fastnn-checkpoint":
            raise ValueError(f"{path}: not a fastnn checkpoint (use fastnn.load for model files)")
        opt_meta = json.loads(meta["optimizer"])
        if opt_meta["type"] != type(self.optimizer).__name__:
            raise ValueError(
                f"{path}: checkpoint of a {opt_meta['type']} optimizer, this "
                f"trainer has {type(self.optimizer).__name__}"
            )
        sched = json.loads(meta["scheduler"])
        if (sched is None) != (self.scheduler is None) or (
            sched is not None and sched["type"] != type(self.scheduler).__name__
        ):
            raise ValueError(
                f"{path}: the checkpoint's scheduler ({sched and sched['type']}) "
                "does not match this trainer's"
            )
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        opt_state = {k[10:]: v for k, v in tensors.items() if k.startswith("optimizer.")}
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(
                {"state": opt_state, "param_groups": opt_meta["param_groups"]}
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: the checkpoint does not fit this trainer: {e}") from None
        if sched is not None:
            self.scheduler.load_state_dict(sched["state"])
        self.history.load_state_dict(json.loads(meta["history"]))
        self.epoch = int(json.loads(meta["epoch"]))
        rng.set_state(json.loads(meta["rng"]), self.rng)
        return self


def _rows(X, index):
    """Rows `index` of X, or of each input of a list X."""
    return [x[index] for x in X] if isinstance(X, list) else X[index]


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
        print("\nfit: interrupted; stopping after this batch (Ctrl-C again to abort)", flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
