"""Metrics reported by the Trainer: functions metric(y_true, y_pred, sample_weight=None)
-> float (the mean over the batch, weighted by sample_weight (N,) when given), looked up
by name or passed as callables (which need the sample_weight argument only to be
evaluated with sample weights)."""

import inspect

import numpy as np


def _mean(values, sample_weight):
    """Mean of per-sample values ((N, ...): a sample's own values count equally), each
    sample weighted by sample_weight when given."""
    if sample_weight is None:
        return float(np.mean(values))
    w = np.asarray(sample_weight, dtype=np.float64)
    per_sample = np.asarray(values, dtype=np.float64).reshape(len(w), -1).mean(axis=1)
    return float(per_sample @ w / w.sum())


def accuracy(y_true, y_pred, sample_weight=None):
    """Fraction of rows (or positions, for (N, C, *) scores and (N, *) labels) whose
    highest score on the class axis 1 is the true class; for a single output column,
    the sign of the score is the prediction (0 vs 1)."""
    y_true = np.asarray(y_true)
    if y_pred.ndim >= 2 and y_pred.shape[1] > 1:
        pred = y_pred.argmax(axis=1)
    else:
        pred = (y_pred.reshape(-1) > 0).astype(np.int64)
    return _mean(pred.reshape(-1) == y_true.reshape(-1), sample_weight)


def top_k_accuracy(k):
    """A metric: fraction of rows whose true class is among the k highest scores."""
    if int(k) < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    k = int(k)

    def top_k(y_true, y_pred, sample_weight=None):
        kk = min(k, y_pred.shape[1])
        top = np.argpartition(y_pred, -kk, axis=1)[:, -kk:]
        return _mean((top == np.asarray(y_true).reshape(-1, 1)).any(axis=1), sample_weight)

    top_k.__name__ = f"top_{k}_accuracy"
    return top_k


def mse(y_true, y_pred, sample_weight=None):
    """Mean squared error."""
    return _mean((y_pred - np.asarray(y_true).reshape(y_pred.shape)) ** 2, sample_weight)


def mae(y_true, y_pred, sample_weight=None):
    """Mean absolute error."""
    return _mean(np.abs(y_pred - np.asarray(y_true).reshape(y_pred.shape)), sample_weight)


BY_NAME = {
    "accuracy": accuracy,
    "acc": accuracy,
    "top_5_accuracy": top_k_accuracy(5),
    "mse": mse,
    "mae": mae,
}

# Metrics that read class labels: they need a classification loss.
CLASSIFICATION = {"accuracy", "acc", "top_5_accuracy"}


def needs_labels(name):
    """True for the metrics that read class labels (accuracy, top_<k>_accuracy)."""
    return name in CLASSIFICATION or (
        name.startswith("top_") and name.endswith("_accuracy") and name[4:-9].isdigit()
    )


def resolve(metric):
    """(name, function) for a metric name or callable."""
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    if isinstance(metric, str) and metric.startswith("top_") and metric.endswith("_accuracy"):
        k = metric[4:-9]
        if k.isdigit():
            return metric, top_k_accuracy(int(k))
    if metric not in BY_NAME:
        raise ValueError(
            f"unknown metric {metric!r}; expected one of {sorted(BY_NAME)}, "
            "'top_<k>_accuracy' or a callable metric(y_true, y_pred)"
        )
    return metric, BY_NAME[metric]


def call(name, fn, y_true, y_pred, sample_weight=None):
    """fn(y_true, y_pred), passing sample_weight when given: a metric function must then
    take it (a TypeError naming the metric otherwise, rather than an unweighted value)."""
    if sample_weight is None:
        return fn(y_true, y_pred)
    params = inspect.signature(fn).parameters
    takes = "sample_weight" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if not takes:
        raise TypeError(
            f"metric {name!r} does not take sample_weight; define it as "
            f"{name}(y_true, y_pred, sample_weight=None) to evaluate with sample weights"
        )
    return fn(y_true, y_pred, sample_weight=sample_weight)
