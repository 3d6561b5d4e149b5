"""Metrics reported by the Trainer: functions metric(y_true, y_pred) -> float (the mean
over the batch), looked up by name or passed as callables.

Sequences: the label metrics (accuracy, top_<k>_accuracy) take (N, C, *) scores with
(N, *) labels, as the losses do, and count every position. Given `ignore_index` (the
Trainer passes its loss's: cross-entropy's -100 by default, as torch's) they leave out
the positions labelled with it, such as the padded steps of variable-length sequences.
The Trainer sums `batch_sums` over the batches, so an epoch's value is the mean over all
counted positions, whatever the padding of each batch."""

import numpy as np


def _counted(y_true, hits, ignore_index):
    """(hits among the counted positions, their number); hits is per position, like
    the flattened labels."""
    if ignore_index is None:
        return float(hits.sum()), hits.size
    keep = y_true != ignore_index
    return float(hits[keep].sum()), int(keep.sum())


def _mean(counts):
    hits, n = counts
    return hits / n if n else float("nan")


def _accuracy_counts(y_true, y_pred, ignore_index=None):
    y_true = np.asarray(y_true).reshape(-1)
    if y_pred.ndim >= 2 and y_pred.shape[1] > 1:
        pred = y_pred.argmax(axis=1)
    else:
        pred = (y_pred.reshape(-1) > 0).astype(np.int64)
    return _counted(y_true, pred.reshape(-1) == y_true, ignore_index)


def accuracy(y_true, y_pred, ignore_index=None):
    """Fraction of rows (or positions, for (N, C, *) scores and (N, *) labels) whose
    highest score on the class axis 1 is the true class; for a single output column,
    the sign of the score is the prediction (0 vs 1). Positions labelled
    `ignore_index` are left out (nan when none is left)."""
    return _mean(_accuracy_counts(y_true, y_pred, ignore_index))


accuracy.counts = _accuracy_counts


def top_k_accuracy(k):
    """A metric: fraction of rows (or positions, for (N, C, *) scores) whose true class
    is among the k highest scores; positions labelled `ignore_index` are left out."""
    if int(k) < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    k = int(k)

    def counts(y_true, y_pred, ignore_index=None):
        kk = min(k, y_pred.shape[1])
        top = np.argpartition(y_pred, -kk, axis=1)[:, -kk:]  # (N, kk, *)
        labels = np.asarray(y_true).reshape((top.shape[0], 1) + top.shape[2:])
        hits = (top == labels).any(axis=1).reshape(-1)
        return _counted(labels.reshape(-1), hits, ignore_index)

    def top_k(y_true, y_pred, ignore_index=None):
        return _mean(counts(y_true, y_pred, ignore_index))

    top_k.__name__ = f"top_{k}_accuracy"
    top_k.counts = counts
    return top_k


def batch_sums(metric, y_true, y_pred, ignore_index=None):
    """(value x weight, weight) of one batch: summed over batches, their ratio is the
    metric over all of them. The label metrics weigh by counted positions (labels
    equal to ignore_index left out); other metrics by rows."""
    counts = getattr(metric, "counts", None)
    if counts is not None:
        return counts(y_true, y_pred, ignore_index)
    rows = len(y_true)
    return metric(y_true, y_pred) * rows, rows


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
