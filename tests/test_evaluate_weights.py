"""Trainer.evaluate(sample_weight=) and weighted validation in fit: the loss and every
metric are weighted means over the samples (Keras' evaluate), checked against NumPy
references computed from model.predict."""

import numpy as np
import pytest

import fastnn
from fastnn.preprocessing import Standardizer


@pytest.fixture(scope="module")
def digits():
    X, y = fastnn.datasets.load_digits()
    return Standardizer().fit(X).transform(X).astype(np.float32)[:600], y[:600]


def classifier(X, y):
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(64, 32), fastnn.ReLU(), fastnn.Dense(32, 10))
    trainer = fastnn.Trainer(
        model,
        "cross_entropy",
        fastnn.optim.Adam(model.parameters(), lr=1e-3),
        metrics=["accuracy", "top_3_accuracy"],
    )
    trainer.fit(X, y, epochs=1, batch_size=64, verbose=0)  # far from perfect: errors to weigh
    return trainer


def weighted(values, w):
    return float(np.sum(w * values) / np.sum(w))


def test_classification_loss_and_metrics_are_weighted_means(digits, rng):
    X, y = digits
    trainer = classifier(X, y)
    w = rng.uniform(0, 3, len(y))
    w[rng.random(len(y)) < 0.2] = 0  # samples that count for nothing
    z = trainer.model.predict(X).astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    top3 = np.argsort(-z, axis=1)[:, :3]
    ref = {
        "loss": weighted(-logp[np.arange(len(y)), y], w),
        "accuracy": weighted(z.argmax(axis=1) == y, w),
        "top_3_accuracy": weighted((top3 == y[:, None]).any(axis=1), w),
    }
    got = trainer.evaluate(X, y, batch_size=37, sample_weight=w)  # batches of unequal mass
    assert got == pytest.approx(ref, rel=1e-5)
    plain = trainer.evaluate(X, y, batch_size=37)
    assert plain["loss"] != pytest.approx(ref["loss"], rel=1e-3)  # the weights matter
    assert trainer.evaluate(X, y, sample_weight=np.ones(len(y))) == pytest.approx(plain, rel=1e-6)


def test_integer_weights_repeat_samples(digits, rng):
    """Weight k counts a sample as k copies of it, as in Keras."""
    X, y = digits
    trainer = classifier(X, y)
    k = rng.integers(0, 4, len(y))
    copies = np.repeat(np.arange(len(y)), k)
    assert trainer.evaluate(X, y, batch_size=50, sample_weight=k) == pytest.approx(
        trainer.evaluate(X[copies], y[copies], batch_size=50), rel=1e-5
    )


def test_regression_loss_and_metrics_are_weighted_means(rng):
    fastnn.seed(1)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, :2] * [1.0, -2.0] + rng.normal(0, 0.3, (300, 2))).astype(np.float32)
    model = fastnn.Sequential(fastnn.Dense(5, 2))
    trainer = fastnn.Trainer(
        model, "mse", fastnn.optim.SGD(model.parameters(), lr=0.01), metrics=["mse", "mae"]
    )
    trainer.fit(X, y, epochs=1, batch_size=32, verbose=0)
    w = rng.exponential(size=300)
    d = model.predict(X).astype(np.float64) - y
    ref = {
        "loss": weighted((d**2).mean(axis=1), w),
        "mse": weighted((d**2).mean(axis=1), w),
        "mae": weighted(np.abs(d).mean(axis=1), w),
    }
    assert trainer.evaluate(X, y, batch_size=64, sample_weight=w) == pytest.approx(ref, rel=1e-5)


def test_metric_functions_and_sample_weight(digits, rng):
    X, y = digits
    trainer = classifier(X, y)

    def errors(y_true, y_pred):
        return float(np.mean(y_pred.argmax(axis=1) != y_true))

    def weighted_errors(y_true, y_pred, sample_weight=None):
        return float(np.average(y_pred.argmax(axis=1) != y_true, weights=sample_weight))

    trainer.metrics = [("errors", errors), ("weighted_errors", weighted_errors)]
    w = rng.uniform(0, 1, len(y))
    with pytest.raises(TypeError, match="metric 'errors' does not take sample_weight"):
        trainer.evaluate(X, y, sample_weight=w)
    trainer.metrics = trainer.metrics[1:]
    z = trainer.model.predict(X)
    got = trainer.evaluate(X, y, batch_size=100, sample_weight=w)["weighted_errors"]
    assert got == pytest.approx(weighted(z.argmax(axis=1) != y, w), rel=1e-6)


def test_bad_sample_weights(digits):
    X, y = digits
    trainer = classifier(X[:50], y[:50])
    for w, match in (
        (np.ones(49), r"evaluate: sample_weight must have shape \(50,\)"),
        (-np.ones(50), "evaluate: sample_weight must be finite and >= 0"),
        (np.full(50, np.nan), "finite"),
        (np.zeros(50), "evaluate: sample_weight is 0 for every sample"),
    ):
        with pytest.raises(ValueError, match=match):
            trainer.evaluate(X[:50], y[:50], sample_weight=w)


def test_fit_weighs_validation_as_evaluate_does(digits, rng):
    """validation_split takes the weights of the samples it holds out;
    validation_data takes a third item, their weights."""
    X, y = digits
    w = rng.uniform(0, 2, len(y))
    trainer = classifier(X, y)
    h = trainer.fit(
        X, y, epochs=1, batch_size=64, verbose=0, validation_split=0.25, sample_weight=w
    )
    held = slice(-150, None)
    ref = trainer.evaluate(X[held], y[held], sample_weight=w[held])
    assert h["val_loss"][-1] == pytest.approx(ref["loss"], rel=1e-6)
    assert h["val_accuracy"][-1] == pytest.approx(ref["accuracy"], rel=1e-6)
    h = trainer.fit(
        X[:400], y[:400], epochs=1, verbose=0, validation_data=(X[400:], y[400:], w[400:])
    )
    ref = trainer.evaluate(X[400:], y[400:], sample_weight=w[400:])
    assert h["val_loss"][-1] == pytest.approx(ref["loss"], rel=1e-6)
    assert h["val_loss"][-1] != pytest.approx(trainer.evaluate(X[400:], y[400:])["loss"], rel=1e-4)
    with pytest.raises(ValueError, match="validation_data must be"):
        trainer.fit(X, y, epochs=1, verbose=0, validation_data=(X, y, w, w))
