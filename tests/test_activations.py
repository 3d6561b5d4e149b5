"""Activation layers (FEATURES group A): forward and backward of every activation
against NumPy references and central finite differences in float64 (input and every
parameter gradient), parity with torch.nn to float64 round-off on inputs with zeros,
kinks, large magnitudes, infinities and NaN, the derivative conventions at kinks,
fused Dense+activation equal to the unfused composition, and clear errors for bad
arguments.

Derivative conventions pinned here (fastnn/layers/activations.py, act_math.h; all as
torch): ReLU'(0) = 0 (one-sided, also at -0.0), LeakyReLU'(0) = negative_slope,
AbsReLU'(0) = 0, HardTanh' = 0 at and beyond min_val/max_val, ELU'(0) = alpha,
PReLU'(0) = a, Softplus is linear (derivative 1) only where beta * x > threshold
(at beta * x == threshold it is still log1p(exp(.)) / beta with derivative
sigmoid(threshold)), Maxout routes the gradient to the first maximal piece.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

import fastnn
from fastnn import (
    ELU,
    GELU,
    RBF,
    AbsReLU,
    Dense,
    HardTanh,
    Identity,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    _kernels,
)
from helpers import fd_check

HYP = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Agreement with torch in float64: a few ulps relative, and an absolute floor for
# outputs that come from cancellation (GELU's 1 + erf(x / sqrt 2) for x << 0, where
# one ulp of erf or tanh in either library moves the result by ~|x| 1e-16).
TORCH_TOL = dict(rtol=1e-12, atol=1e-14)
REF_TOL = {
    np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14),
}


@pytest.fixture(scope="module")
def th():
    torch = pytest.importorskip("torch")
    return torch


def expit(x):
    return special.expit(x)


# ------------------------------------------------------------------ the activations
class Spec:
    """One elementwise activation: fastnn factory, torch factory, NumPy forward and
    derivative (float64), and its kinks (points where the derivative jumps)."""

    def __init__(self, make, torch_make, f, df, kinks=()):
        self.make, self.torch_make, self.f, self.df, self.kinks = make, torch_make, f, df, kinks


def _leaky(s):
    return Spec(
        lambda: LeakyReLU(s) if s != 0.01 else LeakyReLU(),
        lambda th: th.nn.LeakyReLU(s),
        lambda x: np.where(x < 0, s * x, x),
        lambda x: np.where(x > 0, 1.0, s),
        kinks=(0.0,),
    )


def _hardtanh(lo, hi):
    return Spec(
        lambda: HardTanh(lo, hi) if (lo, hi) != (-1, 1) else HardTanh(),
        lambda th: th.nn.Hardtanh(lo, hi),
        lambda x: np.where(x < lo, lo, np.where(x > hi, hi, x)),
        lambda x: ((x > lo) & (x < hi)) * 1.0,
        kinks=(lo, hi),
    )


def _softplus(beta, thr):
    def f(x):
        with np.errstate(over="ignore"):
            return np.where(x * beta > thr, x, np.log1p(np.exp(beta * x)) / beta)

    return Spec(
        lambda: Softplus(beta, thr) if (beta, thr) != (1, 20) else Softplus(),
        lambda th: th.nn.Softplus(beta, thr),
        f,
        lambda x: np.where(x * beta > thr, 1.0, expit(beta * x)),
        kinks=(thr / beta,),
    )


def _elu(alpha):
    def f(x):
        with np.errstate(over="ignore"):
            return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))

    def df(x):
        return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))

    return Spec(lambda: ELU(alpha) if alpha != 1 else ELU(), lambda th: th.nn.ELU(alpha), f, df)


def _gelu_f(x):
    return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))


def _gelu_df(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return 0.5 * (1 + special.erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(
            2 * math.pi
        )


K_TANH = math.sqrt(2 / math.pi)


def _gelu_tanh_f(x):
    return 0.5 * x * (1 + np.tanh(K_TANH * (x + 0.044715 * x**3)))


def _gelu_tanh_df(x):
    t = np.tanh(K_TANH * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K_TANH * (1 + 3 * 0.044715 * x * x)


def _sigmoid_df(x):
    s = expit(x)
    return s * (1 - s)


SPECS = {
    "relu": Spec(
        ReLU,
        lambda th: th.nn.ReLU(),
        lambda x: np.where(x < 0, 0.0, x),
        lambda x: (x > 0) * 1.0,
        kinks=(0.0,),
    ),
    "leaky": _leaky(0.01),
    "leaky_0.2": _leaky(0.2),
    "leaky_neg": _leaky(-0.3),
    "absrelu": Spec(AbsReLU, lambda th: th.abs, np.abs, np.sign, kinks=(0.0,)),
    "sigmoid": Spec(Sigmoid, lambda th: th.nn.Sigmoid(), expit, _sigmoid_df),
    "tanh": Spec(Tanh, lambda th: th.nn.Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "hardtanh": _hardtanh(-1, 1),
    "hardtanh_-0.5_3": _hardtanh(-0.5, 3.0),
    "softplus": _softplus(1, 20),
    "softplus_2_10": _softplus(2.0, 10.0),
    "softplus_0.5_3": _softplus(0.5, 3.0),
    "elu": _elu(1),
    "elu_0.5": _elu(0.5),
    "elu_2": _elu(2.0),
    "gelu": Spec(GELU, lambda th: th.nn.GELU(), _gelu_f, _gelu_df),
    "gelu_tanh": Spec(
        lambda: GELU(approximate="tanh"), lambda th: th.nn.GELU("tanh"), _gelu_tanh_f, _gelu_tanh_df
    ),
    "identity": Spec(Identity, lambda th: th.nn.Identity(), lambda x: x, lambda x: np.ones_like(x)),
}

SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 50.0, -50.0, 1e4, -1e4]


def special_inputs(spec, rng, n_random=64):
    """Zeros, the kinks, each kink's float64 neighbours, large magnitudes and random
    values (float64, 1-D)."""
    kinks = []
    for k in spec.kinks:
        kinks += [k, np.nextafter(k, -np.inf), np.nextafter(k, np.inf), k - 1e-3, k + 1e-3]
    return np.concatenate([SPECIAL, kinks, rng.normal(0, 4, n_random)]).astype(np.float64)


def away_from(x, points, margin=2e-2):
    """x with every entry within margin of one of `points` pushed out to 2 * margin."""
    x = np.array(x, dtype=np.float64)
    for k in points:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] < k, -2 * margin, 2 * margin)
    return x


def torch_run(th, fn, x, g, params=()):
    """torch forward/backward in float64: (y, dL/dx, [dL/dparam])."""
    xt = th.tensor(x, dtype=th.float64, requires_grad=True)
    yt = fn(xt)
    yt.backward(th.tensor(g, dtype=th.float64))
    return (yt.detach().numpy(), xt.grad.numpy(), [p.grad.numpy().copy() for p in params])


# ------------------------------------------------------------------ elementwise layers


@pytest.mark.parametrize("name", list(SPECS))
def test_elementwise_forward_backward_numpy_reference(rng, dtype, name):
    spec = SPECS[name]
    layer = spec.make()
    x = rng.normal(0, 3, (11, 40))
    sp = special_inputs(spec, rng, 0)
    x.flat[: sp.size] = sp
    x = x.astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, spec.f(x64), **REF_TOL[dtype])
    g = rng.standard_normal(x.shape).astype(dtype)
    gx = layer.backward(g)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, g.astype(np.float64) * spec.df(x64), **REF_TOL[dtype])


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 3, 2, 5)])
@pytest.mark.parametrize(
    "name",
    ["relu", "leaky_neg", "hardtanh_-0.5_3", "softplus_2_10", "elu_0.5", "gelu", "gelu_tanh"],
)
def test_elementwise_any_shape(rng, name, shape):
    spec = SPECS[name]
    x = rng.normal(0, 2, shape)
    layer = spec.make()
    np.testing.assert_allclose(layer.forward(x), spec.f(x), **REF_TOL[np.dtype(np.float64)])
    g = rng.standard_normal(shape)
    np.testing.assert_allclose(layer.backward(g), g * spec.df(x), **REF_TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("name", list(SPECS))
def test_elementwise_gradient_finite_differences(rng, num_grad, fd_tol, name):
    spec = SPECS[name]
    x = away_from(rng.normal(0, 2, (5, 6)), spec.kinks)
    x[0, :3] = away_from(
        [spec.kinks[0] - 0.5, spec.kinks[0] + 0.5, 6.0] if spec.kinks else [-4.0, 4.0, 6.0],
        spec.kinks,
    )
    fd_check(spec.make(), x, num_grad, fd_tol, rng)


@pytest.mark.parametrize("name", list(SPECS))
def test_elementwise_matches_torch(th, rng, name):
    """Forward and input gradient equal torch.nn to float64 round-off, including 0,
    -0.0, the kinks and their neighbours, +-50, +-1e4, +-inf (forward) and NaN
    (forward: NaN exactly where the input is NaN)."""
    spec = SPECS[name]
    x = special_inputs(spec, rng)
    xf = np.concatenate([x, [np.inf, -np.inf, np.nan]])
    layer = spec.make()
    tfn = spec.torch_make(th)
    y = layer.forward(xf)
    with th.no_grad():
        y_t = tfn(th.tensor(xf)).numpy()
    np.testing.assert_allclose(y, y_t, **TORCH_TOL, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_t))
    assert np.isnan(y[-1])  # NaN propagates
    g = rng.uniform(0.5, 2.0, x.shape) * rng.choice([-1, 1], x.shape)
    layer.forward(x)
    gx = layer.backward(g)
    y_t, gx_t, _ = torch_run(th, tfn, x, g)
    np.testing.assert_allclose(gx, gx_t, **TORCH_TOL)


@pytest.mark.parametrize("name", list(SPECS))
def test_elementwise_float32_close_to_torch(th, rng, name):
    spec = SPECS[name]
    x = special_inputs(spec, rng).astype(np.float32)
    layer = spec.make()
    y = layer.forward(x)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gx = layer.backward(g)
    y_t, gx_t, _ = torch_run(th, spec.torch_make(th), x.astype(np.float64), g)
    np.testing.assert_allclose(y, y_t, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(gx, gx_t, rtol=2e-5, atol=1e-6)


# (layer, input values, expected derivative at them): the conventions at the kinks.
KINK_CASES = {
    "relu'(0)=0": (
        ReLU,
        lambda th: th.nn.ReLU(),
        [0.0, -0.0, 1e-300, -1e-300],
        [0.0, 0.0, 1.0, 0.0],
    ),
    "leaky'(0)=slope": (
        lambda: LeakyReLU(0.2),
        lambda th: th.nn.LeakyReLU(0.2),
        [0.0, -0.0, 1e-300],
        [0.2, 0.2, 1.0],
    ),
    "leaky_neg'(0)=slope": (
        lambda: LeakyReLU(-0.3),
        lambda th: th.nn.LeakyReLU(-0.3),
        [0.0, -0.0],
        [-0.3, -0.3],
    ),
    "abs'(0)=0": (AbsReLU, lambda th: th.abs, [0.0, -0.0, 1e-300, -1e-300], [0.0, 0.0, 1.0, -1.0]),
    "hardtanh'(bounds)=0": (
        lambda: HardTanh(-0.5, 3.0),
        lambda th: th.nn.Hardtanh(-0.5, 3.0),
        [-0.5, 3.0, np.nextafter(-0.5, 0), np.nextafter(3.0, 0), -0.6, 3.1],
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
    ),
    "elu'(0)=alpha": (
        lambda: ELU(0.5),
        lambda th: th.nn.ELU(0.5),
        [0.0, -0.0, 1e-300],
        [0.5, 0.5, 1.0],
    ),
    "softplus at beta*x==threshold": (
        lambda: Softplus(2.0, 10.0),
        lambda th: th.nn.Softplus(2.0, 10.0),
        [5.0, np.nextafter(5.0, np.inf)],
        [expit(10.0), 1.0],
    ),
    "gelu'(0)=1/2": (GELU, lambda th: th.nn.GELU(), [0.0, -0.0], [0.5, 0.5]),
    "gelu_tanh'(0)=1/2": (
        lambda: GELU(approximate="tanh"),
        lambda th: th.nn.GELU("tanh"),
        [0.0],
        [0.5],
    ),
}


@pytest.mark.parametrize("case", list(KINK_CASES))
def test_derivative_conventions_at_kinks(case):
    make, _, xs, expected = KINK_CASES[case]
    layer = make()
    x = np.array(xs, dtype=np.float64)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), expected)
    # the same convention in float32 (for the values float32 holds exactly) and inside
    # a larger (vectorised) array
    exact = x.astype(np.float32).astype(np.float64) == x
    x32 = np.tile(x[exact].astype(np.float32), 9)
    layer.forward(x32)
    grad = layer.backward(np.ones_like(x32))
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, np.tile(np.asarray(expected)[exact], 9), rtol=1e-7)


@pytest.mark.parametrize("case", list(KINK_CASES))
def test_derivative_conventions_at_kinks_match_torch(th, case):
    make, torch_make, xs, _ = KINK_CASES[case]
    x = np.array(xs, dtype=np.float64)
    layer = make()
    y = layer.forward(x)
    g = np.linspace(0.5, 1.5, x.size)
    y_t, gx_t, _ = torch_run(th, torch_make(th), x, g)
    np.testing.assert_allclose(y, y_t, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(layer.backward(g), gx_t)


def test_softplus_linear_region():
    """y = x exactly (and derivative 1) where beta * x > threshold; below, the smooth
    formula, which differs from x by log1p(exp(-beta x)) / beta."""
    layer = Softplus(beta=2.0, threshold=10.0)
    x = np.array([5.0 + 1e-9, 6.0, 50.0, 1e4, 4.0, 5.0])
    y = layer.forward(x)
    np.testing.assert_array_equal(y[:4], x[:4])
    np.testing.assert_array_equal(layer.backward(np.ones_like(x))[:4], 1.0)
    smooth = np.log1p(np.exp(2 * x[4:])) / 2
    np.testing.assert_allclose(y[4:], smooth, rtol=1e-15)
    assert y[5] != x[5]  # at beta * x == threshold the formula is still the smooth one
    # Default (beta=1, threshold=20): linear above 20 only.
    d = Softplus()
    np.testing.assert_array_equal(d.forward(np.array([20.5, 1e4])), [20.5, 1e4])
    assert d.forward(np.array([19.5]))[0] == pytest.approx(np.log1p(np.exp(19.5)), rel=1e-15)


# NaN: forward propagates NaN everywhere (above); the derivative at a NaN input,
# fastnn's own convention, the same at every position of an array of any length. (torch
# is no reference here: its Hardtanh and ELU backward give a different answer at NaN
# for small tensors (scalar path) than for large ones (vectorised path).)
NAN_GRAD = {
    "leaky_0.2": 0.2,
    "absrelu": 0.0,
    "hardtanh": 0.0,
    "elu_0.5": np.nan,
    "sigmoid": np.nan,
    "tanh": np.nan,
    "softplus": np.nan,
    "gelu": np.nan,
    "gelu_tanh": np.nan,
    "identity": 1.0,
}


@pytest.mark.parametrize("n", [1, 5, 37])
@pytest.mark.parametrize("name", list(NAN_GRAD))
def test_nan_input_derivative_convention(name, n):
    layer = SPECS[name].make()
    for pos in sorted({0, n // 2, n - 1}):
        x = np.full(n, 0.25)
        x[pos] = np.nan
        y = layer.forward(x)
        assert np.isnan(y[pos]) and np.isfinite(np.delete(y, pos)).all()
        gx = layer.backward(np.ones(n))
        np.testing.assert_array_equal(gx[pos], NAN_GRAD[name])
        np.testing.assert_allclose(
            np.delete(gx, pos), SPECS[name].df(np.full(n - 1, 0.25)), rtol=1e-15
        )


def test_relu_gradient_at_nan_matches_torch(th):
    """torch's threshold_backward passes the gradient where y is NaN (y <= 0 is false)."""
    x = np.array([np.nan, 1.0, -1.0] * 7)
    g = np.linspace(0.5, 2.0, x.size)
    layer = ReLU()
    layer.forward(x)
    _, gx_t, _ = torch_run(th, th.nn.ReLU(), x, g)
    np.testing.assert_array_equal(layer.backward(g), gx_t)


