"""Losses: values and gradients against NumPy and central finite differences, the
reductions, label smoothing, label dtypes, fresh gradients, and clear errors."""

import re

import numpy as np
import pytest

from fastnn.losses import CrossEntropyLoss, L1Loss, MSELoss


def xent_ref(z, labels, smoothing=0.0, reduction="mean"):
    """Cross-entropy with label smoothing (torch's definition) and its gradient."""
    z = z.astype(np.float64)
    n, k = z.shape
    m = z.max(1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(1, keepdims=True))
    target = np.full((n, k), smoothing / k)
    target[np.arange(n), labels] += 1 - smoothing
    rows = -(target * logp).sum(1)
    grad = np.exp(logp) - target
    if reduction == "mean":
        return rows.mean(), grad / n
    return rows.sum(), grad


def loss_tol(dtype):
    return dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ CrossEntropyLoss


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_reference(rng, dtype, reduction, smoothing, label_dtype):
    n, k = 37, 10
    z = rng.normal(0, 3, (n, k)).astype(dtype)
    labels = rng.integers(0, k, n).astype(label_dtype)
    loss_fn = CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction)
    loss = loss_fn(z, labels)
    assert type(loss) is float
    ref, gref = xent_ref(z, labels, smoothing, reduction)
    np.testing.assert_allclose(loss, ref, **loss_tol(dtype))
    g = loss_fn.backward()
    assert g.dtype == dtype and g.shape == z.shape
    t = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g, gref, **t)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_finite_differences(rng, num_grad, fd_tol, reduction, smoothing):
    z = rng.normal(0, 2, (6, 5))
    labels = np.array([0, 4, 2, 2, 1, 3])
    loss_fn = CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction)
    loss_fn(z, labels)
    g = loss_fn.backward()
    ng = num_grad(lambda zz: loss_fn(zz, labels), z.copy())
    np.testing.assert_allclose(g, ng, **fd_tol)


def test_cross_entropy_known_values():
    loss_fn = CrossEntropyLoss()
    # uniform logits: loss = log(classes)
    assert loss_fn(np.zeros((4, 7)), [0, 1, 2, 6]) == pytest.approx(np.log(7), rel=1e-12)
    # shifting a row's logits changes nothing
    z = np.array([[1.0, 2.0, 3.0]])
    a = loss_fn(z, [2])
    assert loss_fn(z + 1000.0, [2]) == pytest.approx(a, rel=1e-12)
    assert a == pytest.approx(-np.log(np.exp(3) / np.exp([1, 2, 3]).sum()), rel=1e-12)


def test_cross_entropy_large_logits_finite(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype)
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    loss = loss_fn(z, [1, 1])
    g = loss_fn.backward()
    assert np.isfinite(loss) and np.isfinite(g).all()
    ref, gref = xent_ref(z, np.array([1, 1]), 0.1)
    np.testing.assert_allclose(loss, ref, rtol=1e-9)
    np.testing.assert_allclose(g, gref, rtol=1e-5, atol=1e-7)


def test_cross_entropy_labels_any_layout(rng):
    z = rng.normal(size=(6, 4))
    labels = np.array([[3, 0], [1, 9], [2, 9], [0, 9], [3, 9], [1, 9]])[:, 0]  # strided
    assert not labels.flags.c_contiguous
    loss_fn = CrossEntropyLoss()
    a = loss_fn(z, labels)
    assert a == loss_fn(z, np.ascontiguousarray(labels))
    assert a == loss_fn(z, labels.tolist())
    assert a == loss_fn(np.asfortranarray(z), labels)


# ------------------------------------------------------------------------ regression

REGRESSION = {
    "mse": (MSELoss, lambda d: d**2, lambda d: 2 * d),
    "l1": (L1Loss, np.abs, np.sign),
}


