"""Layers: forward and backward against NumPy references, every gradient against
central finite differences in float64, fused Dense+activation equal to the unfused
computation, fresh output arrays, any input layout, and clear errors for bad input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import (
    BatchNorm1d,
    Dense,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from helpers import fd_check

HYP = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

ACTIVATIONS = {
    "relu": (ReLU, lambda x: np.where(x < 0, 0.0, x), lambda x: (x > 0) * 1.0),
    "leaky": (
        lambda: LeakyReLU(),
        lambda x: np.where(x < 0, 0.01 * x, x),
        lambda x: np.where(x > 0, 1.0, 0.01),
    ),
    "leaky_neg": (
        lambda: LeakyReLU(negative_slope=-0.3),
        lambda x: np.where(x < 0, -0.3 * x, x),
        lambda x: np.where(x > 0, 1.0, -0.3),
    ),
    "sigmoid": (
        Sigmoid,
        lambda x: 1 / (1 + np.exp(-x)),
        lambda x: 1 / (1 + np.exp(-x)) * (1 - 1 / (1 + np.exp(-x))),
    ),
    "tanh": (Tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "identity": (Identity, lambda x: x, lambda x: np.ones_like(x)),
}


def away_from_kinks(x, margin=1e-2):
    """x with entries near 0 pushed out to +-margin (finite differences across a kink
    are meaningless)."""
    x = np.array(x, dtype=np.float64)
    near = np.abs(x) < margin
    x[near] = np.where(x[near] < 0, -margin, margin) * 2
    return x


def make_dense(n_in, n_out, dtype, bias=True, seed=0):
    fastnn.seed(seed)
    return Dense(n_in, n_out, bias=bias, dtype=dtype)


# ----------------------------------------------------------------------------- Dense


def dense_ref(layer, x):
    W = layer.weight.data.astype(np.float64)
    y = x.astype(np.float64) @ W.T
    if layer.bias is not None:
        y = y + layer.bias.data
    return y


shapes = st.tuples(st.integers(1, 9), st.integers(1, 70), st.integers(1, 70))


@HYP
@given(shape=shapes, bias=st.booleans())
def test_dense_forward_backward_reference(dtype, tol, shape, bias):
    batch, n_in, n_out = shape
    layer = make_dense(n_in, n_out, dtype, bias)
    assert layer.weight.data.shape == (n_out, n_in)
    assert layer.weight.dtype == dtype
    rng = np.random.default_rng(batch * 1000 + n_in)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    y = layer.forward(x)
    assert y.shape == (batch, n_out) and y.dtype == dtype
    r = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, dense_ref(layer, x), **r)
    g = rng.standard_normal((batch, n_out)).astype(dtype)
    gW0 = rng.standard_normal((n_out, n_in)).astype(dtype)
    layer.weight.grad = gW0  # gradients accumulate into .grad
    if bias:
        layer.bias.grad = 0.0 * layer.bias.grad
    gx = layer.backward(g)
    g64, x64 = g.astype(np.float64), x.astype(np.float64)
    np.testing.assert_allclose(gx, g64 @ layer.weight.data.astype(np.float64), **r)
    np.testing.assert_allclose(layer.weight.grad, gW0 + g64.T @ x64, **r)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, g64.sum(0), **r)


@HYP
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 7)), bias=st.booleans())
def test_dense_gradients_finite_differences(num_grad, fd_tol, shape, bias):
    batch, n_in, n_out = shape
    layer = make_dense(n_in, n_out, np.float64, bias)
    rng = np.random.default_rng(batch + 10 * n_in + 100 * n_out)
    x = rng.standard_normal((batch, n_in))
    gx, grads = fd_check(layer, x, num_grad, fd_tol, rng)
    assert set(grads) == ({"weight", "bias"} if bias else {"weight"})


def test_dense_thread_independent(use_threads):
    x = np.random.default_rng(0).standard_normal((128, 784)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((128, 512)).astype(np.float32)
    out = []
    for nt in (1, 2):
        with use_threads(nt):
            layer = make_dense(784, 512, np.float32)
            out.append((layer.forward(x), layer.backward(g), layer.weight.grad.copy()))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_dense_linear_alias_and_default_init():
    assert Linear is Dense
    fastnn.seed(1)
    layer = Dense(100, 30)
    bound = 1 / np.sqrt(100)
    assert layer.weight.dtype == np.float32
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.std() > bound / 3  # not all zero / degenerate


# ----------------------------------------------------------------------- activations


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_forward_backward_reference(rng, dtype, tol, name):
    make, f, df = ACTIVATIONS[name]
    layer = make()
    x = rng.normal(0, 3, (13, 70)).astype(dtype)
    x[0, :5] = [0.0, 50.0, -50.0, 1e4, -1e4]
    y = layer.forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = f(x64)
        dref = np.nan_to_num(df(x64))
    np.testing.assert_allclose(y, ref, **tol)
    g = rng.standard_normal(x.shape).astype(dtype)
    gx = layer.backward(g)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, g * dref, rtol=tol["rtol"], atol=1e-6)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradients_finite_differences(rng, num_grad, fd_tol, name):
    layer = ACTIVATIONS[name][0]()
    x = away_from_kinks(rng.normal(0, 2, (5, 4)))
    fd_check(layer, x, num_grad, fd_tol, rng)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_any_shape_and_nan(name):
    layer = ACTIVATIONS[name][0]()
    x = np.array([[[1.0, np.nan], [-2.0, 0.5]]])  # 3-D
    y = layer.forward(x)
    assert y.shape == x.shape and y.dtype == np.float64
    assert np.isnan(y[0, 0, 1]) and np.isfinite(np.delete(y.ravel(), 1)).all()
    x1 = np.linspace(-2, 2, 9)  # 1-D
    np.testing.assert_allclose(layer.forward(x1), ACTIVATIONS[name][1](x1), rtol=1e-12)


def test_relu_and_leaky_derivative_at_zero():
    x = np.zeros((2, 3))
    g = np.ones((2, 3))
    relu = ReLU()
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(g), 0.0)  # ReLU'(0) = 0
    leaky = LeakyReLU(negative_slope=0.2)
    leaky.forward(x)
    np.testing.assert_array_equal(leaky.backward(g), 0.2)  # LeakyReLU'(0) = slope


def test_leaky_relu_negative_slope_value():
    layer = LeakyReLU(negative_slope=-0.5)
    y = layer.forward(np.array([[-4.0, 2.0]]))
    np.testing.assert_array_equal(y, [[2.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[1.0, 1.0]])), [[-0.5, 1.0]])


def test_activation_integer_input_computes_in_float32():
    y = Sigmoid().forward(np.array([[0, 1], [-1, 2]]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-np.array([[0, 1], [-1, 2]]))), rtol=1e-6)


# ------------------------------------------------------------------------ BatchNorm1d


def bn_train_ref(x, gamma, beta, eps):
    x = x.astype(np.float64)
    mean, var = x.mean(0), x.var(0)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta, mean, var


@HYP
@given(shape=st.tuples(st.integers(2, 12), st.integers(1, 70)))
def test_batchnorm_train_forward_backward_reference(dtype, shape):
    batch, n = shape
    rng = np.random.default_rng(batch * 100 + n)
    bn = BatchNorm1d(n, dtype=dtype)
    bn.weight.data = rng.uniform(0.5, 2, n)
    bn.bias.data = rng.normal(0, 1, n)
    x = (3 + 2 * rng.standard_normal((batch, n))).astype(dtype)
    y = bn.forward(x)
    assert y.dtype == dtype
    ref, mean, var = bn_train_ref(x, bn.weight.data, bn.bias.data, bn.eps)
    invstd = 1 / np.sqrt(var + bn.eps)
    gamma = bn.weight.data.astype(np.float64)
    # y = x * (gamma invstd) + shift: round-off relative to the size of x * gamma * invstd
    u = 8 * np.finfo(dtype).eps if dtype == np.float32 else 1e-12
    scale = np.abs(x) * gamma * invstd + np.abs(bn.bias.data)
    assert (np.abs(y - ref) <= u * scale + u).all()
    r = dict(rtol=1e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, **r)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var * batch / (batch - 1), **r)
    assert int(bn.num_batches_tracked) == 1
    # backward against the closed form
    g = rng.standard_normal((batch, n)).astype(dtype)
    bn.zero_grad()
    gx = bn.backward(g)
    g64 = g.astype(np.float64)
    xhat = (x.astype(np.float64) - mean) * invstd
    ref_gx = gamma * invstd * (g64 - g64.mean(0) - xhat * (g64 * xhat).mean(0))
    u = 1e-5 if dtype == np.float32 else 1e-12
    # x - mean loses relative precision when a column's spread is small next to its
    # values (x ~ 3, spread ~ 1e-3 in a batch of 2): the bound grows with |x| invstd
    gscale = gamma * invstd * (np.abs(g64).max(0) + 1) * (1 + np.abs(x).max(0) * invstd)
    assert (np.abs(gx - ref_gx) <= u * gscale).all()
    sums = batch * (np.abs(g64).max(0) + 1)
    assert (
        np.abs(bn.weight.grad - (g64 * xhat).sum(0)) <= u * sums * (1 + np.abs(xhat).max(0))
    ).all()
    assert (np.abs(bn.bias.grad - g64.sum(0)) <= u * sums).all()


@HYP
@given(
    shape=st.tuples(st.integers(2, 6), st.integers(1, 5)),
    mode=st.sampled_from(["train", "eval", "noaffine", "notrack_eval"]),
)
def test_batchnorm_gradients_finite_differences(num_grad, fd_tol, shape, mode):
    batch, n = shape
    rng = np.random.default_rng(batch * 10 + n)
    kw = dict(affine=mode != "noaffine", track_running_stats=mode != "notrack_eval")
    bn = BatchNorm1d(n, dtype=np.float64, **kw)
    if bn.affine:
        bn.weight.data = rng.uniform(0.5, 2, n)
        bn.bias.data = rng.normal(0, 1, n)
    if bn.track_running_stats:
        bn.running_mean[:] = rng.normal(0, 1, n)
        bn.running_var[:] = rng.uniform(0.5, 2, n)
    if mode in ("eval", "notrack_eval"):
        bn.eval()
    x = rng.standard_normal((batch, n)) * 2 + 1
    _, grads = fd_check(bn, x, num_grad, fd_tol, rng)
    assert set(grads) == ({"weight", "bias"} if bn.affine else set())


def test_batchnorm_eval_uses_running_stats(rng, dtype):
    bn = BatchNorm1d(4, eps=1e-3, dtype=dtype)
    bn.weight.data = [1.0, 2.0, 0.5, -1.0]
    bn.bias.data = [0.0, 1.0, -1.0, 0.5]
    bn.running_mean[:] = [1.0, -1.0, 0.0, 2.0]
    bn.running_var[:] = [4.0, 1.0, 0.25, 2.0]
    bn.eval()
    x = rng.standard_normal((1, 4)).astype(dtype)  # a batch of 1 is fine in eval
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    y = bn.forward(x)
    ref = (x - rm) / np.sqrt(rv.astype(np.float64) + 1e-3) * bn.weight.data + bn.bias.data
    np.testing.assert_allclose(y, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(bn.running_mean, rm)  # eval does not update
    np.testing.assert_array_equal(bn.running_var, rv)
    assert int(bn.num_batches_tracked) == 0
    g = rng.standard_normal((1, 4)).astype(dtype)
    gx = bn.backward(g)
    np.testing.assert_allclose(
        gx,
        g * bn.weight.data / np.sqrt(rv.astype(np.float64) + 1e-3),
        rtol=1e-5 if dtype == np.float32 else 1e-12,
    )


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_running_stats_over_batches(rng, momentum):
    bn = BatchNorm1d(3, momentum=momentum, dtype=np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    means, uvars = [], []
    for k in range(1, 5):
        x = rng.normal(k, k, (6 + k, 3))
        bn.forward(x)
        m, uv = x.mean(0), x.var(0, ddof=1)
        means.append(m)
        uvars.append(uv)
        factor = 1.0 / k if momentum is None else momentum
        rm = (1 - factor) * rm + factor * m
        rv = (1 - factor) * rv + factor * uv
        np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12)
        assert int(bn.num_batches_tracked) == k
    if momentum is None:  # cumulative moving average
        np.testing.assert_allclose(bn.running_mean, np.mean(means, 0), rtol=1e-12)
        np.testing.assert_allclose(bn.running_var, np.mean(uvars, 0), rtol=1e-12)


def test_batchnorm_affine_false_has_no_parameters(rng):
    bn = BatchNorm1d(5, affine=False, dtype=np.float64)
    assert bn.parameters() == []
    assert bn.weight is None and bn.bias is None
    x = rng.normal(2, 3, (8, 5))
    y = bn.forward(x)
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    assert set(bn.state_dict()) == {"running_mean", "running_var", "num_batches_tracked"}


def test_batchnorm_no_running_stats_uses_batch_stats_in_eval(rng):
    bn = BatchNorm1d(5, track_running_stats=False, dtype=np.float64)
    assert bn.running_mean is None and bn.running_var is None
    x = rng.normal(2, 3, (8, 5))
    y_train = bn.forward(x)
    bn.eval()
    y_eval = bn.forward(x)
    np.testing.assert_allclose(y_eval, y_train, rtol=1e-12)
    np.testing.assert_allclose(y_eval, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    assert set(bn.state_dict()) == {"weight", "bias"}


def test_batchnorm_astype_float64(rng):
    bn = BatchNorm1d(3)
    bn.forward(rng.standard_normal((4, 3)).astype(np.float32))
    bn.astype(np.float64)
    assert bn.running_mean.dtype == np.float64 and bn.weight.dtype == np.float64
    y = bn.forward(rng.standard_normal((4, 3)).astype(np.float32))
    assert y.dtype == np.float64


# ---------------------------------------------------------------------------- Dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_train_forward_backward(dtype, p):
    fastnn.seed(11)
    layer = Dropout(p)
    n = 100_000
    x = np.random.default_rng(0).uniform(1, 2, (100, n // 100)).astype(dtype)  # no zeros
    y = layer.forward(x)
    assert y.dtype == dtype
    kept = y != 0
    scale = dtype.type(1 / (1 - p))
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    dropped = n - kept.sum()
    assert abs(dropped - n * p) <= 5 * np.sqrt(n * p * (1 - p))
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    gx = layer.backward(g)
    np.testing.assert_array_equal(gx[kept], g[kept] * scale)  # the forward's mask
    assert (gx[~kept] == 0).all()


def test_dropout_eval_and_p_zero_are_identity(rng, dtype):
    x = rng.standard_normal((7, 9)).astype(dtype)
    g = rng.standard_normal((7, 9)).astype(dtype)
    for layer in (Dropout(0.5).eval(), Dropout(0.0)):
        y = layer.forward(x)
        np.testing.assert_array_equal(y, x)
        assert not np.shares_memory(y, x)
        gx = layer.backward(g)
        np.testing.assert_array_equal(gx, g)
        assert not np.shares_memory(gx, g)


def test_dropout_reproducible_under_seed_and_fresh_masks(rng):
    x = rng.standard_normal((50, 40))
    layer = Dropout(0.5)
    fastnn.seed(123)
    a, b = layer.forward(x), layer.forward(x)
    fastnn.seed(123)
    a2, b2 = layer.forward(x), layer.forward(x)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)
    assert not np.array_equal(a != 0, b != 0)  # a new mask every call
    fastnn.seed(124)
    assert not np.array_equal(layer.forward(x) != 0, a != 0)


def test_dropout_thread_independent(rng, use_threads):
    x = rng.standard_normal((300, 200)).astype(np.float32)
    out = []
    for nt in (1, 2):
        with use_threads(nt):
            fastnn.seed(77)
            layer = Dropout(0.3)
            y = layer.forward(x)
            out.append((y, layer.backward(x)))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_dropout_gradient_finite_differences(rng, num_grad, fd_tol):
    fd_check(
        Dropout(0.4),
        rng.standard_normal((6, 5)),
        num_grad,
        fd_tol,
        rng,
        before=lambda: fastnn.seed(5),
    )


# ------------------------------------------------------------- Sequential and fusion


def build_mlp(dtype=np.float64):
    fastnn.seed(3)
    return Sequential(
        Dense(6, 8, dtype=dtype),
        BatchNorm1d(8, dtype=dtype),
        ReLU(),
        Dropout(0.3),
        Dense(8, 7, dtype=dtype),
        LeakyReLU(0.1),
        Dense(7, 5, dtype=dtype),
        Tanh(),
        Dense(5, 4, dtype=dtype),
        Sigmoid(),
        Dense(4, 3, dtype=dtype),
    )


def test_sequential_forward_backward_reference(rng):
    model = build_mlp()
    x = rng.standard_normal((9, 6))
    fastnn.seed(9)
    y = model.forward(x)
    g = rng.standard_normal(y.shape)
    model.zero_grad()
    gx = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    # the same computation layer by layer, unfused (Dropout reproduces its mask after
    # reseeding); layers cache their inputs, so this runs after the model's backward
    model.zero_grad()
    fastnn.seed(9)
    h = x
    for layer in model:
        h = layer.forward(h)
    np.testing.assert_allclose(y, h, rtol=1e-12, atol=1e-14)
    gh = g
    for layer in reversed(model.layers):
        gh = layer.backward(gh)
    np.testing.assert_allclose(gx, gh, rtol=1e-12, atol=1e-14)
    for a, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(a, p.grad, rtol=1e-12, atol=1e-14)


def test_sequential_gradients_finite_differences(rng, num_grad, fd_tol):
    model = build_mlp()
    x = rng.standard_normal((7, 6))
    # keep every ReLU / LeakyReLU input away from its kink
    fastnn.seed(4)
    h = x
    for i, layer in enumerate(model):
        if isinstance(layer, (ReLU, LeakyReLU)):
            assert np.abs(h).min() > 1e-4, f"layer {i} input too close to 0"
        h = layer.forward(h)
    _, grads = fd_check(model, x, num_grad, fd_tol, rng, before=lambda: fastnn.seed(4))
    assert len(grads) == 12


def test_sequential_accepts_list_and_rejects_non_modules():
    model = Sequential([Dense(2, 3), ReLU()])
    assert len(model) == 2 and isinstance(model[1], ReLU)
    with pytest.raises(TypeError, match="item 1 is not a Module"):
        Sequential(Dense(2, 3), np.tanh)


# ------------------------------------------------------------------- fresh outputs


def layer_cases():
    return {
        "dense": (lambda: make_dense(5, 4, np.float32), (6, 5)),
        "relu": (ReLU, (6, 5)),
        "leaky": (LeakyReLU, (6, 5)),
        "sigmoid": (Sigmoid, (6, 5)),
        "tanh": (Tanh, (6, 5)),
        "identity": (Identity, (6, 5)),
        "batchnorm": (lambda: BatchNorm1d(5), (6, 5)),
        "batchnorm_eval": (lambda: BatchNorm1d(5).eval(), (6, 5)),
        "dropout": (lambda: Dropout(0.5), (6, 5)),
        "dropout_eval": (lambda: Dropout(0.5).eval(), (6, 5)),
        "sequential": (
            lambda: Sequential(
                make_dense(5, 4, np.float32),
                ReLU(),
                BatchNorm1d(4),
                Dropout(0.2),
                make_dense(4, 3, np.float32),
            ),
            (6, 5),
        ),
    }


LAYER_CASES = layer_cases()


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_public_forward_backward_return_fresh_arrays(rng, case):
    make, shape = LAYER_CASES[case]
    layer = make()
    x1 = rng.standard_normal(shape).astype(np.float32)
    x2 = rng.standard_normal(shape).astype(np.float32)
    x1_copy = x1.copy()
    y1 = layer.forward(x1)
    y1_copy = y1.copy()
    g1 = rng.standard_normal(y1.shape).astype(np.float32)
    g1_copy = g1.copy()
    gx1 = layer.backward(g1)
    gx1_copy = gx1.copy()
    # inputs are not modified, outputs are not views of them
    np.testing.assert_array_equal(x1, x1_copy)
    np.testing.assert_array_equal(g1, g1_copy)
    assert not np.shares_memory(y1, x1) and not np.shares_memory(gx1, g1)
    y2 = layer.forward(x2)
    gx2 = layer.backward(rng.standard_normal(y2.shape).astype(np.float32))
    assert not np.shares_memory(y1, y2) and not np.shares_memory(gx1, gx2)
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(gx1, gx1_copy)
    # and a caller writing into an output does not disturb the layer
    y2[...] = np.nan
    gx2[...] = np.nan
    y3 = layer.forward(x2)
    assert np.isfinite(y3).all()


# ------------------------------------------------------------------- input layouts


def layouts(x):
    """(name, array) variants holding the same values as the C-contiguous x."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    padded = np.zeros((x.shape[0] + 2, x.shape[1] + 1), x.dtype)
    padded[1:-1, 1:] = x
    return [
        ("strided", big[::2, ::3]),
        ("sliced", padded[1:-1, 1:]),
        ("fortran", np.asfortranarray(x)),
        ("negative_strides", np.flipud(np.flipud(x).copy())),
        ("transposed_view", np.ascontiguousarray(x.T).T),
    ]


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_layouts_and_integer_inputs_match_contiguous(rng, case):
    make, shape = LAYER_CASES[case]
    xi = rng.integers(-3, 4, shape)
    x = xi.astype(np.float32)
    g = rng.standard_normal(shape[:1] + (make().forward(x).shape[1],)).astype(np.float32)

    def run(inp, grad):
        fastnn.seed(0)
        layer = make()
        return layer.forward(inp), layer.backward(grad)

    y_ref, gx_ref = run(x, g)
    for name, xv in layouts(x) + [("int64", xi), ("int32", xi.astype(np.int32))]:
        assert name in ("int64", "int32") or not xv.flags.c_contiguous
        y, gx = run(xv, g)
        np.testing.assert_array_equal(y, y_ref, err_msg=name)
        np.testing.assert_array_equal(gx, gx_ref, err_msg=name)
        assert y.dtype == np.float32
    for name, gv in layouts(g):
        y, gx = run(x, gv)
        np.testing.assert_array_equal(gx, gx_ref, err_msg=f"grad {name}")