# ------------------------------------------------------------------------------ PReLU

PRELU_CASES = {
    "shared_2d": (1, (6, 4)),
    "channel_2d": (4, (6, 4)),
    "shared_3d": (1, (3, 4, 5)),
    "channel_3d": (4, (3, 4, 5)),
    "shared_4d": (1, (2, 3, 4, 5)),
    "channel_4d": (3, (2, 3, 4, 5)),
}


def prelu_ref(x, a):
    a = a.reshape((1, -1) + (1,) * (x.ndim - 2)) if a.size > 1 else a.reshape(())
    y = np.where(x > 0, x, a * x)
    return y, a


def make_prelu(n, dtype, rng):
    layer = PReLU(n, dtype=dtype)
    np.testing.assert_array_equal(layer.weight.data, np.full(n, 0.25, dtype))
    layer.weight.data = rng.uniform(-0.5, 0.8, n)
    return layer


@pytest.mark.parametrize("case", list(PRELU_CASES))
def test_prelu_numpy_reference(rng, dtype, case):
    n, shape = PRELU_CASES[case]
    layer = make_prelu(n, dtype, rng)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[:3] = 0
    a64 = layer.weight.data.astype(np.float64)
    x64 = x.astype(np.float64)
    y_ref, a_b = prelu_ref(x64, a64)
    y = layer.forward(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **REF_TOL[dtype])
    g = rng.standard_normal(shape).astype(dtype)
    layer.zero_grad()
    gx = layer.backward(g)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(gx, np.where(x64 > 0, g64, a_b * g64), **REF_TOL[dtype])
    # dL/da = sum of g * x over x <= 0, per channel (axis 1) or over everything
    contrib = np.where(x64 > 0, 0.0, g64 * x64)
    ga = contrib.sum() if n == 1 else contrib.sum(axis=tuple(i for i in range(x.ndim) if i != 1))
    np.testing.assert_allclose(layer.weight.grad, np.atleast_1d(ga), **REF_TOL[dtype])


