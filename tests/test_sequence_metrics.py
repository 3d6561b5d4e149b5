"""Metrics over sequences: (N, C, T) scores with (N, T) labels, the loss's ignore_index
leaving out padded steps, in the metric functions, the Trainer's history and evaluate."""

import numpy as np
import pytest

import fastnn
from fastnn import metrics
from fastnn.layers import Conv1d

PAD = -100  # CrossEntropyLoss's default ignore_index, as torch's


def _scores_labels(seed=0, N=7, C=4, T=9):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((N, C, T))
    labels = rng.integers(0, C, (N, T))
    lengths = rng.integers(1, T + 1, N)
    labels[np.arange(T) >= lengths[:, None]] = PAD
    return scores, labels


def _reference_accuracy(scores, labels, k=1):
    """Per-position loop: the true class among the k highest scores, padded steps out."""
    hits = []
    for n in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[n, t] != PAD:
                top = np.argsort(scores[n, :, t])[-k:]
                hits.append(labels[n, t] in top)
    return np.mean(hits)


def test_accuracy_over_positions_leaves_out_ignore_index():
    scores, labels = _scores_labels()
    want = _reference_accuracy(scores, labels)
    assert metrics.accuracy(labels, scores, ignore_index=PAD) == pytest.approx(want)
    # without ignore_index every position counts (padded ones are never right)
    assert metrics.accuracy(labels, scores) < want
    hits, n = metrics.batch_sums("accuracy", metrics.accuracy, labels, scores, ignore_index=PAD)
    assert n == np.sum(labels != PAD) and hits / n == pytest.approx(want)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_over_positions(k):
    scores, labels = _scores_labels(seed=k)
    top_k = metrics.top_k_accuracy(k)
    assert top_k(labels, scores, ignore_index=PAD) == pytest.approx(
        _reference_accuracy(scores, labels, k)
    )
    flat = metrics.top_k_accuracy(k)(labels[:, 0], scores[:, :, 0])  # rows still work
    assert flat == pytest.approx(
        np.mean([labels[n, 0] in np.argsort(scores[n, :, 0])[-k:] for n in range(labels.shape[0])])
    )


def test_all_positions_ignored_gives_nan():
    scores, labels = _scores_labels()
    labels[:] = PAD
    assert np.isnan(metrics.accuracy(labels, scores, ignore_index=PAD))


def test_callable_metric_weighs_by_rows():
    labels, scores = np.zeros(5), np.ones((5, 1))
    assert metrics.batch_sums("mse", metrics.mse, labels, scores, ignore_index=PAD) == (5.0, 5)
    w = np.arange(5.0)
    assert metrics.batch_sums("mse", metrics.mse, labels, scores, w) == (10.0, 10.0)


def test_sample_weights_weigh_each_counted_position():
    scores, labels = _scores_labels(seed=5)
    w = np.random.default_rng(5).uniform(0, 2, labels.shape[0])
    hit = scores.argmax(axis=1) == labels
    keep = labels != PAD
    want = np.sum(w[:, None] * hit * keep) / np.sum(w[:, None] * keep)
    got = metrics.accuracy(labels, scores, sample_weight=w, ignore_index=PAD)
    assert got == pytest.approx(want)


def _tagging_data(N=96, T=12, seed=0):
    """Tag each step of a noisy sequence with the sign of its (smoothed) value; the
    steps after each sequence's length are padding, labelled PAD."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 1, T)).astype(np.float32)
    smooth = x[:, 0] + 0.5 * np.roll(x[:, 0], 1, axis=1)
    y = (smooth > 0).astype(np.int64)
    lengths = rng.integers(2, T + 1, N)
    y[np.arange(T) >= lengths[:, None]] = PAD
    return x, y


def _trainer(lr):
    fastnn.seed(0)
    model = fastnn.Sequential(Conv1d(1, 2, 3, padding=1))  # (N, 1, T) -> (N, 2, T)
    return model, fastnn.Trainer(
        model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.SGD(model.parameters(), lr=lr)
    )


def _masked_accuracy(model, x, y):
    pred = model.predict(x).argmax(axis=1)
    keep = y != PAD
    return np.mean(pred[keep] == y[keep]), np.mean(pred == y)


def test_trainer_history_and_evaluate_leave_out_padded_steps():
    x, y = _tagging_data()
    # lr = 0: the training-mode pass sees the same weights as the check below, so the
    # epoch's accuracy over batches of different padding must equal the whole data's
    model, trainer = _trainer(lr=0.0)
    hist = trainer.fit(x, y, epochs=1, batch_size=10, verbose=0)
    want, naive = _masked_accuracy(model, x, y)
    assert want != pytest.approx(naive)  # the padding would change the figure
    assert hist.history["accuracy"][0] == pytest.approx(want)
    assert trainer.evaluate(x, y, batch_size=7)["accuracy"] == pytest.approx(want)


def test_sequence_tagging_trains_with_padding():
    x, y = _tagging_data(N=256)
    model, trainer = _trainer(lr=0.5)
    hist = trainer.fit(x, y, epochs=15, batch_size=32, validation_split=0.25, verbose=0)
    want, _ = _masked_accuracy(model, x[192:], y[192:])
    assert hist.history["val_accuracy"][-1] == pytest.approx(want)
    assert want > 0.9
