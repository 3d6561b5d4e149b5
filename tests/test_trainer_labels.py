"""Trainer: losses by name, class names and integer-valued float labels, probabilities
and class predictions, sample and class weights, and the class names carried into a
saved model and `fastnn predict`."""

import numpy as np
import pytest

import fastnn
from fastnn import cli, losses
from fastnn.preprocessing import Standardizer, train_test_split

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def mlp(n_in=64, n_out=10, dtype=np.float32, seed=0):
    fastnn.seed(seed)
    return fastnn.Sequential(
        fastnn.Dense(n_in, 64, dtype=dtype), fastnn.ReLU(), fastnn.Dense(64, n_out, dtype=dtype)
    )


@pytest.fixture(scope="module")
def digits():
    X, y = fastnn.datasets.load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, seed=0)
    sc = Standardizer().fit(X_tr)
    return sc.transform(X_tr), sc.transform(X_te), y_tr, y_te


def test_loss_by_name():
    model = mlp()
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.Adam(model.parameters()))
    assert isinstance(trainer.loss, losses.CrossEntropyLoss)
    assert [n for n, _ in trainer.metrics] == ["accuracy"]
    t2 = fastnn.Trainer(model, "mse", fastnn.optim.Adam(model.parameters()))
    assert isinstance(t2.loss, losses.MSELoss) and t2.metrics == []
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fastnn.Trainer(model, "hinge", fastnn.optim.Adam(model.parameters()))


def test_class_names_probabilities_and_predictions(digits):
    X_tr, X_te, y_tr, y_te = digits
    model = mlp()
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.Adam(model.parameters()))
    trainer.fit(X_tr, NAMES[y_tr], epochs=15, batch_size=64, verbose=0, validation_split=0.1)
    np.testing.assert_array_equal(trainer.classes_, np.sort(NAMES))
    pred = trainer.predict_classes(X_te)
    assert pred.dtype.kind == "U"
    assert np.mean(pred == NAMES[y_te]) > 0.93
    p = trainer.predict_proba(X_te)
    assert p.shape == (len(X_te), 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(trainer.classes_[p.argmax(axis=1)], pred)
    assert trainer.evaluate(X_te, NAMES[y_te])["accuracy"] > 0.93
    with pytest.raises(ValueError, match="not among the classes"):
        trainer.evaluate(X_te[:3], ["zero", "eleven", "one"])


def test_integer_valued_float_labels_train_as_integers(digits):
    X_tr, _, y_tr, _ = digits
    weights = []
    for labels in (y_tr, y_tr.astype(np.float64)):
        model = mlp()
        trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.Adam(model.parameters()))
        fastnn.seed(1)
        trainer.fit(X_tr, labels, epochs=2, batch_size=64, verbose=0)
        assert trainer.classes_ is None
        weights.append(model[0].weight.data.copy())
    np.testing.assert_array_equal(weights[0], weights[1])
    with pytest.raises(TypeError, match=r"integers or class names, got the float \d+\.5"):
        trainer.fit(X_tr, y_tr + 0.5, epochs=3, verbose=0)


def full_batch_fit(X, y, epochs=5, **fit):
    model = mlp(n_in=X.shape[1], n_out=3, dtype=np.float64)
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.SGD(model.parameters(), lr=0.1))
    trainer.fit(X, y, epochs=epochs, batch_size=10_000, shuffle=False, verbose=0, **fit)
    return model, trainer