@pytest.mark.parametrize("case", list(PRELU_CASES))
def test_prelu_finite_differences(rng, num_grad, fd_tol, case):
    n, shape = PRELU_CASES[case]
    layer = make_prelu(n, np.float64, rng)
    x = away_from(rng.standard_normal(shape), [0.0])
    fd_check(layer, x, num_grad, fd_tol, rng)


@pytest.mark.parametrize("case", list(PRELU_CASES))
def test_prelu_matches_torch(th, rng, case):
    n, shape = PRELU_CASES[case]
    layer = make_prelu(n, np.float64, rng)
    t = th.nn.PReLU(n).double()
    with th.no_grad():
        t.weight.copy_(th.tensor(layer.weight.data))
    x = rng.standard_normal(shape) * 10
    x.flat[:4] = [0.0, -0.0, 1e4, -1e4]
    g = rng.standard_normal(shape)
    y = layer.forward(x)
    layer.zero_grad()
    gx = layer.backward(g)
    y_t, gx_t, (ga_t,) = torch_run(th, t, x, g, [t.weight])
    np.testing.assert_allclose(y, y_t, **TORCH_TOL)
    np.testing.assert_allclose(gx, gx_t, **TORCH_TOL)
    np.testing.assert_allclose(layer.weight.grad, ga_t, rtol=1e-12, atol=1e-12)
    # NaN propagates in the forward
    x.flat[5] = np.nan
    assert np.isnan(layer.forward(x).flat[5])


