"""Bagging: an ensemble of networks trained on bootstrap samples beats its average member
on real data; parallel training gives the same members as sequential training."""

import numpy as np
import pytest

import fastnn
from fastnn.ensemble import Bagging, softmax


def log_loss(proba, y):
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, None))))


def mlp(n_in, hidden, n_out, lr, weight_decay=0.0):
    model = fastnn.Sequential(
        fastnn.Dense(n_in, hidden),
        fastnn.ReLU(),
        fastnn.Dense(hidden, hidden),
        fastnn.ReLU(),
        fastnn.Dense(hidden, n_out),
    )
    return fastnn.Trainer(
        model,
        fastnn.losses.CrossEntropyLoss(),
        fastnn.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay),
    )


def build_cancer():
    return mlp(30, 64, 2, 1e-2)  # a high-variance member: bagging pays off


def build_mnist1d():
    return mlp(40, 128, 10, 2e-3)


def standardized(X_train, X_test):
    scaler = fastnn.preprocessing.Standardizer().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def check_beats_members(bag, X_test, y_test):
    members = bag.member_outputs(X_test)
    member_acc = [np.mean(p.argmax(1) == y_test) for p in members]
    member_ll = [log_loss(p, y_test) for p in members]
    proba = bag.predict_proba(X_test)
    np.testing.assert_allclose(proba, np.mean(members, axis=0))
    acc, ll = np.mean(bag.predict(X_test) == y_test), log_loss(proba, y_test)
    assert acc > np.mean(member_acc), (acc, member_acc)
    assert ll < np.mean(member_ll), (ll, member_ll)
    return acc, member_acc


def test_breast_cancer_ensemble_beats_its_average_member():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = fastnn.preprocessing.train_test_split(
        X.astype(np.float32), y, test_size=0.4, stratify=y, seed=0
    )
    X_train, X_test = standardized(X_train, X_test)
    bag = Bagging(build_cancer, n_estimators=5, random_state=0)
    bag.fit(X_train, y_train, epochs=40, batch_size=16)
    acc, _ = check_beats_members(bag, X_test, y_test)
    assert acc > 0.95


def test_mnist1d_ensemble_beats_its_average_member():
    data = pytest.importorskip("mnist1d.data")
    ds = data.make_dataset(data.get_dataset_args())  # generated, no download
    X_train, X_test = standardized(ds["x"].astype(np.float32), ds["x_test"].astype(np.float32))
    bag = Bagging(build_mnist1d, n_estimators=5, random_state=0)
    bag.fit(X_train, ds["y"].astype(np.int64), epochs=15, batch_size=64)
    acc, _ = check_beats_members(bag, X_test, ds["y_test"].astype(np.int64))
    assert acc > 0.57


def test_parallel_members_equal_sequential_ones(rng):
    X = rng.normal(size=(60, 30)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    seq = Bagging(build_cancer, n_estimators=3, random_state=1).fit(X, y, epochs=2)
    par = Bagging(build_cancer, n_estimators=3, random_state=1, n_jobs=2).fit(X, y, epochs=2)
    for a, b in zip(seq.estimators_, par.estimators_):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb
            np.testing.assert_array_equal(va, vb)
    for s, p in zip(seq.estimators_samples_, par.estimators_samples_):
        np.testing.assert_array_equal(s, p)
    assert not np.array_equal(seq.estimators_samples_[0], seq.estimators_samples_[1])


def test_bootstrap_samples_and_member_seeds(rng):
    X = rng.normal(size=(50, 30)).astype(np.float32)
    y = (X[:, 1] > 0).astype(np.int64)
    fastnn.seed(7)
    before = fastnn.rng.get_state()
    bag = Bagging(build_cancer, n_estimators=2, max_samples=0.5, random_state=3)
    bag.fit(X, y, epochs=1)
    assert fastnn.rng.get_state() == before  # the caller's random stream is untouched
    assert [len(i) for i in bag.estimators_samples_] == [25, 25]
    w0, w1 = (m.state_dict()["0.weight"] for m in bag.estimators_)
    assert not np.array_equal(w0, w1)  # members start from different weights
    nob = Bagging(
        build_cancer, n_estimators=1, max_samples=50, bootstrap=False, random_state=3
    ).fit(X, y, epochs=1)
    np.testing.assert_array_equal(nob.estimators_samples_[0], np.arange(50))


def test_regression_averages_outputs(rng):
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], np.float32)

    def build():
        model = fastnn.Sequential(fastnn.Dense(3, 1))
        return fastnn.Trainer(
            model, fastnn.losses.MSELoss(), fastnn.optim.SGD(model.parameters(), lr=0.05)
        )

    bag = Bagging(build, n_estimators=3, random_state=0).fit(X, y, epochs=3, batch_size=8)
    outs = [m.predict(X) for m in bag.estimators_]
    np.testing.assert_allclose(bag.predict(X), np.mean(outs, axis=0))
    with pytest.raises(AttributeError, match="regressors"):
        bag.predict_proba(X)


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        Bagging(3)
    with pytest.raises(ValueError, match="max_samples"):
        Bagging(build_cancer, max_samples=1.5)
    with pytest.raises(ValueError, match="n_estimators"):
        Bagging(build_cancer, n_estimators=0)
    with pytest.raises(RuntimeError, match="fit first"):
        Bagging(build_cancer).predict(np.zeros((2, 30), np.float32))
    with pytest.raises(TypeError, match="Trainer or a Module"):
        Bagging(lambda: 3).fit(np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="exceeds"):
        Bagging(build_cancer, max_samples=9, bootstrap=False).fit(
            np.zeros((4, 30), np.float32), np.zeros(4, np.int64)
        )


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]])
