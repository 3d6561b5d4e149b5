"""The batch-norm kernels on (N, C, H*W) input - BatchNorm2d and BatchNorm1d of (N, C,
L) - and BatchNorm2d -> ReLU fused, against plain NumPy in float64: statistics over
chunks of whole samples, the normalising pass over planes, the two-pass backward, the
ReLU's mask taken again from x and the forward's affine."""

import numpy as np
import pytest

from fastnn import _kernels as K

EPS, MOMENTUM = 1e-5, 0.1
# (N, C, inner): odd sizes, one sample with several positions, one channel, more
# samples than statistics chunks (16), and sizes split between threads (>= 32768
# values), planes shorter and longer than a partial sum's span (256 values).
SHAPES = [(2, 3, 5), (1, 4, 7), (5, 1, 300), (3, 2, 1), (37, 6, 17), (20, 16, 1024 + 3)]
IDS = ["x".join(map(str, s)) for s in SHAPES]


def scratch(c):
    """NaN-filled: its prior contents must not matter."""
    return np.full(K.COLSUM_SCRATCH_ROWS * 2 * c, np.nan)


def tols(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)


def inputs(rng, shape, dtype, offset=0.7):
    n, c, _ = shape
    x = (offset + 1.5 * rng.standard_normal(shape)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.normal(0.0, 0.5, c).astype(dtype)
    return x, gamma, beta


def stats_ref(x):
    x64 = x.astype(np.float64)
    return x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))


def forward_ref(x, gamma, beta):
    mean, var = stats_ref(x)
    invstd = 1 / np.sqrt(var + EPS)
    xhat = (x.astype(np.float64) - mean[:, None]) * invstd[:, None]
    return xhat * gamma.astype(np.float64)[:, None] + beta.astype(np.float64)[:, None], mean, var