def test_prelu_derivative_at_zero_is_the_slope():
    layer = PReLU(init=0.25, dtype=np.float64)
    layer.forward(np.zeros((2, 3)))
    layer.zero_grad()
    np.testing.assert_array_equal(layer.backward(np.ones((2, 3))), 0.25)
    np.testing.assert_array_equal(layer.weight.grad, [0.0])  # x = 0 contributes g * 0


def test_prelu_slope_count_must_match_channels():
    layer = PReLU(3)
    with pytest.raises(ValueError, match=r"(?s)PReLU.*3 slopes.*4 channels.*\(5, 4\)"):
        layer.forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"3 slopes.*\(2, 4, 3, 3\)"):
        layer.forward(np.zeros((2, 4, 3, 3)))  # channels are axis 1, not the last axis
    with pytest.raises(ValueError, match="3 slopes"):
        layer.forward(np.zeros(3))  # 1-D input has one channel
    layer.forward(np.zeros((2, 3, 4)))  # fine
    for bad in (0, -2):
        with pytest.raises(ValueError, match="num_parameters"):
            PReLU(bad)


# ----------------------------------------------------------------------------- Maxout


def maxout_ref(layer, x):
    """z (N, out, pieces) from the layout: unit o's pieces are rows o*pieces + p."""
    W = layer.weight.data.astype(np.float64)
    z = x.astype(np.float64) @ W.T
    if layer.bias is not None:
        z = z + layer.bias.data
    return z.reshape(x.shape[0], layer.out_features, layer.pieces)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("pieces", [2, 3, 5])
