"""Batch Renormalization against a NumPy transcription of Ioffe (2017), Algorithm 1 and
its backward equations, and against central differences."""

import numpy as np
import pytest

import fastnn
from fastnn import _kernels
from fastnn.layers import renorm


def paper_forward(x, gamma, beta, mu, var, eps, momentum, rmax, dmax):
    """Algorithm 1 in float64 (x: (N, C) or (N, C, L)); returns y, the updated running
    mean and variance (torch's unbiased update), and the cache of the backward."""
    x = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    mu_b = x.mean(axis=axes)
    var_b = x.var(axis=axes)
    sigma_b = np.sqrt(var_b + eps)
    sigma = np.sqrt(var + eps)
    r = np.clip(sigma_b / sigma, 1 / rmax, rmax)
    d = np.clip((mu_b - mu) / sigma, -dmax, dmax)
    xc = x - mu_b.reshape(bshape)
    x_hat = xc / sigma_b.reshape(bshape) * r.reshape(bshape) + d.reshape(bshape)
    y = gamma.reshape(bshape) * x_hat + beta.reshape(bshape)
    new_mu = mu + momentum * (mu_b - mu)
    new_var = var + momentum * (var_b * m / (m - 1) - var)
    cache = dict(
        xc=xc, x_hat=x_hat, sigma_b=sigma_b, r=r, m=m, axes=axes, bshape=bshape, gamma=gamma
    )
    return y, new_mu, new_var, cache


def paper_backward(g, cache):
    """The paper's gradients with r and d held constant (stop_gradient)."""
    axes, bshape, m = cache["axes"], cache["bshape"], cache["m"]
    r, sigma_b = cache["r"].reshape(bshape), cache["sigma_b"].reshape(bshape)
    dx_hat = g * cache["gamma"].reshape(bshape)
    dsigma_b = np.sum(dx_hat * cache["xc"] * (-r / sigma_b**2), axis=axes, keepdims=True)
    dmu_b = np.sum(dx_hat * (-r / sigma_b), axis=axes, keepdims=True)
    dx = dx_hat * r / sigma_b + dsigma_b * cache["xc"] / (m * sigma_b) + dmu_b / m
    return dx, np.sum(g * cache["x_hat"], axis=axes), np.sum(g, axis=axes)


def run_kernels(x, gamma, beta, mu, var, eps, momentum, rmax, dmax, g=None):
    """renorm_forward_train (and renorm_backward when g is given) on copies."""
    c = x.shape[1]
    dt = x.dtype
    rm, rv = mu.astype(dt), var.astype(dt)
    y, mean, invstd = np.empty_like(x), np.empty(c, dt), np.empty(c, dt)
    scratch = np.empty(_kernels.COLSUM_SCRATCH_ROWS * 2 * c)
    scale, r, d = renorm.renorm_forward_train(
        x, gamma, beta, eps, momentum, rm, rv, rmax, dmax, y, mean, invstd, scratch
    )
    out = dict(y=y, rm=rm, rv=rv, r=r, d=d)
    if g is not None:
        gx = np.empty_like(x)
        gw = None if gamma is None else np.zeros(c, dt)
        gb = None if beta is None else np.zeros(c, dt)
        renorm.renorm_backward(
            x, g, scale, r, d, mean, invstd, gx, gw, gb, np.empty((2, c), dt), scratch
        )
        out.update(gx=gx, gw=gw, gb=gb)
    return out