def test_float32_input_to_float64_layer_is_converted(rng):
    layer = make_dense(4, 3, np.float64)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, dense_ref(layer, x.astype(np.float64)), rtol=1e-12)


# ------------------------------------------------------------------------ bad input


def raises(exc, layer_name, *fragments):
    """pytest.raises for exc whose message names the layer and holds every fragment."""
    import re

    pattern = "".join(f"(?=.*{re.escape(f)})" for f in (layer_name, *fragments))
    return pytest.raises(exc, match=f"(?s){pattern}")


def test_dense_bad_inputs():
    layer = Dense(4, 3)
    with raises(ValueError, "Dense(4, 3)", "expected 4 features", "(5, 2)"):
        layer.forward(np.zeros((5, 2)))
    with raises(ValueError, "Dense(4, 3)", "2-D", "(4,)"):
        layer.forward(np.zeros(4))
    with raises(ValueError, "Dense(4, 3)", "2-D", "(2, 3, 4)"):
        layer.forward(np.zeros((2, 3, 4)))
    for bad in (
        np.array([["a"] * 4]),
        np.zeros((2, 4), complex),
        np.array([[object()] * 4], dtype=object),
    ):
        with raises(TypeError, "Dense(4, 3)", str(bad.dtype)):
            layer.forward(bad)
    with raises(ValueError, "Dense(4, 3)", "cannot convert"):
        layer.forward([[1, 2, 3, 4], [1, 2]])
    layer.forward(np.zeros((5, 4)))
    with raises(ValueError, "Dense(4, 3).backward", "(5, 3)", "(5, 4)"):
        layer.backward(np.zeros((5, 4)))
    with raises(ValueError, "Dense(4, 3).backward", "(5, 3)", "(4, 3)"):
        layer.backward(np.zeros((4, 3)))
    with raises(TypeError, "Dense(4, 3).backward", "complex"):
        layer.backward(np.zeros((5, 3), complex))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_dense_bad_constructor_arguments(bad):
    with pytest.raises((ValueError, TypeError), match="in_features"):
        Dense(bad, 3)
    with pytest.raises(ValueError, match="float32 or float64"):
        Dense(3, 3, dtype=np.int32)