def test_maxout_numpy_reference(rng, dtype, pieces, bias):
    fastnn.seed(1)
    layer = Maxout(7, 4, pieces, bias=bias, dtype=dtype)
    assert layer.weight.shape == (4 * pieces, 7)
    assert (layer.bias is None) == (not bias) and (not bias or layer.bias.shape == (4 * pieces,))
    x = rng.standard_normal((9, 7)).astype(dtype)
    z = maxout_ref(layer, x)
    y = layer.forward(x)
    assert y.shape == (9, 4) and y.dtype == dtype
    np.testing.assert_allclose(y, z.max(axis=2), **REF_TOL[dtype])
    g = rng.standard_normal((9, 4)).astype(dtype)
    layer.zero_grad()
    gx = layer.backward(g)
    win = z.argmax(axis=2)  # the first maximal piece
    gz = np.zeros_like(z)
    np.put_along_axis(gz, win[..., None], g.astype(np.float64)[..., None], axis=2)
    gz = gz.reshape(9, -1)
    tol = REF_TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gx, gz @ layer.weight.data.astype(np.float64), **tol)
    np.testing.assert_allclose(layer.weight.grad, gz.T @ x.astype(np.float64), **tol)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, gz.sum(0), **tol)


def test_maxout_layout_consecutive_rows():
    """Unit o is the max of rows o*pieces .. o*pieces + pieces - 1 (not interleaved)."""
    layer = Maxout(1, 2, pieces=3, dtype=np.float64)
    layer.weight.data = np.array([[1.0], [2.0], [3.0], [-1.0], [-2.0], [-3.0]])
    layer.bias.data = np.zeros(6)
    x = np.array([[1.0], [-1.0]])
    np.testing.assert_array_equal(layer.forward(x), [[3.0, -1.0], [-1.0, 3.0]])
    layer.zero_grad()
    layer.backward(np.array([[10.0, 20.0], [30.0, 40.0]]))
    # row 0 (x=1): unit 0 won by piece 2 (row 2), unit 1 by piece 0 (row 3);
    # row 1 (x=-1): unit 0 by piece 0 (row 0), unit 1 by piece 2 (row 5)
    np.testing.assert_array_equal(layer.bias.grad, [30.0, 0, 10.0, 20.0, 0, 40.0])
    np.testing.assert_array_equal(layer.weight.grad[:, 0], [-30.0, 0, 10.0, 20.0, 0, -40.0])