def make_case(rng, dtype, shape, shift=0.0, spread=1.0):
    c = shape[1]
    x = (rng.normal(size=shape) * 2.0 + 0.5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.normal(size=c).astype(dtype)
    mu = (rng.normal(size=c) * 0.3 + 0.5 + shift).astype(dtype)
    var = (rng.uniform(2.0, 6.0, c) * spread).astype(dtype)
    return x, gamma, beta, mu, var


@pytest.mark.parametrize("shape", [(64, 7), (9, 5, 4)])
@pytest.mark.parametrize("rmax,dmax", [(3.0, 5.0), (1.2, 0.1), (1.0, 0.0)])
def test_forward_backward_match_the_paper(dtype, tol, rng, shape, rmax, dmax):
    x, gamma, beta, mu, var = make_case(rng, dtype, shape)
    g = rng.normal(size=shape).astype(dtype)
    got = run_kernels(x, gamma, beta, mu, var, 1e-5, 0.1, rmax, dmax, g)
    y, new_mu, new_var, cache = paper_forward(
        x, gamma.astype(np.float64), beta, mu, var, 1e-5, 0.1, rmax, dmax
    )
    dx, dgamma, dbeta = paper_backward(g.astype(np.float64), cache)
    np.testing.assert_allclose(got["y"], y, **tol)
    np.testing.assert_allclose(got["rm"], new_mu, **tol)
    np.testing.assert_allclose(got["rv"], new_var, **tol)
    np.testing.assert_allclose(got["gx"], dx, **tol)
    np.testing.assert_allclose(got["gw"], dgamma, **tol)
    np.testing.assert_allclose(got["gb"], dbeta, **tol)
    if rmax == 1.0:  # no correction: batch norm
        assert np.all(got["r"] == 1) and np.all(got["d"] == 0)
    elif rmax == 1.2:  # the case exercises the clipping: some channels clipped
        r, d = got["r"], got["d"]
        assert np.any((r == 1.2) | (r == 1 / 1.2)) and np.any(np.abs(d) == 0.1)
        assert not np.all((r == 1.2) | (r == 1 / 1.2))


def test_without_affine_matches_the_paper(rng):
    x, _, _, mu, var = make_case(rng, np.float64, (32, 6))
    g = rng.normal(size=x.shape)
    got = run_kernels(x, None, None, mu, var, 1e-5, 0.1, 2.0, 1.0, g)
    ones, zeros = np.ones(6), np.zeros(6)
    y, _, _, cache = paper_forward(x, ones, zeros, mu, var, 1e-5, 0.1, 2.0, 1.0)
    np.testing.assert_allclose(got["y"], y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["gx"], paper_backward(g, cache)[0], rtol=1e-10, atol=1e-12)


def test_gradient_is_the_derivative_where_clipping_holds_r_and_d(rng, num_grad, fd_tol):
    """Where r and d sit at their clip bounds they do not depend on x, so the
    stop-gradient backward is the true derivative: central differences must agree."""
    # running variance far below the batch's and running mean far away: r = rmax, d = dmax
    x, gamma, beta, mu, var = make_case(rng, np.float64, (12, 4), shift=-50.0, spread=0.01)
    R = rng.normal(size=x.shape)

    def f(xv, gv=gamma, bv=beta):
        return float(np.sum(run_kernels(xv, gv, bv, mu, var, 1e-5, 0.1, 1.5, 0.5)["y"] * R))

    got = run_kernels(x, gamma, beta, mu, var, 1e-5, 0.1, 1.5, 0.5, R)
    assert np.all(got["r"] == 1.5) and np.all(got["d"] == 0.5)
    np.testing.assert_allclose(got["gx"], num_grad(lambda v: f(v), x.copy()), **fd_tol)
    np.testing.assert_allclose(got["gw"], num_grad(lambda v: f(x, v), gamma.copy()), **fd_tol)
    np.testing.assert_allclose(got["gb"], num_grad(lambda v: f(x, gamma, v), beta.copy()), **fd_tol)


def test_renorm_factors_clip_both_ways():
    r, d = renorm.renorm_factors(
        np.array([0.0, 10.0, 1.0]),
        np.array([1.0, 0.01, 100.0]),
        np.zeros(3),
        np.ones(3),
        0.0,
        3.0,
        5.0,
    )
    np.testing.assert_allclose(r, [1.0, 3.0, 1 / 3])
    np.testing.assert_allclose(d, [0.0, 5.0, 1.0])


def test_ramp_schedule():
    assert renorm._ramp(0, 5, 15, 1.0, 3.0) == 1.0
    assert renorm._ramp(5, 5, 15, 1.0, 3.0) == 1.0
    assert renorm._ramp(10, 5, 15, 1.0, 3.0) == 2.0
    assert renorm._ramp(99, 5, 15, 1.0, 3.0) == 3.0
    assert renorm._ramp(0, 0, 0, 1.0, 3.0) == 3.0


# -- the layer --------------------------------------------------------------------------


def test_layer_matches_the_paper_then_evaluates_as_batch_norm(rng):
    from fastnn.layers import BatchNorm1d, BatchRenorm1d

    layer = BatchRenorm1d(5, momentum=0.2, rmax=1.5, dmax=0.3, dtype=np.float64)
    layer.weight.data = rng.uniform(0.5, 1.5, 5)
    layer.bias.data = rng.normal(size=5)
    mu, var = layer.running_mean.copy(), layer.running_var.copy()
    for step in range(3):
        x = rng.normal(size=(16, 5)) * (1 + step) + step
        g = rng.normal(size=x.shape)
        ref, mu, var, cache = paper_forward(
            x, layer.weight.data, layer.bias.data, mu, var, layer.eps, 0.2, 1.5, 0.3
        )
        layer.zero_grad()
        np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-10, atol=1e-12)
        dx, dgamma, dbeta = paper_backward(g, cache)
        np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, dgamma, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, dbeta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, mu, rtol=1e-10)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-10)
    assert int(layer.num_batches_tracked) == 3
    bn = BatchNorm1d(5, dtype=np.float64)
    bn.load_state_dict(layer.state_dict())
    layer.eval(), bn.eval()
    x = rng.normal(size=(8, 5))
    np.testing.assert_allclose(layer.forward(x), bn.forward(x), rtol=1e-12)


