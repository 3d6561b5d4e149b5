"""fastnn.sklearn: scikit-learn's estimator checks, Pipeline / GridSearchCV /
cross_val_score, digits accuracy, labels of any type, partial_fit, warm_start,
sample weights, early stopping, pickling, and clear errors."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = fastnn.datasets.load_digits()
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_digits_pipeline_accuracy(digits):
    X_train, X_test, y_train, y_test = digits
    clf = make_pipeline(StandardScaler(), MLPClassifier(random_state=0))
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    mlp = clf[-1]
    assert mlp.n_iter_ == len(mlp.loss_curve_) >= 2
    assert mlp.loss_curve_[-1] < mlp.loss_curve_[0] / 5
    np.testing.assert_array_equal(mlp.classes_, np.arange(10))
    p = clf.predict_proba(X_test)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X_test), mlp.classes_[p.argmax(axis=1)])


def test_grid_search_and_cross_val_score(digits):
    X_train, _, y_train, _ = digits
    X, y = X_train[:600], y_train[:600]
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__learning_rate_init": [1e-4, 3e-3]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert search.best_params_ == {"mlpclassifier__learning_rate_init": 3e-3}
    assert search.best_score_ > 0.85
    assert scores.shape == (3,) and scores.min() > 0.85


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"]),
        np.array([-3, 7, 12]),
        np.array([0.0, 1.0, 2.0]),
        np.array([True, False]),
    ],
    ids=["str", "int", "float", "bool"],
)
def test_labels_of_any_type(rng, labels):
    centers = 6.0 * np.eye(5)[: len(labels)]
    idx = rng.integers(0, len(labels), 300)
    X = centers[idx] + rng.normal(size=(300, 5))
    y = labels[idx]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = clf.predict(X)
    assert pred.dtype == y.dtype
    assert np.mean(pred == y) > 0.9
    assert clf.predict_proba(X).shape == (300, len(labels))


def test_regressor_fits_a_smooth_function(rng):
    X = rng.uniform(-2, 2, (800, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    reg = MLPRegressor(
        hidden_layer_sizes=(64, 64), max_iter=300, random_state=0, learning_rate_init=3e-3
    ).fit(X[:600], y[:600])
    assert reg.predict(X[600:]).shape == (200,)
    assert reg.score(X[600:], y[600:]) > 0.9
    Y = np.column_stack([y, -y])
    reg2 = MLPRegressor(hidden_layer_sizes=(32,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert reg2.fit(X, Y).predict(X).shape == (800, 2)


def test_partial_fit_and_warm_start(rng, digits):
    X_train, X_test, y_train, y_test = digits
    sc = StandardScaler().fit(X_train)
    Xs, Xt = sc.transform(X_train), sc.transform(X_test)
    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(Xs[:100], y_train[:100])
    clf.partial_fit(Xs[:100], y_train[:100], classes=np.arange(10))
    for _ in range(15):
        clf.partial_fit(Xs, y_train)
    assert clf.n_iter_ == 16 and len(clf.loss_curve_) == 16
    assert clf.score(Xt, y_test) > 0.9
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(Xs[:5], np.full(5, 11))

    warm = MLPClassifier(max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(Xs, y_train)
        first = [w.copy() for w in warm.coefs_]
        warm.fit(Xs, y_train)
    assert len(warm.loss_curve_) == 10 and warm.n_iter_ == 10
    assert not np.array_equal(first[0], warm.coefs_[0])
    assert warm.loss_curve_[5] < warm.loss_curve_[0]


def test_sample_weight_zero_and_integer_weights(rng):
    """Integer weights train the model repeated samples train (full batches, float64)."""
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    sw = rng.integers(0, 4, 40)
    kw = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=0, alpha=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
        b = MLPClassifier(**kw).fit(np.repeat(X, sw, 0), np.repeat(y, sw))
        c = MLPClassifier(**kw).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9)
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X), rtol=1e-3)
    with pytest.raises(ValueError, match="non-zero"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(40))


def test_early_stopping_keeps_the_best_validation_score(digits):
    X_train, _, y_train, _ = digits
    clf = make_pipeline(
        StandardScaler(),
        MLPClassifier(early_stopping=True, n_iter_no_change=10, max_iter=200, random_state=0),
    )
    clf.fit(X_train, y_train)
    mlp = clf[-1]
    assert len(mlp.validation_scores_) == mlp.n_iter_ < 200
    assert mlp.best_validation_score_ == max(mlp.validation_scores_) > 0.9


def test_fastnn_options_build_the_network(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(
        hidden_layer_sizes=(64, 32),
        batch_norm=True,
        dropout=0.2,
        solver="adamw",
        activation="gelu",
        n_threads=1,
        max_iter=40,
        dtype="float32",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(StandardScaler().fit_transform(X_train), y_train)
    names = [type(m).__name__ for m in clf.model_]
    assert names == [
        "Dense",
        "BatchNorm1d",
        "GELU",
        "Dropout",
        "Dense",
        "BatchNorm1d",
        "GELU",
        "Dropout",
        "Dense",
    ]
    assert clf.model_.dtype == np.float32
    assert [c.shape for c in clf.coefs_] == [(64, 64), (64, 32), (32, 10)]
    assert type(clf._trainer.optimizer).__name__ == "AdamW"


def test_pickle_round_trip(digits):
    X_train, X_test, y_train, _ = digits
    clf = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    blob = pickle.dumps(clf)
    assert b"fastnn.layers" not in blob  # the network travels as safetensors bytes
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(X_test), clf.predict_proba(X_test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        back[-1].partial_fit(StandardScaler().fit_transform(X_train), y_train)  # still trains


def test_convergence_and_bad_parameters(rng):
    X = rng.normal(size=(50, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\)"):
        MLPClassifier(max_iter=2).fit(X, y)
    clf = MLPClassifier(tol=10.0, n_iter_no_change=2, max_iter=100).fit(X, y)
    assert clf.n_iter_ == 4  # the best epoch, then n_iter_no_change + 1 without progress
    with pytest.raises(ValueError, match="solver must be .*lbfgs is not offered"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(10, 0)).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPRegressor(activation="swish").fit(X, X[:, 0])
    with pytest.warns(UserWarning, match="clipped"):
        MLPRegressor(batch_size=500, max_iter=3, tol=100).fit(X, X[:, 0])