def test_maxout_ties_route_gradient_to_the_first_maximal_piece():
    layer = Maxout(3, 2, pieces=3, dtype=np.float64)
    layer.weight.data = np.zeros((6, 3))
    layer.bias.data = np.array([1.0, 3.0, 3.0, 2.0, 2.0, 2.0])  # ties
    x = np.ones((4, 3))
    np.testing.assert_array_equal(layer.forward(x), [[3.0, 2.0]] * 4)
    layer.zero_grad()
    gx = layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(layer.bias.grad, [0, 4.0, 0, 4.0, 0, 0])
    np.testing.assert_array_equal(
        layer.weight.grad, [[0] * 3, [4.0] * 3, [0] * 3, [4.0] * 3, [0] * 3, [0] * 3]
    )
    np.testing.assert_array_equal(gx, 0.0)  # the winning rows of W are zero


def test_maxout_nan_propagates():
    layer = Maxout(2, 1, pieces=3, dtype=np.float64)
    layer.weight.data = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    layer.bias.data = np.zeros(3)
    y = layer.forward(np.array([[np.nan, 0.0], [1.0, 1.0]]))
    assert np.isnan(y[0, 0]) and y[1, 0] == 10.0


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_maxout_finite_differences(rng, num_grad, fd_tol, bias):
    fastnn.seed(2)
    layer = Maxout(4, 3, pieces=3, bias=bias, dtype=np.float64)
    x = rng.standard_normal((5, 4))
    z = maxout_ref(layer, x)
    srt = np.sort(z, axis=2)
    assert (srt[..., -1] - srt[..., -2]).min() > 1e-4  # no near-ties: differentiable
    fd_check(layer, x, num_grad, fd_tol, rng)


@HYP
@given(
    rows=st.integers(1, 9),
    n_in=st.integers(1, 12),
    units=st.integers(1, 9),
    pieces=st.integers(2, 6),
    seed=st.integers(0, 1000),
)
def test_maxout_any_shape_property(rows, n_in, units, pieces, seed):
    """Maxout against the NumPy reference for arbitrary sizes (float64)."""
    fastnn.seed(seed)
    layer = Maxout(n_in, units, pieces, dtype=np.float64)
    r = np.random.default_rng(seed)
    x = r.standard_normal((rows, n_in))
    z = maxout_ref(layer, x)
    np.testing.assert_allclose(layer.forward(x), z.max(axis=2), rtol=1e-12, atol=1e-14)
    g = r.standard_normal((rows, units))
    layer.zero_grad()
    gx = layer.backward(g)
    gz = np.zeros_like(z)
    np.put_along_axis(gz, z.argmax(axis=2)[..., None], g[..., None], axis=2)
    gz = gz.reshape(rows, -1)
    np.testing.assert_allclose(gx, gz @ layer.weight.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.weight.grad, gz.T @ x, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("pieces", [1, 0, -2, 2.5, 256, "3"])
def test_maxout_bad_pieces(pieces):
    with pytest.raises(ValueError, match=r"Maxout: pieces must be an integer in \[2, 255\]"):
        Maxout(4, 3, pieces)


# ---------------------------------------------------------------------------- Softmax


def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -2])
def test_softmax_numpy_reference_and_torch(th, rng, axis):
    x = rng.normal(0, 5, (3, 4, 6))
    x[0, 0, :2] = [1e4, -1e4]
    x[1, 2, 3] = 0.0
    layer = Softmax(axis)
    y = layer.forward(x)
    ref = softmax_ref(x, axis)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-14)
    g = rng.standard_normal(x.shape)
    gx = layer.backward(g)
    np.testing.assert_allclose(
        gx, ref * (g - (g * ref).sum(axis=axis, keepdims=True)), rtol=1e-10, atol=1e-15
    )
    y_t, gx_t, _ = torch_run(th, lambda t: th.softmax(t, axis), x, g)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_float32(rng, axis):
    x = rng.normal(0, 5, (5, 7)).astype(np.float32)
    layer = Softmax(axis)
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, softmax_ref(x.astype(np.float64), axis), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("axis", [-1, 0, 2])
def test_softmax_finite_differences(rng, num_grad, fd_tol, axis):
    fd_check(Softmax(axis), rng.standard_normal((3, 2, 4)), num_grad, fd_tol, rng)


