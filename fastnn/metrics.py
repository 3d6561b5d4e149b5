"""Metrics reported by the Trainer: functions metric(y_true, y_pred, sample_weight=None)
-> float (the mean over the batch, weighted by sample_weight (N,) when given), looked up
by name or passed as callables (which need the sample_weight argument only to be
evaluated with sample weights).

Sequences: the label metrics (accuracy, top_<k>_accuracy) take (N, C, *) scores with
(N, *) labels, as the losses do, and count every position (with its sample's weight).
Given `ignore_index` (the Trainer passes its loss's: cross-entropy's -100 by default, as
torch's) they leave out the positions labelled with it, such as the padded steps of
variable-length sequences. The Trainer adds up `batch_sums` over the batches, so an
epoch's value is the mean over all counted positions, whatever each batch's padding."""

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


def _counted(labels, hits, ignore_index, sample_weight):
    """(weighted hits, weighted count) over the counted positions. labels, hits:
    (N, positions); each position has its sample's weight (1 without weights), and
    those labelled ignore_index have none."""
    w = (
        np.ones(hits.shape)
        if sample_weight is None
        else np.broadcast_to(np.asarray(sample_weight, dtype=np.float64).reshape(-1, 1), hits.shape)
    )
    if ignore_index is not None:
        w = w * (labels != ignore_index)
    return float(np.sum(w * hits)), float(np.sum(w))


def _ratio(counts):
    hits, n = counts
    return hits / n if n else float("nan")


def _accuracy_counts(y_true, y_pred, ignore_index=None, sample_weight=None):
    labels = np.asarray(y_true).reshape(y_pred.shape[0], -1)
    if y_pred.ndim >= 2 and y_pred.shape[1] > 1:
        pred = y_pred.argmax(axis=1)
    else:
        pred = (y_pred.reshape(-1) > 0).astype(np.int64)
    return _counted(labels, pred.reshape(labels.shape) == labels, ignore_index, sample_weight)


def accuracy(y_true, y_pred, sample_weight=None, ignore_index=None):
    """Fraction of rows (or positions, for (N, C, *) scores and (N, *) labels) whose
    highest score on the class axis 1 is the true class; for a single output column,
    the sign of the score is the prediction (0 vs 1). Positions labelled
    `ignore_index` are left out (nan when none is left)."""
    return _ratio(_accuracy_counts(y_true, y_pred, ignore_index, sample_weight))


accuracy.counts = _accuracy_counts  # type: ignore[attr-defined]


def top_k_accuracy(k):
    """A metric: fraction of rows (or positions, for (N, C, *) scores) whose true class
    is among the k highest scores; positions labelled `ignore_index` are left out."""
    if int(k) < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    k = int(k)

    def counts(y_true, y_pred, ignore_index=None, sample_weight=None):
        kk = min(k, y_pred.shape[1])
        top = np.argpartition(y_pred, -kk, axis=1)[:, -kk:]  # (N, kk, *)
        labels = np.asarray(y_true).reshape((top.shape[0], 1) + top.shape[2:])
        hits = (top == labels).any(axis=1).reshape(top.shape[0], -1)
        return _counted(labels.reshape(hits.shape), hits, ignore_index, sample_weight)

    def top_k(y_true, y_pred, sample_weight=None, ignore_index=None):
        return _ratio(counts(y_true, y_pred, ignore_index, sample_weight))

    top_k.__name__ = f"top_{k}_accuracy"
    top_k.counts = counts
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


def batch_sums(name, fn, y_true, y_pred, sample_weight=None, ignore_index=None):
    """(value x weight, weight) of one batch: added up over batches, their ratio is the
    metric over all of them. The label metrics weigh by counted positions (each with
    its sample's weight; labels equal to ignore_index left out); other metrics by rows
    (or the batch's total sample weight)."""
    counts = getattr(fn, "counts", None)
    if counts is not None:
        return counts(y_true, y_pred, ignore_index, sample_weight)
    weight = len(y_true) if sample_weight is None else float(np.sum(sample_weight))
    return call(name, fn, y_true, y_pred, sample_weight) * weight, weight