def test_batchnorm_bad_inputs():
    bn = BatchNorm1d(4)
    with raises(ValueError, "BatchNorm1d(4)", "4 channels", "(5, 3)"):
        bn.forward(np.zeros((5, 3)))
    with raises(ValueError, "BatchNorm1d(4)", "2-D", "(4,)"):
        bn.forward(np.zeros(4))
    with raises(TypeError, "BatchNorm1d(4)", "<U1"):
        bn.forward(np.full((3, 4), "x"))
    with raises(TypeError, "BatchNorm1d(4)", "complex"):
        bn.forward(np.zeros((3, 4), complex))
    with raises(ValueError, "BatchNorm1d(4)", "more than 1 value", "(1, 4)"):
        bn.forward(np.zeros((1, 4)))
    assert int(bn.num_batches_tracked) == 0  # the refused batch left no trace
    bn.forward(np.random.default_rng(0).standard_normal((5, 4)))
    with raises(ValueError, "BatchNorm1d(4).backward", "(5, 4)", "(5, 3)"):
        bn.backward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="eps"):
        BatchNorm1d(4, eps=0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(4, momentum=1.5)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_bad_inputs(name):
    layer = ACTIVATIONS[name][0]()
    cls = type(layer).__name__
    for bad in (np.array(["a", "b"]), np.zeros(3, complex), np.array([None, 1.0])):
        with raises(TypeError, cls, str(bad.dtype)):
            layer.forward(bad)
    layer.forward(np.zeros((5, 3)))
    with raises(ValueError, f"{cls}.backward", "(5, 3)", "(3, 5)"):
        layer.backward(np.zeros((3, 5)))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=r"Dropout p must be in \[0, 1\)"):
        Dropout(p)


@pytest.mark.parametrize("training,p", [(True, 0.5), (False, 0.5), (True, 0.0)])
def test_dropout_bad_inputs(training, p):
    layer = Dropout(p).train(training)
    with raises(TypeError, "Dropout", "complex"):
        layer.forward(np.zeros((2, 2), complex))
    layer.forward(np.ones((5, 3)))
    with raises(ValueError, "Dropout.backward", "(5, 3)", "(5, 4)"):
        layer.backward(np.zeros((5, 4)))


def test_sequential_reports_the_failing_layer():
    model = Sequential(Dense(4, 3), ReLU(), Dense(3, 2))
    with raises(ValueError, "Dense(4, 3)", "expected 4 features", "(2, 5)"):
        model.forward(np.zeros((2, 5)))
    model.forward(np.zeros((2, 4)))
    with raises(ValueError, "Dense(3, 2).backward", "(2, 2)", "(2, 3)"):
        model.backward(np.zeros((2, 3)))