def test_softmax_large_magnitudes_and_nan():
    y = Softmax().forward(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [50, 50, -50]]))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[0], [1, 0, 0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-15)
    np.testing.assert_allclose(y[2], [0.5, 0.5, np.exp(-100) / 2], rtol=1e-12)
    y = Softmax().forward(np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]]))
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()


def test_softmax_bad_axis():
    with pytest.raises(ValueError, match=r"Softmax: axis 2 out of range for shape \(3, 4\)"):
        Softmax(2).forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="axis -3 out of range"):
        Softmax(-3).forward(np.zeros((3, 4)))


# -------------------------------------------------------------------------------- RBF


def rbf_ref(x, C, s):
    d2 = ((x[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * s**2)), d2


def make_rbf(dtype, rng, n_in=3, centers=5):
    fastnn.seed(4)
    layer = RBF(n_in, centers, dtype=dtype)
    assert layer.centers.shape == (centers, n_in) and layer.widths.shape == (centers,)
    assert np.abs(layer.centers.data).max() <= 1.0
    np.testing.assert_array_equal(layer.widths.data, 1.0)
    layer.widths.data = rng.uniform(0.6, 1.8, centers)
    return layer


def test_rbf_numpy_reference(rng, dtype):
    layer = make_rbf(dtype, rng)
    x = rng.normal(0, 0.8, (8, 3)).astype(dtype)
    x[0] = layer.centers.data[1]  # exactly on a centre: y = 1
    C, s = layer.centers.data.astype(np.float64), layer.widths.data.astype(np.float64)
    y_ref, d2 = rbf_ref(x.astype(np.float64), C, s)
    y = layer.forward(x)
    assert y.shape == (8, 5) and y.dtype == dtype
    tol = REF_TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, y_ref, rtol=tol["rtol"], atol=max(tol["atol"], 1e-13))
    assert y[0, 1] == pytest.approx(1.0, abs=1e-6)
    g = rng.standard_normal(y.shape).astype(dtype)
    layer.zero_grad()
    gx = layer.backward(g)
    g64, x64 = g.astype(np.float64), x.astype(np.float64)
    gd2 = -g64 * y_ref / (2 * s**2)  # dL/d(d2)
    diff = x64[:, None, :] - C[None, :, :]
    atol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(gx, 2 * (gd2[..., None] * diff).sum(1), rtol=tol["rtol"], atol=atol)
    np.testing.assert_allclose(
        layer.centers.grad, -2 * (gd2[..., None] * diff).sum(0), rtol=tol["rtol"], atol=atol
    )
    np.testing.assert_allclose(
        layer.widths.grad, (g64 * y_ref * d2 / s**3).sum(0), rtol=tol["rtol"], atol=atol
    )


def test_rbf_finite_differences(rng, num_grad, fd_tol):
    layer = make_rbf(np.float64, rng, n_in=3, centers=4)
    x = rng.normal(0, 0.8, (6, 3))
    fd_check(layer, x, num_grad, fd_tol, rng)


def test_rbf_bad_arguments():
    with pytest.raises(ValueError, match="RBF: width must be positive"):
        RBF(3, 4, width=0.0)
    with pytest.raises(ValueError, match="centers"):
        RBF(3, 0)
    with pytest.raises(ValueError, match=r"RBF\(3, 4\).*expected 3 features"):
        RBF(3, 4).forward(np.zeros((2, 5)))


# --------------------------------------------------------------------------- Identity


def test_identity(rng, dtype):
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    x.flat[0] = np.nan
    layer = Identity()
    y = layer.forward(x)
    assert y.dtype == dtype and not np.shares_memory(y, x)
    np.testing.assert_array_equal(y, x)
    g = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(layer.backward(g), g)
    assert list(layer.parameters()) == []


# ----------------------------------------------------------- fused Dense + activation

