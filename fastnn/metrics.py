"""Metrics reported by the Trainer: functions metric(y_true, y_pred) -> float (the mean
over the batch), looked up by name or passed as callables."""

import numpy as np


def accuracy(y_true, y_pred):
    """Fraction of rows (or positions, for (N, C, *) scores and (N, *) labels) whose
    highest score on the class axis 1 is the true class; for a single output column,
    the sign of the score is the prediction (0 vs 1)."""
    y_true = np.asarray(y_true)
    if y_pred.ndim >= 2 and y_pred.shape[1] > 1:
        pred = y_pred.argmax(axis=1)
    else:
        pred = (y_pred.reshape(-1) > 0).astype(np.int64)
    return float(np.mean(pred == y_true.reshape(-1)))


def top_k_accuracy(k):
    """A metric: fraction of rows whose true class is among the k highest scores."""
    if int(k) < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    k = int(k)

    def top_k(y_true, y_pred):
        kk = min(k, y_pred.shape[1])
        top = np.argpartition(y_pred, -kk, axis=1)[:, -kk:]
        return float(np.mean((top == np.asarray(y_true).reshape(-1, 1)).any(axis=1)))

    top_k.__name__ = f"top_{k}_accuracy"
    return top_k


def mse(y_true, y_pred):
    """Mean squared error."""
    return float(np.mean((y_pred - np.asarray(y_true).reshape(y_pred.shape)) ** 2))


def mae(y_true, y_pred):
    """Mean absolute error."""
    return float(np.mean(np.abs(y_pred - np.asarray(y_true).reshape(y_pred.shape))))


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