def test_sample_weights_count_samples_that_many_times(rng):
    """Full-batch training with integer weights equals training on repeated samples."""
    X = rng.normal(size=(30, 64))
    y = rng.integers(0, 3, 30)
    w = rng.integers(0, 4, 30)
    weighted, tw = full_batch_fit(X, y, sample_weight=w)
    repeated, tr = full_batch_fit(np.repeat(X, w, 0), np.repeat(y, w))
    plain, _ = full_batch_fit(X, y)
    for a, b, c in zip(weighted.parameters(), repeated.parameters(), plain.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)
        assert not np.allclose(a.data, c.data)
    np.testing.assert_allclose(tw.history["loss"], tr.history["loss"], rtol=1e-10)
    # class weights are per-sample weights by label
    cw = {0: 2.0, 1: 0.5, 2: 1.0}
    by_class, _ = full_batch_fit(X, y, class_weight=cw)
    by_sample, _ = full_batch_fit(X, y, sample_weight=np.array([2.0, 0.5, 1.0])[y])
    for a, b in zip(by_class.parameters(), by_sample.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    balanced, _ = full_batch_fit(X, y, class_weight="balanced")
    counts = np.bincount(y)
    by_count, _ = full_batch_fit(X, y, sample_weight=(30 / (3 * counts))[y])
    for a, b in zip(balanced.parameters(), by_count.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


def test_zero_weight_batches_and_bad_weights(rng):
    X = rng.normal(size=(40, 64))
    y = rng.integers(0, 3, 40)
    w = np.ones(40)
    w[:20] = 0.0  # the first two batches of 10 weigh nothing
    model = mlp(n_out=3)
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.Adam(model.parameters()))
    trainer.fit(X, y, epochs=2, batch_size=10, shuffle=False, verbose=0, sample_weight=w)
    assert np.isfinite(trainer.history["loss"]).all()
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(40,\)"):
        trainer.fit(X, y, epochs=3, verbose=0, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="unknown class 7"):
        trainer.fit(X, y, epochs=3, verbose=0, class_weight={7: 1.0})
    reg = fastnn.Trainer(mlp(n_out=1), "mse", fastnn.optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        reg.fit(X, X[:, 0], epochs=1, verbose=0, class_weight="balanced")


def test_binary_cross_entropy_probabilities(rng):
    X = rng.normal(size=(400, 5))
    y = (X[:, :2] > 0).astype(np.float32)  # two independent binary targets
    model = mlp(n_in=5, n_out=2)
    trainer = fastnn.Trainer(model, "bce", fastnn.optim.Adam(model.parameters(), lr=1e-2))
    trainer.fit(X, y, epochs=30, batch_size=32, verbose=0)
    p = trainer.predict_proba(X)
    assert p.shape == (400, 2) and (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-model.predict(X).astype(np.float64))))
    assert np.mean(trainer.predict_classes(X) == y) > 0.95
    reg = fastnn.Trainer(mlp(n_in=5, n_out=1), "mse", fastnn.optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="needs a classification loss"):
        reg.predict_proba(X)


def test_class_names_reach_saved_model_and_predict(tmp_path, digits, capsys):
    X_tr, X_te, y_tr, _ = digits
    model = mlp()
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.Adam(model.parameters()))
    trainer.fit(X_tr, NAMES[y_tr], epochs=5, batch_size=64, verbose=0)
    path = tmp_path / "m.safetensors"
    fastnn.save(model, path)
    meta = fastnn.io.read_metadata(path)
    assert meta["task"] == "classification" and meta["classes"] == sorted(NAMES.tolist())
    np.savez(tmp_path / "x.npz", X=X_te[:20])
    assert cli.main(["predict", str(path), "--data", str(tmp_path / "x.npz")]) == 0
    lines = capsys.readouterr().out.split()
    assert lines[0] == "prediction"
    assert lines[1:] == trainer.predict_classes(X_te[:20]).tolist()


def test_integer_classes_print_as_integers(tmp_path, rng, capsys):
    """Integer-valued float labels (an NPZ's y, say) are integer classes everywhere: the
    training summary, the saved class names and fastnn predict's answers."""
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(np.float64) + 2 * (X[:, 1] > 0)  # 0.0 .. 3.0
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(tmp_path / "d.npz"),
                "--epochs",
                "2",
                "--quiet",
                "--hidden",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "training counts 0: " in text and "0.0" not in text.split("training counts")[1][:40]
    model_file = out / "model.safetensors"
    assert fastnn.io.read_metadata(model_file)["classes"] == ["0", "1", "2", "3"]
    np.savez(tmp_path / "x.npz", X=X[:10])
    assert cli.main(["predict", str(model_file), "--data", str(tmp_path / "x.npz")]) == 0
    answers = capsys.readouterr().out.split()[1:]
    assert set(answers) <= {"0", "1", "2", "3"}
