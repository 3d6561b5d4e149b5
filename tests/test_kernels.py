"""Every kernel of fastnn._kernels against a plain NumPy reference written here.

Sizes are odd on purpose (1, 3, 63, 64, 65, 130 columns: below, at and above the
64-column block of the column-blocked reductions) and both below and above
_kernels.PARALLEL_MIN_ELEMENTS, where the kernels start to use more than one thread.
Every kernel must give bit-identical results for 1 and 2 threads (the design promises
thread-count independence), checked with np.array_equal.
"""

import itertools
import math

import numpy as np
import pytest

from fastnn import _kernels as K

ACTS = {
    "identity": K.ACT_IDENTITY,
    "relu": K.ACT_RELU,
    "leaky_relu": K.ACT_LEAKY_RELU,
    "sigmoid": K.ACT_SIGMOID,
    "tanh": K.ACT_TANH,
}
# activations whose forward and derivative are a comparison and at most one product:
# the kernel must match NumPy exactly
EXACT_ACTS = {K.ACT_IDENTITY, K.ACT_RELU, K.ACT_LEAKY_RELU}
PAR = K.PARALLEL_MIN_ELEMENTS

COLS = (1, 3, 63, 64, 65, 130)
SMALL = [(7, 1), (5, 3), (9, 63), (4, 64), (6, 65), (3, 130)]
# rows chosen so that rows * cols is above the threading threshold
LARGE = [(PAR // c + 37, c) for c in (1, 65, 130)]
SHAPES = SMALL + LARGE
SHAPE_IDS = [f"{r}x{c}" for r, c in SHAPES]

SPECIALS = [0.0, -0.0, 50.0, -50.0, 1e4, -1e4, np.nan]


def test_constants():
    assert PAR == 32768
    assert all(r * c < PAR for r, c in SMALL)
    assert all(r * c >= PAR for r, c in LARGE)
    assert {c for _, c in SMALL} == set(COLS)
    assert sorted(ACTS.values()) == list(range(5))
    assert [K.act_needs_input(c) for c in range(5)] == [False, False, True, False, False]


def with_specials(rng, shape, dtype, specials=SPECIALS, scale=3.0):
    """Normal(0, scale) data with the special values at random positions."""
    x = rng.normal(0.0, scale, shape)
    flat = x.reshape(-1)
    k = min(len(specials), flat.size)
    flat[rng.choice(flat.size, k, replace=False)] = specials[:k]
    return x.astype(dtype)


def act_ref(code, v, alpha):
    """Forward of each activation in v's dtype (transcendentals via float64)."""
    dt = v.dtype
    a = dt.type(alpha)
    with np.errstate(over="ignore", invalid="ignore"):
        if code == K.ACT_IDENTITY:
            return v.copy()
        if code == K.ACT_RELU:
            return np.where(v < 0, dt.type(0), v)
        if code == K.ACT_LEAKY_RELU:
            return np.where(v < 0, a * v, v)
        v64 = v.astype(np.float64)
        if code == K.ACT_SIGMOID:
            return (1.0 / (1.0 + np.exp(-v64))).astype(dt)
        if code == K.ACT_TANH:
            return np.tanh(v64).astype(dt)
    raise AssertionError(code)


def dact_ref(code, z, y, alpha):
    """Derivative of each activation from z (pre-activation) and/or y (output)."""
    dt = y.dtype
    one = dt.type(1)
    if code == K.ACT_IDENTITY:
        return np.ones_like(y)
    if code == K.ACT_RELU:
        return (y > 0).astype(dt)
    if code == K.ACT_LEAKY_RELU:
        return np.where(z > 0, one, dt.type(alpha))
    if code == K.ACT_SIGMOID:
        return y * (one - y)
    if code == K.ACT_TANH:
        return one - y * y
    raise AssertionError(code)


def assert_same(a, b):
    """Bit-identical arrays (NaN in the same places)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), (
        f"not bit-identical: max |diff| {np.nanmax(np.abs(a.astype(float) - b.astype(float)))}"
    )


def run_1_and_2_threads(use_threads, fn):
    """fn() under 1 and under 2 threads; asserts every returned array is bit-identical."""
    with use_threads(1):
        out1 = fn()
    with use_threads(2):
        out2 = fn()
    for a, b in zip(out1, out2, strict=True):
        if isinstance(a, np.ndarray):
            assert_same(a, b)
        else:
            assert a == b or (math.isnan(a) and math.isnan(b))
    return out1


# ----------------------------------------------------------------------------- gemm

# The last two are large enough to be split between threads (by rows, by columns).
GEMM_SHAPES = [
    (1, 1, 1),
    (3, 65, 1),
    (63, 1, 130),
    (64, 65, 63),
    (130, 3, 64),
    (65, 130, 65),
    (260, 130, 131),
    (65, 300, 130),
]


def colsum_scratch(width):
    """The float64 scratch the column-sum kernels take (NaN-filled: must not matter)."""
    return np.full(K.COLSUM_SCRATCH_ROWS * width, np.nan)


def op(a, trans):
    return a.T if trans else a


def make_gemm_operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    return a, b, c


@pytest.mark.parametrize("tb", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("ta", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
def test_gemm(rng, dtype, threads, m, n, k, ta, tb):
    a, b, c0 = make_gemm_operands(rng, m, n, k, ta, tb, dtype)
    A, B = op(a, ta).astype(np.float64), op(b, tb).astype(np.float64)
    AB, absAB = A @ B, np.abs(A) @ np.abs(B)
    u = np.finfo(dtype).eps
    for alpha, beta in [(1.0, 0.0), (0.5, -1.5), (-2.0, 1.0)]:
        c = c0.copy()
        K.gemm(a, b, c, ta, tb, alpha, beta)
        ref = alpha * AB + beta * c0.astype(np.float64)
        # standard error bound of a length-k dot product, plus the beta * C term
        bound = (k + 2) * u * (abs(alpha) * absAB + abs(beta) * np.abs(c0)) + 1e-300
        err = np.abs(c.astype(np.float64) - ref)
        assert (err <= bound).all(), (
            f"alpha={alpha} beta={beta}: max err/bound {np.max(err / bound)}"
        )


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (False, False), (True, True)])
def test_gemm_beta_zero_ignores_output(rng, dtype, ta, tb):
    """beta = 0 overwrites C: the layers pass uninitialised (np.empty) workspaces."""
    a, b, _ = make_gemm_operands(rng, 5, 7, 3, ta, tb, dtype)
    c = np.full((5, 7), np.nan, dtype)
    K.gemm(a, b, c, ta, tb, 1.0, 0.0)
    assert np.isfinite(c).all()
    np.testing.assert_allclose(
        c, op(a, ta) @ op(b, tb), rtol=1e-5 if dtype == np.float32 else 1e-12
    )


def gemm_1_and_2_threads(rng, use_threads, m, n, k, ta, tb, dtype):
    a, b, c = make_gemm_operands(rng, m, n, k, ta, tb, dtype)
    out = []
    for nt in (1, 2):
        with use_threads(nt):
            o = c.copy()
            K.gemm(a, b, o, ta, tb, 0.75, 0.5)
            out.append(o)
    return out


# The three GEMMs of a Dense layer (forward x W^T, weight gradient gz^T x, input
# gradient gz W) at the shapes of the reference workload's first layer (784 -> 512).
DENSE_GEMMS = [(False, True), (True, False), (False, False)]


@pytest.mark.parametrize("ta,tb", DENSE_GEMMS)
@pytest.mark.parametrize("m,n,k", [(300, 257, 129), (128, 512, 784)])
def test_gemm_thread_count_changes_only_roundoff(rng, dtype, use_threads, m, n, k, ta, tb):
    c1, c2 = gemm_1_and_2_threads(rng, use_threads, m, n, k, ta, tb, dtype)
    np.testing.assert_allclose(c1, c2, rtol=0, atol=np.abs(c1).max() * k * np.finfo(dtype).eps)


@pytest.mark.parametrize("ta,tb", DENSE_GEMMS)
@pytest.mark.parametrize(
    "m,n,k", [(16, 512, 784), (128, 512, 784), (2048, 512, 784), (300, 257, 129), (130, 70, 1000)]
)
def test_gemm_thread_independent(rng, dtype, use_threads, m, n, k, ta, tb):
    c1, c2 = gemm_1_and_2_threads(rng, use_threads, m, n, k, ta, tb, dtype)
    assert_same(c1, c2)


# ------------------------------------------------------------------------- bias_act


def bias_act_case(rng, shape, dtype, with_bias):
    z = with_specials(rng, shape, dtype)
    bias = rng.normal(0.0, 1.0, shape[1]).astype(dtype) if with_bias else None
    return z, bias


def check_act_values(code, got, ref, tol):
    if code in EXACT_ACTS:
        assert_same(got, ref)
    else:
        np.testing.assert_allclose(got, ref, **tol)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("act", list(ACTS), ids=list(ACTS))
def test_bias_act(rng, dtype, tol, threads, act, shape):
    code = ACTS[act]
    alpha = 0.2 if code == K.ACT_LEAKY_RELU else 0.0
    z0, bias0 = bias_act_case(rng, shape, dtype, True)
    for bias, inplace in [(None, False), (None, True), (bias0, False), (bias0, True)]:
        v = z0 if bias is None else z0 + bias  # the same single addition as the kernel
        ref = act_ref(code, v, alpha)
        assert np.isnan(ref).any()
        z = z0.copy()
        if inplace:
            y = z
            K.bias_act(code, alpha, 0.0, bias, z, z)
        else:
            y = np.full_like(z, 7.0)
            K.bias_act(code, alpha, 0.0, bias, z, y)
            # out of place, z holds z + bias afterwards (the pre-activation); without
            # a bias it is left alone
            assert_same(z, v)
        check_act_values(code, y, ref, tol)
        # NaN propagates through every activation
        assert np.array_equal(np.isnan(y), np.isnan(v))


@pytest.mark.parametrize("alpha", [0.01, -0.5, 1.5])
def test_bias_act_leaky_slopes(rng, dtype, alpha):
    z, bias = bias_act_case(rng, (11, 65), dtype, True)
    y = np.empty_like(z)
    K.bias_act(K.ACT_LEAKY_RELU, alpha, 0.0, bias, z, y)
    a = dtype.type(alpha)
    assert_same(y, np.where(z < 0, a * z, z))


def test_bias_act_large_magnitudes_saturate(dtype):
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype)
    y = np.empty_like(z)
    K.bias_act(K.ACT_SIGMOID, 0.0, 0.0, None, z, y)
    assert np.isfinite(y).all()
    assert y[0, 0] == 0.0 and y[0, 2] == 0.5 and y[0, 4] == 1.0
    K.bias_act(K.ACT_TANH, 0.0, 0.0, None, z, y)
    np.testing.assert_array_equal(y, [[-1.0, -1.0, 0.0, 1.0, 1.0]])
    K.bias_act(K.ACT_RELU, 0.0, 0.0, None, z, y)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 50.0, 1e4]])


@pytest.mark.parametrize("act", list(ACTS), ids=list(ACTS))
@pytest.mark.parametrize("shape", LARGE + [(40, 1000)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_bias_act_thread_independent(rng, dtype, use_threads, shape, act):
    code = ACTS[act]
    z, bias = bias_act_case(rng, shape, dtype, True)

    def run():
        out = []
        for b in (None, bias):
            for inplace in (False, True):
                zz = z.copy()
                y = zz if inplace else np.empty_like(zz)
                K.bias_act(code, 0.1, 0.0, b, zz, y)
                out += [zz, y]
        return out

    run_1_and_2_threads(use_threads, run)


# --------------------------------------------------------------------- act_backward


def act_backward_case(rng, shape, dtype, code, alpha):
    z = with_specials(rng, shape, dtype, specials=[0.0, -0.0, 50.0, -50.0, 1e4, -1e4])
    y = act_ref(code, z, alpha)
    gy = rng.normal(0.0, 1.0, shape).astype(dtype)
    return z, y, gy


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("act", list(ACTS), ids=list(ACTS))
def test_act_backward(rng, dtype, tol, threads, act, shape):
    code = ACTS[act]
    alpha = -0.3 if code == K.ACT_LEAKY_RELU else 0.0
    z, y, gy = act_backward_case(rng, shape, dtype, code, alpha)
    ref = gy * dact_ref(code, z, y, alpha)
    gbias0 = rng.normal(0.0, 1.0, shape[1]).astype(dtype)
    # z is passed only when the derivative needs it (else None: must not be read),
    # then both z and y are passed
    for zin, with_gbias in itertools.product(
        (z if K.act_needs_input(code) else None, z), (False, True)
    ):
        gz = np.full_like(gy, np.nan)
        gbias = gbias0.copy() if with_gbias else None
        K.act_backward(code, alpha, 0.0, zin, y, gy, gz, gbias, colsum_scratch(gy.shape[1]))
        check_act_values(code, gz, ref, tol)
        if with_gbias:
            # gbias accumulates (+=) the column sums of gz
            expected = gbias0.astype(np.float64) + ref.astype(np.float64).sum(axis=0)
            scale = np.abs(gbias0) + np.abs(ref).astype(np.float64).sum(axis=0)
            err = np.abs(gbias.astype(np.float64) - expected)
            assert (err <= tol["rtol"] * scale + tol["atol"]).all()


def test_act_backward_kinks(dtype):
    """ReLU'(0) = 0 (one-sided), LeakyReLU'(0) = slope."""
    z = np.array([[-1.0, 0.0, -0.0, 1.0]], dtype)
    gy = np.ones_like(z)
    gz = np.empty_like(z)
    y = act_ref(K.ACT_RELU, z, 0.0)
    K.act_backward(K.ACT_RELU, 0.0, 0.0, None, y, gy, gz, None)
    np.testing.assert_array_equal(gz, [[0.0, 0.0, 0.0, 1.0]])
    y = act_ref(K.ACT_LEAKY_RELU, z, 0.25)
    K.act_backward(K.ACT_LEAKY_RELU, 0.25, 0.0, z, y, gy, gz, None)
    np.testing.assert_array_equal(gz, [[0.25, 0.25, 0.25, 1.0]])


def test_act_backward_gbias_accumulates_over_calls(rng, dtype, tol):
    z, y, gy = act_backward_case(rng, (50, 70), dtype, K.ACT_TANH, 0.0)
    gz = np.empty_like(gy)
    gbias = np.zeros(70, dtype)
    K.act_backward(K.ACT_TANH, 0.0, 0.0, None, y, gy, gz, gbias, colsum_scratch(gy.shape[1]))
    once = gbias.copy()
    K.act_backward(K.ACT_TANH, 0.0, 0.0, None, y, gy, gz, gbias, colsum_scratch(gy.shape[1]))
    np.testing.assert_allclose(gbias, 2 * once, **tol)


@pytest.mark.parametrize("act", list(ACTS), ids=list(ACTS))
@pytest.mark.parametrize("shape", LARGE + [(40, 1000)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_act_backward_thread_independent(rng, dtype, use_threads, shape, act):
    code = ACTS[act]
    z, y, gy = act_backward_case(rng, shape, dtype, code, 0.1)
    g0 = rng.normal(size=shape[1]).astype(dtype)

    def run():
        out = []
        for gbias in (None, g0.copy()):
            gz = np.empty_like(gy)
            K.act_backward(code, 0.1, 0.0, z, y, gy, gz, gbias, colsum_scratch(gy.shape[1]))
            out += [gz] if gbias is None else [gz, gbias]
        return out

    run_1_and_2_threads(use_threads, run)


# ----------------------------------------------------------------------- batch norm

BN_SHAPES = [(2, 1), (5, 3), (9, 63), (4, 64), (6, 65), (3, 130)] + LARGE
BN_IDS = [f"{r}x{c}" for r, c in BN_SHAPES]


def bn_tol(dtype):
    # y = x * scale + shift in T, with x ~ 5 +- 2: a few ulps of 5 in float32
    return dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def bn_inputs(rng, shape, dtype):
    rows, cols = shape
    x = (5.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, cols).astype(dtype)
    beta = rng.normal(0.0, 1.0, cols).astype(dtype)
    rm = rng.normal(0.0, 1.0, cols).astype(dtype)
    rv = rng.uniform(0.5, 2.0, cols).astype(dtype)
    return x, gamma, beta, rm, rv


def bn_stats_ref(x):
    x64 = x.astype(np.float64)
    return x64.mean(axis=0), x64.var(axis=0)  # biased variance


@pytest.mark.parametrize("running", [True, False], ids=["running", "norunning"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=BN_IDS)
def test_bn_forward_train(rng, dtype, threads, shape, running):
    for affine in (True, False):
        check_bn_forward_train(rng, dtype, shape, running, affine)


def check_bn_forward_train(rng, dtype, shape, running, affine):
    rows, cols = shape
    eps, momentum = 1e-5, 0.1
    x, gamma, beta, rm, rv = bn_inputs(rng, shape, dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    x0 = x.copy()
    y = np.full_like(x, np.nan)
    save_mean = np.full(cols, np.nan, dtype)
    save_invstd = np.full(cols, np.nan, dtype)
    K.bn_forward_train(
        x,
        gamma if affine else None,
        beta if affine else None,
        eps,
        momentum,
        rm if running else None,
        rv if running else None,
        y,
        save_mean,
        save_invstd,
        colsum_scratch(2 * x.shape[1]),
    )
    mean, var = bn_stats_ref(x)
    invstd = 1.0 / np.sqrt(var + eps)
    g = gamma.astype(np.float64) if affine else 1.0
    b = beta.astype(np.float64) if affine else 0.0
    ref = (x.astype(np.float64) - mean) * invstd * g + b
    t = bn_tol(dtype)
    np.testing.assert_allclose(y, ref, **t)
    np.testing.assert_allclose(save_mean, mean, **t)
    np.testing.assert_allclose(save_invstd, invstd, **t)
    assert_same(x, x0)
    if running:
        unbiased = var * rows / (rows - 1)
        np.testing.assert_allclose(rm, (1 - momentum) * rm0 + momentum * mean, **t)
        np.testing.assert_allclose(rv, (1 - momentum) * rv0 + momentum * unbiased, **t)


@pytest.mark.parametrize("momentum", [0.0, 0.3, 1.0])
def test_bn_forward_train_momentum(rng, dtype, momentum):
    x, gamma, beta, rm, rv = bn_inputs(rng, (8, 5), dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    y, sm, si = np.empty_like(x), np.empty(5, dtype), np.empty(5, dtype)
    K.bn_forward_train(
        x, gamma, beta, 1e-3, momentum, rm, rv, y, sm, si, colsum_scratch(2 * x.shape[1])
    )
    mean, var = bn_stats_ref(x)
    t = bn_tol(dtype)
    np.testing.assert_allclose(rm, (1 - momentum) * rm0 + momentum * mean, **t)
    np.testing.assert_allclose(rv, (1 - momentum) * rv0 + momentum * var * 8 / 7, **t)
    np.testing.assert_allclose(si, 1 / np.sqrt(var + 1e-3), **t)


def test_bn_stats_far_from_zero(rng):
    """Mean and variance of data with a large offset keep their precision (float64)."""
    x = 1e6 + rng.standard_normal((100, 7))
    y, sm, si = np.empty_like(x), np.empty(7), np.empty(7)
    K.bn_forward_train(
        x, None, None, 1e-5, 0.1, None, None, y, sm, si, colsum_scratch(2 * x.shape[1])
    )
    mean, var = bn_stats_ref(x)
    np.testing.assert_allclose(sm, mean, rtol=1e-14)
    np.testing.assert_allclose(si, 1 / np.sqrt(var + 1e-5), rtol=1e-8)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-8)


def test_bn_constant_column_has_zero_variance(dtype):
    x = np.tile(np.array([[3.0, -2.0]], dtype), (6, 1))
    y, sm, si = np.empty_like(x), np.empty(2, dtype), np.empty(2, dtype)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    K.bn_forward_train(x, None, None, 1e-5, 0.5, rm, rv, y, sm, si, colsum_scratch(2 * x.shape[1]))
    np.testing.assert_allclose(si, 1 / np.sqrt(1e-5), rtol=1e-6)
    np.testing.assert_array_equal(sm, [3.0, -2.0])
    np.testing.assert_array_equal(rv, [0.5, 0.5])
    # y = x * scale + shift with scale = 1/sqrt(eps) ~ 316: zero up to the round-off of
    # x * scale in the dtype
    u = np.finfo(dtype).eps
    assert (np.abs(y) <= 4 * u * np.abs(x) * si).all()


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "noaffine"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=BN_IDS)
def test_bn_forward_eval(rng, dtype, threads, shape, affine):
    eps = 1e-3
    x, gamma, beta, rm, rv = bn_inputs(rng, shape, dtype)
    y = np.full_like(x, np.nan)
    K.bn_forward_eval(x, gamma if affine else None, beta if affine else None, rm, rv, eps, y)
    g = gamma.astype(np.float64) if affine else 1.0
    b = beta.astype(np.float64) if affine else 0.0
    ref = (x.astype(np.float64) - rm) / np.sqrt(rv.astype(np.float64) + eps) * g + b
    np.testing.assert_allclose(y, ref, **bn_tol(dtype))


def bn_backward_ref(batch_stats, x, gy, gamma, mean, invstd):
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    mean, invstd = mean.astype(np.float64), invstd.astype(np.float64)
    g = 1.0 if gamma is None else gamma.astype(np.float64)
    xhat = (x64 - mean) * invstd
    if batch_stats:
        gx = g * invstd * (gy64 - gy64.mean(0) - xhat * (gy64 * xhat).mean(0))
    else:
        gx = g * invstd * gy64
    return gx, (gy64 * xhat).sum(0), gy64.sum(0)


@pytest.mark.parametrize("batch_stats", [True, False], ids=["batch", "running"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=BN_IDS)
def test_bn_backward(rng, dtype, threads, shape, batch_stats):
    for affine, param_grads in itertools.product((True, False), (True, False)):
        check_bn_backward(rng, dtype, shape, batch_stats, affine, param_grads)


def check_bn_backward(rng, dtype, shape, batch_stats, affine, param_grads):
    rows, cols = shape
    x, gamma, _, rm, rv = bn_inputs(rng, shape, dtype)
    if batch_stats:
        mean, var = bn_stats_ref(x)
        mean, invstd = mean.astype(dtype), (1 / np.sqrt(var + 1e-5)).astype(dtype)
    else:
        mean, invstd = rm, (1 / np.sqrt(rv.astype(np.float64) + 1e-5)).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    gx = np.full_like(x, np.nan)
    ggamma = rng.standard_normal(cols).astype(dtype) if param_grads else None
    gbeta = rng.standard_normal(cols).astype(dtype) if param_grads else None
    gg0 = None if ggamma is None else ggamma.copy()
    gb0 = None if gbeta is None else gbeta.copy()
    K.bn_backward(
        batch_stats,
        x,
        gy,
        gamma if affine else None,
        mean,
        invstd,
        gx,
        ggamma,
        gbeta,
        colsum_scratch(2 * x.shape[1]),
    )
    rgx, rgg, rgb = bn_backward_ref(batch_stats, x, gy, gamma if affine else None, mean, invstd)
    if dtype == np.float32:
        # gx = k * (gy - c0 - xhat * c1) with O(1) terms: absolute float32 round-off
        np.testing.assert_allclose(gx, rgx, rtol=1e-4, atol=2e-5)
    else:
        np.testing.assert_allclose(gx, rgx, rtol=1e-9, atol=1e-10)
    if param_grads:
        scale = np.abs(gy).astype(np.float64).sum(0) * 3 + 1
        r = 1e-5 if dtype == np.float32 else 1e-12
        assert (np.abs(ggamma - (gg0 + rgg)) <= r * scale).all()
        assert (np.abs(gbeta - (gb0 + rgb)) <= r * scale).all()


def test_bn_backward_batch_stats_gradient_sums_to_zero(rng):
    """With batch statistics, gx is orthogonal to 1 and to xhat in each column."""
    x = rng.standard_normal((40, 9))
    gy = rng.standard_normal((40, 9))
    mean, var = bn_stats_ref(x)
    invstd = 1 / np.sqrt(var)  # exact orthogonality needs eps = 0
    gx = np.empty_like(x)
    K.bn_backward(True, x, gy, None, mean, invstd, gx, None, None, colsum_scratch(2 * x.shape[1]))
    np.testing.assert_allclose(gx.sum(0), 0.0, atol=1e-12)
    np.testing.assert_allclose((gx * (x - mean)).sum(0), 0.0, atol=1e-11)


@pytest.mark.parametrize("shape", LARGE[2:] + [(40, 1000)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_bn_thread_independent(rng, dtype, use_threads, shape):
    cols = shape[1]
    x, gamma, beta, rm, rv = bn_inputs(rng, shape, dtype)
    gy = rng.standard_normal(shape).astype(dtype)

    def run():
        rm1, rv1 = rm.copy(), rv.copy()
        y, sm, si = np.empty_like(x), np.empty(cols, dtype), np.empty(cols, dtype)
        K.bn_forward_train(
            x, gamma, beta, 1e-5, 0.1, rm1, rv1, y, sm, si, colsum_scratch(2 * x.shape[1])
        )
        ye = np.empty_like(x)
        K.bn_forward_eval(x, gamma, beta, rm, rv, 1e-5, ye)
        out = [y, sm, si, rm1, rv1, ye]
        for batch_stats in (True, False):
            gx, gg, gb = np.empty_like(x), np.zeros(cols, dtype), np.zeros(cols, dtype)
            K.bn_backward(
                batch_stats, x, gy, gamma, sm, si, gx, gg, gb, colsum_scratch(2 * x.shape[1])
            )
            out += [gx, gg, gb]
        return out

    run_1_and_2_threads(use_threads, run)


# -------------------------------------------------------------------------- dropout

U32 = np.uint32
U64 = np.uint64


def splitmix64_np(x):
    x = np.asarray(x, U64) + U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


def lowbias32_np(x):
    x = np.asarray(x, U32)
    x = x ^ (x >> U32(16))
    x = x * U32(0x7FEB352D)
    x = x ^ (x >> U32(15))
    x = x * U32(0x846CA68B)
    return x ^ (x >> U32(16))


def random_bits_np(seed, counter, n):
    """csrc/dropout.c's keyed hash, in NumPy uint32/uint64 arithmetic."""
    with np.errstate(over="ignore"):
        key = splitmix64_np(np.array([seed], U64) ^ splitmix64_np(np.array([counter], U64)))
        lo = (key & U64(0xFFFFFFFF)).astype(U32)
        hi = (key >> U64(32)).astype(U32)
        k = np.arange(n, dtype=U64).astype(U32)  # index truncated to 32 bits, as in C
        return lowbias32_np(lowbias32_np(k ^ lo) ^ hi)


def test_splitmix64_reference_values():
    # the first outputs of the splitmix64 generator seeded with 0 (Vigna's reference):
    # state advances by the golden gamma, so output i = splitmix64((i - 1) * gamma)
    with np.errstate(over="ignore"):
        states = np.arange(3, dtype=U64) * U64(0x9E3779B97F4A7C15)
        out = splitmix64_np(states)
    assert [int(v) for v in out] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("seed", [0, 1, 12345, 0xDEADBEEFCAFEBABE, 2**64 - 1])
@pytest.mark.parametrize("counter", [0, 1, 7, 2**40 + 3, 2**64 - 1])
def test_random_bits_match_numpy_hash(seed, counter):
    n = 2000
    out = np.empty(n, U32)
    K.random_bits(seed, counter, out)
    assert_same(out, random_bits_np(seed, counter, n))


def dropout_run(x, p, seed, counter):
    y = np.full_like(x, np.nan)
    mask = np.full(x.shape, 7, np.uint8)
    K.dropout_forward(x, y, mask, p, 1.0 / (1.0 - p), seed, counter)
    return y, mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("n", [1, 999, PAR + 1001])
def test_dropout_forward(rng, dtype, threads, n, p):
    x = rng.standard_normal(n).astype(dtype)
    seed, counter = 424242, 17
    y, mask = dropout_run(x, p, seed, counter)
    bits = np.empty(n, U32)
    K.random_bits(seed, counter, bits)
    # the mask is exactly bits >= floor(p * 2^32)
    thresh = math.floor(p * 2**32)
    assert set(np.unique(mask)) <= {0, 1}
    assert_same(mask.astype(bool), bits >= thresh)
    keep = mask.astype(bool)
    # survivors scaled by exactly 1/(1-p) (rounded once to the dtype), the rest zeroed
    scale = dtype.type(1.0 / (1.0 - p))
    assert_same(y[keep], x[keep] * scale)
    assert (y[~keep] == 0).all()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_rate_binomial(rng, p):
    n = 200_000
    x = np.ones(n, np.float32)
    for counter in range(3):
        _, mask = dropout_run(x, p, 99, counter)
        dropped = n - int(mask.sum())
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(dropped - n * p) <= 5 * sigma, (dropped, n * p, sigma)


def test_dropout_p_zero_keeps_everything(rng, dtype):
    x = rng.standard_normal((33, 65)).astype(dtype)
    y, mask = dropout_run(x, 0.0, 5, 0)
    assert mask.all()
    assert_same(y, x)


def test_dropout_nan_propagates(dtype):
    """Dropped elements are x * 0, so NaN input stays NaN (as in torch)."""
    x = np.full(4000, np.nan, dtype)
    y, mask = dropout_run(x, 0.5, 1, 2)
    assert 0 < mask.sum() < x.size
    assert np.isnan(y).all()


def test_dropout_masks_deterministic_and_counter_dependent(rng, dtype):
    n = 5000
    x = rng.standard_normal(n).astype(dtype)
    y1, m1 = dropout_run(x, 0.5, 3, 10)
    y2, m2 = dropout_run(x, 0.5, 3, 10)
    assert_same(m1, m2)
    assert_same(y1, y2)
    _, m3 = dropout_run(x, 0.5, 3, 11)
    _, m4 = dropout_run(x, 0.5, 4, 10)
    for other in (m3, m4):
        assert not np.array_equal(m1, other)
        # independent masks agree on about half the elements
        assert abs(np.mean(m1 == other) - 0.5) < 0.05


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_thread_independent(rng, dtype, use_threads, p):
    x = rng.standard_normal((517, 130)).astype(dtype)  # above the threshold
    assert x.size >= PAR

    def run():
        y, mask = dropout_run(x, p, 2**63 + 5, 123)
        gx = np.empty_like(x)
        K.dropout_backward(y, mask, 1.0 / (1.0 - p), gx)
        return y, mask, gx

    _, mask, _ = run_1_and_2_threads(use_threads, run)
    bits = np.empty(x.size, U32)
    K.random_bits(2**63 + 5, 123, bits)
    assert_same(mask.reshape(-1).astype(bool), bits >= math.floor(p * 2**32))


@pytest.mark.parametrize("p", [0.0, 0.25, 0.9])
@pytest.mark.parametrize("n", [3, 1000, PAR + 5])
def test_dropout_backward_reuses_mask(rng, dtype, threads, n, p):
    x = rng.standard_normal(n).astype(dtype)
    _, mask = dropout_run(x, p, 8, 8)
    gy = rng.standard_normal(n).astype(dtype)
    gx = np.full_like(gy, np.nan)
    K.dropout_backward(gy, mask, 1.0 / (1.0 - p), gx)
    scale = dtype.type(1.0 / (1.0 - p))
    keep = mask.astype(bool)
    assert_same(gx[keep], gy[keep] * scale)
    assert (gx[~keep] == 0).all()


# --------------------------------------------------------------------- softmax_xent


def xent_ref(z, labels, eps):
    z64 = z.astype(np.float64)
    rows, k = z.shape
    m = z64.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z64 - m).sum(axis=1, keepdims=True))
    logp = z64 - lse
    idx = np.arange(rows)
    row = -(1 - eps) * logp[idx, labels] - eps / k * logp.sum(axis=1)
    grad = np.exp(logp) - eps / k
    grad[idx, labels] -= 1 - eps
    return row, row.mean(), grad / rows