@pytest.mark.parametrize("shape", [(1,), (13,), (9, 1), (8, 3), (4, 2, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_reference(rng, dtype, name, reduction, shape):
    cls, f, df = REGRESSION[name]
    pred = rng.normal(size=shape).astype(dtype)
    target = rng.normal(size=shape).astype(dtype)
    target.reshape(-1)[::3] = pred.reshape(-1)[::3]  # exact ties: sign(0) = 0
    loss_fn = cls(reduction=reduction)
    loss = loss_fn(pred, target)
    assert type(loss) is float
    d = (pred - target).astype(np.float64)
    n = pred.size if reduction == "mean" else 1
    np.testing.assert_allclose(loss, f(d).sum() / n, **loss_tol(dtype))
    g = loss_fn.backward()
    assert g.dtype == dtype and g.shape == pred.shape
    t = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g, df(d) / n, **t)
    assert (g.reshape(-1)[::3] == 0).all()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_gradient_finite_differences(rng, num_grad, fd_tol, name, reduction):
    pred = rng.normal(size=(5, 3))
    target = pred + rng.choice([-1, 1], pred.shape) * rng.uniform(0.1, 1, pred.shape)
    loss_fn = REGRESSION[name][0](reduction=reduction)
    loss_fn(pred, target)
    g = loss_fn.backward()
    ng = num_grad(lambda p: loss_fn(p, target), pred.copy())
    np.testing.assert_allclose(g, ng, **fd_tol)


@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_column_prediction_with_flat_target(rng, dtype, name):
    cls = REGRESSION[name][0]
    pred = rng.normal(size=(10, 1)).astype(dtype)
    target = rng.normal(size=10)
    loss_fn = cls()
    a = loss_fn(pred, target)
    ga = loss_fn.backward()
    b = loss_fn(pred, target.reshape(10, 1))
    gb = loss_fn.backward()
    assert a == b
    np.testing.assert_array_equal(ga, gb)
    assert ga.shape == (10, 1)
    # a strided (N,) target (a column of a bigger array) too
    big = np.stack([target, np.zeros(10)], axis=1)
    assert loss_fn(pred, big[:, 0]) == a


def test_regression_integer_and_strided_inputs():
    pred = np.arange(12.0).reshape(3, 4)[:, ::2]  # strided float64
    target = np.array([[1, 1], [0, 9], [8, 8]])  # int
    loss_fn = MSELoss()
    a = loss_fn(pred, target)
    assert a == pytest.approx(np.mean((pred - target) ** 2), rel=1e-14)
    assert loss_fn.backward().dtype == np.float64


# --------------------------------------------------------------------------- backward


@pytest.mark.parametrize(
    "make,args",
    [
        (CrossEntropyLoss, lambda r: (r.normal(size=(5, 3)), r.integers(0, 3, 5))),
        (MSELoss, lambda r: (r.normal(size=(5, 3)), r.normal(size=(5, 3)))),
        (L1Loss, lambda r: (r.normal(size=(5, 3)), r.normal(size=(5, 3)))),
    ],
    ids=["xent", "mse", "l1"],
)
def test_backward_returns_fresh_copy(rng, make, args):
    loss_fn = make()
    loss_fn(*args(rng))
    g1 = loss_fn.backward()
    g1_copy = g1.copy()
    g1b = loss_fn.backward()
    assert not np.shares_memory(g1, g1b)
    g1b[...] = np.nan  # writing into a returned gradient does not leak
    np.testing.assert_array_equal(loss_fn.backward(), g1_copy)
    loss_fn(*args(rng))  # a second call does not change the first gradient
    g2 = loss_fn.backward()
    np.testing.assert_array_equal(g1, g1_copy)
    assert not np.array_equal(g1, g2)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before"):
        MSELoss().backward()


# -------------------------------------------------------------------------- bad input


def raises(exc, *fragments):
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(exc, match=f"(?s){pattern}")


def test_cross_entropy_bad_labels():
    z = np.zeros((4, 3))
    loss_fn = CrossEntropyLoss()
    with raises(ValueError, "CrossEntropyLoss", "label -1", "3 classes"):
        loss_fn(z, [0, -1, 2, 1])
    with raises(ValueError, "CrossEntropyLoss", "label 3", "3 classes"):
        loss_fn(z, [0, 1, 2, 3])
    with raises(ValueError, "CrossEntropyLoss", "label 7", "3 classes"):
        loss_fn(z, np.array([0, 7, 2, 1], np.uint64))
    with raises(TypeError, "CrossEntropyLoss", "integers", "float64"):
        loss_fn(z, [0.0, 1.0, 2.0, 1.0])
    with raises(TypeError, "CrossEntropyLoss", "integers", "bool"):
        loss_fn(z, [True, False, True, False])
    with raises(TypeError, "CrossEntropyLoss", "numeric", "<U1"):
        loss_fn(z, ["a", "b", "c", "a"])
    with raises(ValueError, "CrossEntropyLoss", "(4,)", "(3,)"):
        loss_fn(z, [0, 1, 2])
    with raises(ValueError, "CrossEntropyLoss", "(4,)", "(4, 1)"):
        loss_fn(z, np.zeros((4, 1), int))
    assert loss_fn._grad is None  # nothing was computed


def test_cross_entropy_bad_logits():
    loss_fn = CrossEntropyLoss()
    with raises(ValueError, "CrossEntropyLoss input", "(N, C)", "(4,)"):
        loss_fn(np.zeros(4), [0, 1, 2, 3])
    with raises(ValueError, "CrossEntropyLoss", "labels of shape (2, 2)", "(2,)"):
        loss_fn(np.zeros((2, 2, 2)), [0, 1])
    with raises(ValueError, "CrossEntropyLoss", "empty batch"):
        loss_fn(np.zeros((0, 3)), np.zeros(0, int))
    with raises(TypeError, "CrossEntropyLoss input", "complex"):
        loss_fn(np.zeros((2, 3), complex), [0, 1])


def test_cross_entropy_bad_arguments():
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropyLoss(reduction="avg")


@pytest.mark.parametrize("cls", [MSELoss, L1Loss])
def test_regression_bad_input(cls):
    name = cls.__name__
    loss_fn = cls()
    with raises(ValueError, name, "(4, 2)", "(4, 3)"):
        loss_fn(np.zeros((4, 3)), np.zeros((4, 2)))
    with raises(ValueError, name, "(5,)", "(4, 1)"):
        loss_fn(np.zeros((4, 1)), np.zeros(5))
    with raises(ValueError, name, "(4, 1)", "(4,)"):
        loss_fn(np.zeros(4), np.zeros((4, 1)))
    with raises(ValueError, name, "(4,)", "(4, 2)"):
        loss_fn(np.zeros((4, 2)), np.zeros(4))  # (N,) only fits an (N, 1) prediction
    with raises(ValueError, name, "empty"):
        loss_fn(np.zeros((0, 2)), np.zeros((0, 2)))
    with raises(TypeError, name, "target", "object"):
        loss_fn(np.zeros(2), np.array([None, 1.0]))
    with raises(TypeError, name, "input", "complex"):
        loss_fn(np.zeros(2, complex), np.zeros(2))
    with pytest.raises(ValueError, match="reduction"):
        cls(reduction="avg")