FUSED = {
    "identity": Identity,
    "relu": ReLU,
    "leaky": LeakyReLU,
    "leaky_0.1": lambda: LeakyReLU(0.1),
    "leaky_neg": lambda: LeakyReLU(-0.3),
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "absrelu": AbsReLU,
    "hardtanh": lambda: HardTanh(-0.5, 0.7),
    "softplus": Softplus,
    "softplus_linear_region": lambda: Softplus(beta=3.0, threshold=1.0),
    "elu": lambda: ELU(0.7),
    "gelu": GELU,
    "gelu_tanh": lambda: GELU(approximate="tanh"),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", list(FUSED))
def test_fused_dense_activation_equals_unfused(rng, dtype, act, bias):
    def dense():
        fastnn.seed(7)
        return Dense(33, 70, bias=bias, dtype=dtype)

    fused = Sequential(dense(), FUSED[act]())
    assert len(fused.steps) == 1 and fused.steps[0].layers == (fused[0], fused[1])  # folded in
    d2, a2 = dense(), FUSED[act]()
    x = rng.normal(0, 2, (29, 33)).astype(dtype)
    g = rng.standard_normal((29, 70)).astype(dtype)
    for _ in range(2):  # the second round runs on reused workspaces
        fused.zero_grad()
        d2.zero_grad()
        y_f = fused.forward(x)
        y_u = a2.forward(d2.forward(x))
        np.testing.assert_array_equal(y_f, y_u)
        gx_f = fused.backward(g)
        gx_u = d2.backward(a2.backward(g))
        np.testing.assert_array_equal(gx_f, gx_u)
        np.testing.assert_array_equal(fused[0].weight.grad, d2.weight.grad)
        if bias:
            np.testing.assert_array_equal(fused[0].bias.grad, d2.bias.grad)
        x = x[::-1].copy()


@pytest.mark.parametrize("act", ["softplus_linear_region", "hardtanh", "elu", "gelu"])
def test_fused_dense_activation_finite_differences(rng, num_grad, fd_tol, act):
    fastnn.seed(8)
    model = Sequential(Dense(4, 5, dtype=np.float64), FUSED[act]())
    x = rng.normal(0, 1.5, (6, 4))
    z = model[0].forward(x)
    kinks = {"softplus_linear_region": [1 / 3], "hardtanh": [-0.5, 0.7]}.get(act, [])
    for k in kinks:
        assert np.abs(z - k).min() > 1e-3, "test input lies on a kink"
    fd_check(model, x, num_grad, fd_tol, rng)


# ------------------------------------------------------------------------- threads

THREAD_CASES = {
    "prelu_channels": (lambda: PReLU(64), (40, 64, 16)),
    "prelu_shared": (lambda: PReLU(), (300, 128)),
    "maxout": (lambda: Maxout(64, 128, 3), (300, 64)),
    "rbf": (lambda: RBF(32, 400), (100, 32)),
    "softmax_last": (lambda: Softmax(), (300, 128)),
    "softmax_axis0": (lambda: Softmax(0), (300, 128)),
    "gelu": (GELU, (300, 128)),
    "softplus": (Softplus, (300, 128)),
}


@pytest.mark.parametrize("case", list(THREAD_CASES))
def test_thread_independent(rng, use_threads, case):
    """Above the parallel threshold, 1 and 2 threads give the same bits (outputs,
    input and parameter gradients; parameter sums are split by channel, not thread)."""
    make, shape = THREAD_CASES[case]
    x = rng.normal(0, 0.5, shape).astype(np.float32)
    out = []
    for n in (1, 2):
        with use_threads(n):
            fastnn.seed(3)
            layer = make()
            y = layer.forward(x)
            assert y.size >= _kernels.PARALLEL_MIN_ELEMENTS
            g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
            gx = layer.backward(g)
            out.append([y, gx] + [p.grad for p in layer.parameters()])
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("approximate", ["x", "erf", "Tanh", None, ""])
def test_gelu_bad_approximation(approximate):
    with pytest.raises(ValueError, match=r"unknown GELU approximation .*'none', 'tanh'"):
        GELU(approximate=approximate)


@pytest.mark.parametrize("bounds", [(1.0, 1.0), (2.0, -1.0), (0.0, -0.0), (float("nan"), 1.0)])
def test_hardtanh_min_must_be_below_max(bounds):
    with pytest.raises(ValueError, match="HardTanh: min_val must be below max_val"):
        HardTanh(*bounds)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_softplus_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match="Softplus: beta must be positive"):
        Softplus(beta=beta)


@pytest.mark.parametrize(
    "make",
    [
        ReLU,
        lambda: HardTanh(-2, 2),
        lambda: PReLU(3),
        lambda: Maxout(3, 2, 2),
        lambda: Softmax(0),
        lambda: RBF(3, 2),
    ],
    ids=["relu", "hardtanh", "prelu", "maxout", "softmax", "rbf"],
)
def test_backward_gradient_shape_is_checked(make):
    layer = make()
    y = layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"backward: expected gradient of shape"):
        layer.backward(np.zeros((y.shape[0] + 1, y.shape[1])))
