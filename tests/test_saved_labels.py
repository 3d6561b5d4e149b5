"""A classifier's labels travel with the saved model: fastnn.load restores model.classes_
in their type (strings, integers, booleans), a Trainer on the loaded model predicts and
evaluates in them, and `fastnn predict` prints them."""

import json

import numpy as np
import pytest

import fastnn
from fastnn import cli, io as fio
from fastnn.preprocessing import Standardizer, train_test_split

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


@pytest.fixture(scope="module")
def digits():
    X, y = fastnn.datasets.load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, seed=0)
    sc = Standardizer().fit(X_tr)
    return sc.transform(X_tr).astype(np.float32), sc.transform(X_te).astype(np.float32), y_tr, y_te


def mlp(n_out=10):
    fastnn.seed(0)
    return fastnn.Sequential(fastnn.Dense(64, 32), fastnn.ReLU(), fastnn.Dense(32, n_out))


def trained(X, labels, n_out):
    model = mlp(n_out)
    trainer = fastnn.Trainer(model, "cross_entropy", fastnn.optim.Adam(model.parameters()))
    trainer.fit(X, labels, epochs=8, batch_size=64, verbose=0)
    return model, trainer


@pytest.mark.parametrize(
    "labels_of",
    [lambda y: NAMES[y], lambda y: y >= 5],
    ids=["strings", "booleans"],
)
def test_trainer_labels_come_back_with_load(tmp_path, digits, labels_of):
    X_tr, X_te, y_tr, y_te = digits
    names, test_names = labels_of(y_tr), labels_of(y_te)
    model, trainer = trained(X_tr, names, len(np.unique(names)))
    path = tmp_path / "m.safetensors"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert loaded.classes_.dtype == trainer.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, trainer.classes_)
    again = fastnn.Trainer(loaded, "cross_entropy", fastnn.optim.Adam(loaded.parameters()))
    pred = again.predict_classes(X_te)
    np.testing.assert_array_equal(pred, trainer.predict_classes(X_te))
    assert np.mean(pred == test_names) > 0.85  # the labels, not their indices
    assert again.evaluate(X_te, test_names)["accuracy"] == pytest.approx(
        np.mean(pred == test_names)
    )


def test_integer_labels_of_an_estimator_come_back_with_load(tmp_path, digits, capsys):
    """sklearn's MLPClassifier on labels 10, 20, ..., 100: the saved network answers in
    them after load (Trainer and `fastnn predict`), and evaluates against them."""
    pytest.importorskip("sklearn")
    from fastnn.sklearn import MLPClassifier

    X_tr, X_te, y_tr, y_te = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=15, random_state=0)
    clf.fit(X_tr, 10 * (y_tr + 1))
    path = tmp_path / "clf.safetensors"
    fastnn.save(clf.model_, path)
    meta = fio.read_metadata(path)
    assert meta["classes"] == [str(10 * k) for k in range(1, 11)]
    loaded = fastnn.load(path)
    assert loaded.classes_.dtype.kind == "i"
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    trainer = fastnn.Trainer(loaded, "cross_entropy", fastnn.optim.Adam(loaded.parameters()))
    pred = trainer.predict_classes(X_te)
    np.testing.assert_array_equal(pred, clf.predict(X_te))
    assert trainer.evaluate(X_te, 10 * (y_te + 1))["accuracy"] == pytest.approx(
        clf.score(X_te, 10 * (y_te + 1))
    )
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the classes"):
        trainer.evaluate(X_te[:3], np.array([7, 10, 20]))
    np.savez(tmp_path / "x.npz", X=X_te[:15])
    assert cli.main(["predict", str(path), "--data", str(tmp_path / "x.npz")]) == 0
    assert capsys.readouterr().out.split()[1:] == [str(c) for c in pred[:15]]


def test_cli_trained_integer_classes_load_as_integers(tmp_path, rng):
    X = rng.normal(size=(120, 4))
    y = 3.0 + 2 * (X[:, 0] > 0)  # the classes 3 and 5, as floats in the file
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "d.npz"), "--epochs", "2", "--quiet"]
    assert cli.main(args + ["--hidden", "8", "--out", str(out)]) == 0
    model = fastnn.load(out / "model.safetensors")
    assert model.classes_.dtype.kind == "i" and model.classes_.tolist() == [3, 5]


def test_files_without_a_label_type_and_damaged_labels(tmp_path):
    model = mlp(2)
    path = tmp_path / "m.safetensors"
    fastnn.save(model, path, metadata={"task": "classification", "classes": ["1", "2"]})
    assert fastnn.load(path).classes_.tolist() == ["1", "2"]  # no type recorded: text
    fastnn.save(model, path)
    assert not hasattr(fastnn.load(path), "classes_")  # not a classifier's file
    meta = dict(fio.class_metadata(np.array([1, 2])), classes=["1", "two"])
    fastnn.save(model, path, metadata=meta)
    with pytest.raises(ValueError, match=r"m.safetensors: the 'classes' metadata does not read"):
        fastnn.load(path)
    fastnn.save(model, path, metadata={"task": "classification", "classes": [1, 2]})
    with pytest.raises(ValueError, match="not a list of strings"):
        fastnn.load(path)
    assert json.loads(json.dumps(fio.class_metadata(np.array([True, False])))) == {
        "task": "classification",
        "classes": ["True", "False"],
        "classes_dtype": "|b1",
    }
