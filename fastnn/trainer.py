"""The training loop: mini-batch gradient descent with one shuffle per epoch, per-epoch
train and validation figures in a History (the procedure of seed notes 000 and 001)."""
import math
import time

import numpy as np

from . import metrics as _metrics, rng
from .batching import Batches
from .losses import CrossEntropyLoss, check_labels
from .validation import as_array, check_finite, positive_int


class History:
    """Per-epoch training record: `history` maps 'loss', each metric, 'val_loss',
    'val_<metric>', 'lr' and 'epoch_time' to lists with one value per epoch."""

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

    def __repr__(self):
        if not self.epoch:
            return "History(no epochs)"
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items())
        return f"History({len(self.epoch)} epochs; last: {last})"


_DEFAULT_METRICS = ("accuracy",)


class Trainer:
    """Trains `model` by minimising `loss` with `optimizer`.

    metrics: names ('accuracy', 'top_5_accuracy', 'mse', 'mae') or callables
    metric(y_true, y_pred). The default ('accuracy',) applies to classification
    losses; with a regression loss the default is no metric.
    """

    def __init__(self, model, loss, optimizer, scheduler=None, metrics=_DEFAULT_METRICS,
                 callbacks=(), clip_grad_norm=None):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.scheduler = scheduler
        classification = isinstance(loss, CrossEntropyLoss)
        if metrics is _DEFAULT_METRICS and not classification:
            metrics = ()
        resolved = [_metrics.resolve(m) for m in metrics]
        for name, _ in resolved:
            if name in _metrics.CLASSIFICATION and not classification:
                raise ValueError(f"metric {name!r} needs a classification loss, got "
                                 f"{type(loss).__name__}")
        self.metrics = resolved
        self.callbacks = list(callbacks)
        if clip_grad_norm is not None:
            clip_grad_norm = float(clip_grad_norm)
            if not (math.isfinite(clip_grad_norm) and clip_grad_norm > 0):
                raise ValueError(f"clip_grad_norm must be a positive number or None, got "
                                 f"{clip_grad_norm}")
        self.clip_grad_norm = clip_grad_norm
        self.history = History()
        self.epoch = 0

    @property
    def _classification(self):
        return isinstance(self.loss, CrossEntropyLoss)

    # -- one step -----------------------------------------------------------------------
    def train_step(self, xb, yb):
        """Forward, loss, backward and one optimizer update on a batch; returns the loss."""
        self.model.train()
        return self._step(xb, yb)[0]

    def _step(self, xb, yb):
        model, opt = self.model, self.optimizer
        opt.zero_grad()
        out = model._forward(xb)
        value = self.loss(out, yb)
        model._backward(self.loss._backward(), False)
        if self.clip_grad_norm is not None:
            self._clip_gradients(self.clip_grad_norm)
        opt.step()
        return value, out

    def _clip_gradients(self, max_norm):
        """Scale the trainable gradients so that their global L2 norm is at most max_norm,
        as torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1."""
        grads = [p.grad for p in self.model.parameters() if p.requires_grad]
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
        coef = max_norm / (total + 1e-6)
        if coef < 1.0:
            for g in grads:
                g *= g.dtype.type(coef)
        return total

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
        check_finite(X, f"{where} X")
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

    # -- fit / evaluate ---------------------------------------------------------------
    def fit(self, X, y, epochs=10, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, drop_last=False):
        """Train for `epochs` epochs (counted from the trainer's current epoch, so a
        second fit continues); returns the History.

        Each epoch permutes the sample indices once (shuffle=True) and visits them in
        mini-batches of batch_size; the last partial batch is kept unless drop_last.
        validation_split takes that fraction of the samples, from the end, before any
        shuffling (as Keras does); validation_data=(X_val, y_val) gives them directly.
        """
        batch_size = positive_int(batch_size, "batch_size")
        epochs = int(epochs)
        X, y = self._prepare(X, y, "fit")
        if validation_data is not None and validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        val = None
        if validation_split:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"fit: validation_split={validation_split} leaves no "
                                 f"training or validation samples out of {X.shape[0]}")
            X, val = X[:-n_val], (X[-n_val:], y[-n_val:])
            y = y[:-n_val]
        elif validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (X_val, y_val)")
            val = self._prepare(*validation_data, "fit validation_data")
        dtype = self.model.dtype or np.float32
        batches = Batches(X, y, batch_size, dtype, y.dtype, drop_last=drop_last)
        if len(batches) == 0:
            raise ValueError(f"fit: {X.shape[0]} samples make no batch of {batch_size} "
                             "with drop_last=True")
        n = X.shape[0]
        for _ in range(epochs):
            start = time.perf_counter()
            order = rng.generator().permutation(n) if shuffle else np.arange(n)
            logs = self._train_epoch(batches, order)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(*val, 256).items()})
            logs["lr"] = self.optimizer.lr
            logs["epoch_time"] = time.perf_counter() - start
            self.epoch += 1
            self.history.append(self.epoch, logs)
            if self.scheduler is not None:
                self.scheduler.step()
            if verbose:
                print(_epoch_line(self.epoch, logs), flush=True)
        return self.history

    def _train_epoch(self, batches, order):
        self.model.train()
        total, count = 0.0, 0
        sums = [0.0] * len(self.metrics)
        for xb, yb in batches.epoch(order):
            value, out = self._step(xb, yb)
            m = xb.shape[0]
            total += value * m
            count += m
            for i, (_, fn) in enumerate(self.metrics):
                sums[i] += fn(yb, out) * m
        logs = {"loss": total / count}
        logs.update({name: s / count for (name, _), s in zip(self.metrics, sums)})
        return logs

    def evaluate(self, X, y, batch_size=256):
        """Loss and metrics of the model in eval mode over (X, y): a dict."""
        X, y = self._prepare(X, y, "evaluate")
        return self._evaluate(X, y, positive_int(batch_size, "batch_size"))

    def _evaluate(self, X, y, batch_size):
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
        n = X.shape[0]
        result = {"loss": total / n}
        result.update({name: s / n for (name, _), s in zip(self.metrics, sums)})
        return result


def _epoch_line(epoch, logs):
    parts = [f"epoch {epoch}"]
    for key, value in logs.items():
        if key == "epoch_time":
            parts.append(f"{value:.2f}s")
        elif key == "lr":
            parts.append(f"lr {value:.3g}")
        else:
            parts.append(f"{key} {value:.4f}")
    return " - ".join(parts)