def test_layer_schedule_follows_num_batches_tracked(rng):
    from fastnn.layers import BatchRenorm1d

    layer = BatchRenorm1d(3, rmax=3.0, dmax=5.0, rmax_ramp=(2, 6), dmax_ramp=(2, 4))
    seen = []
    for _ in range(7):
        seen.append(layer.clipping())
        layer.forward(rng.normal(size=(8, 3)).astype(np.float32))
    assert seen == [
        (1.0, 0.0),
        (1.0, 0.0),
        (1.0, 0.0),
        (1.5, 2.5),
        (2.0, 5.0),
        (2.5, 5.0),
        (3.0, 5.0),
    ]


def test_layer_config_roundtrip_and_bad_arguments():
    from fastnn.layers import BatchRenorm1d

    layer = BatchRenorm1d(4, rmax=2.0, dmax=1.0, rmax_ramp=(10, 20), name="brn")
    clone = BatchRenorm1d(**layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="rmax must be"):
        BatchRenorm1d(4, rmax=0.5)
    with pytest.raises(ValueError, match="dmax must be"):
        BatchRenorm1d(4, dmax=-1)
    with pytest.raises(ValueError, match="rmax_ramp"):
        BatchRenorm1d(4, rmax_ramp=(5, 1))
    with pytest.raises(ValueError, match="channels"):
        layer.forward(np.zeros((4, 3), np.float32))


def test_trains_an_mlp_on_digits():
    from fastnn.layers import BatchRenorm1d

    X, y = fastnn.datasets.load_digits()
    X = X / 16.0
    fastnn.seed(0)
    model = fastnn.Sequential(
        fastnn.Dense(64, 64), BatchRenorm1d(64, momentum=0.1), fastnn.ReLU(), fastnn.Dense(64, 10)
    )
    trainer = fastnn.Trainer(
        model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.Adam(model.parameters(), lr=3e-3)
    )
    trainer.fit(X[:1400], y[:1400], epochs=8, batch_size=32, verbose=0)
    assert trainer.evaluate(X[1400:], y[1400:])["accuracy"] > 0.9