def backward_ref(x, gy, gamma, mean, invstd, mask=None):
    """gx, ggamma, gbeta of batch norm with batch statistics; mask: where a ReLU after
    it passed its input."""
    x64, g = x.astype(np.float64), gy.astype(np.float64)
    if mask is not None:
        g = np.where(mask, g, 0.0)
    mean, invstd = mean.astype(np.float64)[:, None], invstd.astype(np.float64)[:, None]
    xhat = (x64 - mean) * invstd
    m = x.shape[0] * x.shape[2]
    sg, sgx = g.sum(axis=(0, 2)), (g * xhat).sum(axis=(0, 2))
    gx = (
        gamma.astype(np.float64)[:, None] * invstd * (g - sg[:, None] / m - xhat * sgx[:, None] / m)
    )
    return gx, sgx, sg


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn_relu"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_training_forward_equals_numpy(rng, dtype, threads, shape, relu):
    x, gamma, beta = inputs(rng, shape, dtype)
    c = shape[1]
    rm, rv = rng.normal(0, 1, c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    rm0, rv0, x0 = rm.copy(), rv.copy(), x.copy()
    y = np.full_like(x, np.nan)
    sm, si = np.full(c, np.nan, dtype), np.full(c, np.nan, dtype)
    if relu:
        sc, sh = np.full(c, np.nan, dtype), np.full(c, np.nan, dtype)
        K.bn_relu_forward_train(
            x, gamma, beta, EPS, MOMENTUM, rm, rv, y, sm, si, sc, sh, scratch(c)
        )
    else:
        K.bn_forward_train(x, gamma, beta, EPS, MOMENTUM, rm, rv, y, sm, si, scratch(c))
    ref, mean, var = forward_ref(x, gamma, beta)
    if relu:
        ref = np.maximum(ref, 0)
        invstd = 1 / np.sqrt(var + EPS)
        np.testing.assert_allclose(sc, gamma * invstd, **tols(dtype))
        np.testing.assert_allclose(sh, beta - mean * gamma * invstd, **tols(dtype))
    t = tols(dtype)
    np.testing.assert_allclose(y, ref, **t)
    np.testing.assert_allclose(sm, mean, **t)
    np.testing.assert_allclose(si, 1 / np.sqrt(var + EPS), **t)
    m = shape[0] * shape[2]
    unbiased = var * m / (m - 1)
    np.testing.assert_allclose(rm, (1 - MOMENTUM) * rm0 + MOMENTUM * mean, **t)
    np.testing.assert_allclose(rv, (1 - MOMENTUM) * rv0 + MOMENTUM * unbiased, **t)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn_relu"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_backward_equals_numpy(rng, dtype, threads, shape, relu):
    x, gamma, beta = inputs(rng, shape, dtype)
    c = shape[1]
    y, sm, si = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
    sc, sh = np.empty(c, dtype), np.empty(c, dtype)
    K.bn_relu_forward_train(x, gamma, beta, EPS, 0.0, None, None, y, sm, si, sc, sh, scratch(c))
    gy = rng.standard_normal(shape).astype(dtype)
    gx = np.full_like(x, np.nan)
    gg0, gb0 = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    gg, gb = gg0.copy(), gb0.copy()  # accumulated into
    if relu:
        K.bn_relu_backward(x, gy, gamma, sm, si, sc, sh, gx, gg, gb, scratch(c))
    else:
        K.bn_backward(True, x, gy, gamma, sm, si, gx, gg, gb, scratch(c))
    rgx, rgg, rgb = backward_ref(x, gy, gamma, sm, si, y > 0 if relu else None)
    if dtype == np.float32:
        np.testing.assert_allclose(gx, rgx, rtol=1e-4, atol=3e-5)
    else:
        np.testing.assert_allclose(gx, rgx, rtol=1e-9, atol=1e-10)
    scale = np.abs(gy).astype(np.float64).sum(axis=(0, 2)) * 3 + 1
    r = 2e-6 if dtype == np.float32 else 1e-12
    assert (np.abs(gg - (gg0 + rgg)) <= r * scale).all()
    assert (np.abs(gb - (gb0 + rgb)) <= r * scale).all()


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_backward_with_running_statistics(rng, dtype, shape):
    """Fixed statistics (evaluation-mode backward): gx = gamma invstd gy."""
    x, gamma, _ = inputs(rng, shape, dtype)
    c = shape[1]
    mean, invstd = rng.normal(0, 1, c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    gx = np.full_like(x, np.nan)
    K.bn_backward(False, x, gy, gamma, mean, invstd, gx, None, None, scratch(c))
    ref = gamma.astype(np.float64)[:, None] * invstd[:, None] * gy.astype(np.float64)
    np.testing.assert_allclose(gx, ref, **tols(dtype))


def test_relu_mask_from_x_is_the_forward_mask(rng):
    """Backward rectifies where the forward's y > 0, decided again from x: with gy = 1
    the bias gradient counts those positions (exactly, in float32 too), here for data
    crowded around each channel's threshold."""
    n, c, inner = 64, 8, 257
    x = rng.standard_normal((n, c, inner)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.normal(0, 0.5, c).astype(np.float32)
    y, sm, si = np.empty_like(x), np.empty(c, np.float32), np.empty(c, np.float32)
    sc, sh = np.empty(c, np.float32), np.empty(c, np.float32)
    # two forwards: the second one's affine puts many values next to the threshold
    K.bn_relu_forward_train(x, gamma, beta, EPS, 0.0, None, None, y, sm, si, sc, sh, scratch(c))
    x = (-sh / sc)[:, None] + np.float32(1e-6) * rng.integers(-3, 4, x.shape).astype(np.float32)
    x = np.ascontiguousarray(x.astype(np.float32))
    K.bn_relu_forward_train(x, gamma, beta, EPS, 0.0, None, None, y, sm, si, sc, sh, scratch(c))
    assert 0 < (y > 0).mean() < 1
    gb, gx = np.zeros(c, np.float32), np.empty_like(x)
    K.bn_relu_backward(x, np.ones_like(x), gamma, sm, si, sc, sh, gx, None, gb, scratch(c))
    np.testing.assert_array_equal(gb, (y > 0).sum(axis=(0, 2)))


def test_statistics_of_data_far_from_zero_float32(rng):
    """Sums shifted by each channel's first value keep float32 statistics accurate for
    data with a large offset (here 1000 +- 1)."""
    x = (1000 + rng.standard_normal((16, 3, 400))).astype(np.float32)
    y, sm, si = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    K.bn_forward_train(x, None, None, EPS, 0.1, None, None, y, sm, si, scratch(3))
    mean, var = stats_ref(x)
    np.testing.assert_allclose(sm, mean, rtol=1e-7)
    np.testing.assert_allclose(si, 1 / np.sqrt(var + EPS), rtol=1e-4)


@pytest.mark.parametrize("shape", [(37, 6, 17), (20, 16, 1027), (3, 64, 200)], ids=str)
def test_results_do_not_depend_on_the_thread_count(rng, dtype, use_threads, shape):
    x, gamma, beta = inputs(rng, shape, dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]

    def run():
        out = []
        for relu in (False, True):
            rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
            y, sm, si = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
            sc, sh = np.empty(c, dtype), np.empty(c, dtype)
            gx, gg, gb = np.empty_like(x), np.zeros(c, dtype), np.zeros(c, dtype)
            if relu:
                K.bn_relu_forward_train(
                    x, gamma, beta, EPS, 0.1, rm, rv, y, sm, si, sc, sh, scratch(c)
                )
                K.bn_relu_backward(x, gy, gamma, sm, si, sc, sh, gx, gg, gb, scratch(c))
            else:
                K.bn_forward_train(x, gamma, beta, EPS, 0.1, rm, rv, y, sm, si, scratch(c))
                K.bn_backward(True, x, gy, gamma, sm, si, gx, gg, gb, scratch(c))
            out += [y, sm, si, rm, rv, gx, gg, gb]
        return out

    with use_threads(1):
        one = run()
    with use_threads(2):
        two = run()
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