XENT_SHAPES = [
    (1, 1),
    (7, 3),
    (5, 10),
    (9, 63),
    (4, 64),
    (6, 65),
    (3, 130),
    (PAR // 10 + 3, 10),
    (PAR // 130 + 1, 130),
]


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("shape", XENT_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_softmax_xent(rng, dtype, tol, threads, shape, smoothing):
    rows, k = shape
    z = rng.normal(0.0, 3.0, shape).astype(dtype)
    labels = rng.integers(0, k, rows).astype(np.int64)
    grad = np.full_like(z, np.nan)
    row_loss = np.full(rows, np.nan)
    loss = K.softmax_xent(z, labels, smoothing, grad, row_loss)
    rrow, rloss, rgrad = xent_ref(z, labels, smoothing)
    assert isinstance(loss, float)
    r = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(row_loss, rrow, rtol=r, atol=r)
    np.testing.assert_allclose(loss, rloss, rtol=r, atol=r)
    np.testing.assert_allclose(grad, rgrad, rtol=tol["rtol"], atol=tol["atol"] / rows)
    # without a gradient buffer: the same loss, bit for bit
    row2 = np.empty(rows)
    assert K.softmax_xent(z, labels, smoothing, None, row2) == loss
    assert_same(row2, row_loss)


def test_softmax_xent_gradient_rows_sum_to_zero(rng):
    z = rng.normal(0, 2, (20, 7))
    labels = rng.integers(0, 7, 20)
    grad = np.empty_like(z)
    K.softmax_xent(z, labels, 0.2, grad, np.empty(20))
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)


def test_softmax_xent_large_logits_stay_finite(dtype):
    z = np.array(
        [[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0], [1e4, 1e4 - 1, 1e4 - 2]], dtype
    )
    labels = np.array([0, 0, 2, 2], np.int64)
    for smoothing in (0.0, 0.1):
        grad = np.empty_like(z)
        row = np.empty(4)
        loss = K.softmax_xent(z, labels, smoothing, grad, row)
        assert np.isfinite(loss) and np.isfinite(grad).all() and np.isfinite(row).all()
        rrow, rloss, rgrad = xent_ref(z, labels, smoothing)
        np.testing.assert_allclose(row, rrow, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(grad, rgrad, rtol=1e-5, atol=1e-7)
    # exact expectations without smoothing
    K.softmax_xent(z, labels, 0.0, grad, row)
    assert row[0] == 0.0
    np.testing.assert_allclose(row[1], 2e4 + math.log(2), rtol=1e-9)
    np.testing.assert_allclose(row[2], math.log(3), rtol=1e-6)


def test_softmax_xent_thread_independent(rng, dtype, use_threads):
    rows, k = 4001, 17
    z = rng.normal(0, 3, (rows, k)).astype(dtype)
    labels = rng.integers(0, k, rows)

    def run():
        grad, row = np.empty_like(z), np.empty(rows)
        loss = K.softmax_xent(z, labels, 0.1, grad, row)
        return loss, grad, row

    run_1_and_2_threads(use_threads, run)


# ------------------------------------------------------------------------ mse / mae

REG_SIZES = [1, 3, 64, 65, 4097, PAR + 7, 3 * 4096 * 4 + 1]


def regression_case(rng, n, dtype):
    p = rng.normal(0, 2, n).astype(dtype)
    t = rng.normal(0, 2, n).astype(dtype)
    t[::5] = p[::5]  # exact zeros in the difference
    return p, t


@pytest.mark.parametrize("n", REG_SIZES)
def test_mse(rng, dtype, threads, n):
    p, t = regression_case(rng, n, dtype)
    d = p - t  # the kernel's difference, in the dtype
    grad = np.full_like(p, np.nan)
    loss = K.mse(p, t, grad)
    ref = np.mean(d.astype(np.float64) ** 2)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    np.testing.assert_allclose(
        grad, dtype.type(2.0 / n) * d, rtol=1e-6 if dtype == np.float32 else 1e-14
    )
    np.testing.assert_allclose(
        grad, 2.0 * d.astype(np.float64) / n, rtol=2e-7 if dtype == np.float32 else 1e-14
    )
    assert K.mse(p, t, None) == loss


@pytest.mark.parametrize("n", REG_SIZES)
def test_mae(rng, dtype, threads, n):
    p, t = regression_case(rng, n, dtype)
    d = p - t
    grad = np.full_like(p, np.nan)
    loss = K.mae(p, t, grad)
    ref = np.mean(np.abs(d.astype(np.float64)))
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    step = dtype.type(1.0 / n)
    expected = np.where(d > 0, step, np.where(d < 0, -step, dtype.type(0)))
    assert_same(grad, expected)
    assert (grad[::5] == 0).all()  # sign(0) = 0
    assert K.mae(p, t, None) == loss


@pytest.mark.parametrize("kernel", [K.mse, K.mae], ids=["mse", "mae"])
def test_regression_thread_independent(rng, dtype, use_threads, kernel):
    p, t = regression_case(rng, 5 * 4096 * 4 + 3, dtype)

    def run():
        grad = np.empty_like(p)
        return kernel(p, t, grad), grad

    run_1_and_2_threads(use_threads, run)


# --------------------------------------------------------------------------- optim


def sgd_ref(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    """csrc/generic/optim.h's SGD in float64 (torch.optim.SGD)."""
    g = g + wd * p
    if buf is not None:
        b = g.copy() if first else momentum * buf + (1 - dampening) * g
        buf[...] = b
        g = g + momentum * b if nesterov else b
    p -= lr * g


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("dampening", [0.0, 0.3], ids=["nodamp", "damp"])
@pytest.mark.parametrize("momentum", [0.0, 0.9], ids=["nomom", "mom"])
@pytest.mark.parametrize("n", [1, 67, PAR + 3])
def test_sgd_step(rng, dtype, threads, n, momentum, dampening, nesterov):
    for wd in (0.0, 0.05):
        check_sgd_step(rng, dtype, n, momentum, dampening, nesterov, wd)


def check_sgd_step(rng, dtype, n, momentum, dampening, nesterov, wd):
    lr = 0.1
    p = rng.standard_normal(n).astype(dtype)
    buf = np.full(n, np.nan, dtype) if momentum else None  # first step must not read it
    p64 = p.astype(np.float64)
    buf64 = np.zeros(n) if momentum else None
    for step in range(4):
        g = rng.standard_normal(n).astype(dtype)
        K.sgd_step(p, g, buf, lr, momentum, dampening, wd, nesterov, step == 0)
        sgd_ref(p64, g.astype(np.float64), buf64, lr, momentum, dampening, wd, nesterov, step == 0)
    r = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(p, p64, **r)
    if momentum:
        np.testing.assert_allclose(buf, buf64, **r)


def test_sgd_first_step_resets_buffer(rng, dtype):
    p = rng.standard_normal(10).astype(dtype)
    g = rng.standard_normal(10).astype(dtype)
    buf = np.full(10, 1e3, dtype)
    p0 = p.copy()
    K.sgd_step(p, g, buf, 0.5, 0.9, 0.5, 0.0, False, True)
    assert_same(buf, g)  # b = g on the first step, ignoring the old buffer and dampening
    np.testing.assert_allclose(p, p0 - dtype.type(0.5) * g, rtol=1e-6)


def adam_ref(p, g, m, v, vmax, lr, b1, b2, eps, wd, decoupled, t):
    """csrc/generic/optim.h's Adam/AdamW in float64 (torch.optim.Adam / AdamW)."""
    if decoupled:
        p *= 1 - lr * wd
    else:
        g = g + wd * p
    m += (1 - b1) * (g - m)
    v[...] = b2 * v + (1 - b2) * g * g
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        vh = vmax
    else:
        vh = v
    bc1, bc2_sqrt = 1 - b1**t, math.sqrt(1 - b2**t)
    p -= lr / bc1 * m / (np.sqrt(vh) / bc2_sqrt + eps)


def adam_run(
    rng,
    p,
    n,
    dtype,
    wd,
    decoupled,
    amsgrad,
    steps=5,
    lr=1e-2,
    betas=(0.9, 0.999),
    eps=1e-8,
    grads=None,
):
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    vmax = np.zeros(n, dtype) if amsgrad else None
    for t in range(1, steps + 1):
        g = grads[t - 1]
        K.adam_step(
            p,
            g,
            m,
            v,
            vmax,
            lr,
            betas[0],
            betas[1],
            eps,
            wd,
            decoupled,
            1 - betas[0] ** t,
            math.sqrt(1 - betas[1] ** t),
        )
    return p, m, v, vmax


def adam_grads(rng, n, dtype, steps=5):
    # a large first gradient, then small ones: amsgrad's running max matters
    return [
        (rng.standard_normal(n) * (10.0 if t == 0 else 0.5)).astype(dtype) for t in range(steps)
    ]


@pytest.mark.parametrize("decoupled", [False, True], ids=["coupled", "decoupled"])
@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["nowd", "wd"])
@pytest.mark.parametrize("n", [1, 67, PAR + 3])
def test_adam_step(rng, dtype, threads, n, wd, decoupled):
    for amsgrad in (False, True):
        check_adam_step(rng, dtype, n, wd, decoupled, amsgrad)


def check_adam_step(rng, dtype, n, wd, decoupled, amsgrad):
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    p0 = rng.standard_normal(n).astype(dtype)
    grads = adam_grads(rng, n, dtype)
    p, m, v, vmax = adam_run(rng, p0.copy(), n, dtype, wd, decoupled, amsgrad, grads=grads)
    p64, m64, v64 = p0.astype(np.float64), np.zeros(n), np.zeros(n)
    vmax64 = np.zeros(n) if amsgrad else None
    for t, g in enumerate(grads, 1):
        adam_ref(p64, g.astype(np.float64), m64, v64, vmax64, lr, b1, b2, eps, wd, decoupled, t)
    r = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(p, p64, **r)
    np.testing.assert_allclose(m, m64, **r)
    np.testing.assert_allclose(v, v64, **r)
    if amsgrad:
        np.testing.assert_allclose(vmax, vmax64, **r)
        assert (vmax >= v).all()


def test_adam_weight_decay_coupled_differs_from_decoupled(rng):
    n = 50
    p0 = rng.standard_normal(n)
    grads = adam_grads(rng, n, np.float64)
    a = adam_run(rng, p0.copy(), n, np.float64, 0.1, False, False, grads=grads)[0]
    b = adam_run(rng, p0.copy(), n, np.float64, 0.1, True, False, grads=grads)[0]
    c = adam_run(rng, p0.copy(), n, np.float64, 0.0, True, False, grads=grads)[0]
    assert np.abs(a - b).max() > 1e-4
    assert np.abs(b - c).max() > 1e-5


@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adam", "adamw_amsgrad"])
def test_optim_thread_independent(rng, dtype, use_threads, kind):
    n = PAR * 2 + 11
    p0 = rng.standard_normal(n).astype(dtype)
    grads = adam_grads(rng, n, dtype, steps=3)

    def run():
        p = p0.copy()
        if kind.startswith("sgd"):
            buf = np.zeros(n, dtype)
            for t, g in enumerate(grads):
                K.sgd_step(p, g, buf, 0.1, 0.9, 0.0, 0.01, kind == "sgd_nesterov", t == 0)
            return p, buf
        amsgrad = kind == "adamw_amsgrad"
        return tuple(
            x
            for x in adam_run(rng, p, n, dtype, 0.01, amsgrad, amsgrad, steps=3, grads=grads)
            if x is not None
        )

    run_1_and_2_threads(use_threads, run)


# ---------------------------------------------------------------------- dtype check


def test_kernels_reject_other_dtypes():
    x = np.zeros((2, 3), np.int32)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.bias_act(K.ACT_RELU, 0.0, 0.0, None, x, x)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.mse(np.zeros(3, np.float16), np.zeros(3, np.float16), None)


@pytest.mark.parametrize("rows", [(0, 5), (5, 12), (12, 13)])
def test_dropout_offset_draws_the_rows_of_a_larger_batch(rng, dtype, rows):
    """A shard of rows [a, b) with offset a * cols draws the mask one call over the
    whole batch draws for those rows (data-parallel training)."""
    x = rng.standard_normal((13, 7)).astype(dtype)
    y, mask = dropout_run(x, 0.4, 99, 3)
    a, b = rows
    ys, ms = np.empty_like(x[a:b]), np.empty(x[a:b].shape, np.uint8)
    K.dropout_forward(np.ascontiguousarray(x[a:b]), ys, ms, 0.4, 1 / 0.6, 99, 3, a * 7)
    assert_same(ms, mask[a:b])
    assert_same(ys, y[a:b])
    with pytest.raises(ValueError, match="2\\*\\*32"):
        K.dropout_forward(x, y, mask, 0.4, 1 / 0.6, 99, 3, 2**32 - 10)


# -- weight initialisation (csrc/init.c) --------------------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_init_uniform_fills_in_place_within_bounds_for_any_thread_count(dt, use_threads):
    out = {}
    for t in (1, 2):
        with use_threads(t):
            x = np.full(300_001, np.nan, dt)
            K.init_uniform(x, 12345, -0.5, 2.0)
            out[t] = x
    np.testing.assert_array_equal(out[1], out[2])  # a pure function of (seed, index)
    x = out[1]
    assert np.isfinite(x).all() and x.min() >= -0.5 and x.max() < 2.0
    # moments of U(-0.5, 2): mean 0.75, variance 2.5^2 / 12, within 5 standard errors
    se = 2.5 / np.sqrt(12 * x.size)
    assert abs(x.mean() - 0.75) < 5 * se
    assert abs(x.var() - 2.5**2 / 12) < 5 * 2.5**2 / 12 * np.sqrt(0.8 / x.size)
    # every tenth of the range gets its share (chi-square with 9 degrees of freedom)
    counts = np.histogram(x, bins=10, range=(-0.5, 2.0))[0]
    chi2 = ((counts - x.size / 10) ** 2 / (x.size / 10)).sum()
    assert chi2 < 33.7  # p = 1e-4
    # neighbouring elements are not correlated
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 5 / np.sqrt(x.size)
    other = np.empty_like(x)
    K.init_uniform(other, 12346, -0.5, 2.0)
    assert abs(np.corrcoef(x, other)[0, 1]) < 5 / np.sqrt(x.size)


def test_init_uniform_double_precision_uses_53_bits():
    x = np.empty(100_000)
    K.init_uniform(x, 7, 0.0, 1.0)
    frac = x * 2**24
    assert np.count_nonzero(frac != np.floor(frac)) > 99_000  # not float32-grained


def test_init_uniform_refuses_what_it_cannot_fill():
    with pytest.raises(TypeError, match="init_uniform: x"):
        K.init_uniform(np.zeros(4, np.int32), 1, 0.0, 1.0)
    with pytest.raises(TypeError):
        K.init_uniform([0.0, 1.0], 1, 0.0, 1.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        K.init_uniform(np.zeros((4, 4))[:, ::2], 1, 0.0, 1.0)
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.init_uniform(ro, 1, 0.0, 1.0)
    K.init_uniform(np.zeros(0, np.float32), 1, 0.0, 1.0)  # nothing to do


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_float32_sigmoid_and_tanh_within_a_few_ulps(name):
    """csrc/vmath.h's vectorised sigmoid and tanh against float64 NumPy over the whole
    float range: a dense grid, the polynomial/exponential switch of tanh (|x| = 0.625),
    the exponent's clamps (+-87.3, +-88.7) and +-20, -0, +-inf and NaN."""
    edges = [0.625, 20.0, 87.3365479, 88.7228393]
    x = np.concatenate(
        [
            np.linspace(-100, 100, 200_001),
            np.geomspace(1e-30, 1e4, 2001),
            -np.geomspace(1e-30, 1e4, 2001),
            [e * s for e in edges for s in (1, -1)],
            [
                np.nextafter(np.float32(e * s), np.float32(d))
                for e in edges
                for s in (1, -1)
                for d in (-np.inf, np.inf)
            ],
            [0.0, -0.0, np.inf, -np.inf, np.nan],
        ]
    ).astype(np.float32)
    act = {"sigmoid": K.ACT_SIGMOID, "tanh": K.ACT_TANH}[name]
    y = np.empty_like(x)
    K.bias_act(act, 0.0, 0.0, None, x.copy(), y)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-x64)) if name == "sigmoid" else np.tanh(x64)
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    err = np.abs(y.astype(np.float64) - ref)
    finite = np.isfinite(ref)
    # 3 ulps, or below the smallest normal float (sigmoid's tail below e^-87.3 is 0)
    ok = (err <= 3 * ulp) | (err < 1.2e-38)
    assert ok[finite].all(), f"x = {x[finite & ~ok][:5]}: {err[finite & ~ok][:5]}"
    assert np.array_equal(np.isnan(y), np.isnan(ref))
