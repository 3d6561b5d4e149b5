"""A Model converted with astype computes its backward in its new dtype: the output
gradient it is given is taken in the dtype the forward produced, not in the dtype the
graph was built with."""

import numpy as np

import fastnn
from fastnn import Input, Model


def test_model_built_in_float32_then_float64_has_float64_gradients(rng):
    L = fastnn.layers
    fastnn.seed(0)
    x_in = Input((6,))  # float32
    out = L.Dense(6, 3)(L.ReLU()(L.Dense(6, 6)(x_in)))
    model = Model(x_in, out).astype(np.float64)
    x, R = rng.standard_normal((5, 6)), rng.standard_normal((5, 3))
    ctx = fastnn.Context()
    y = model._forward(ctx, x)
    model.zero_grad()
    gx = model._backward(ctx, R)
    d1, d2 = [m for m in model.layers if isinstance(m, L.Dense)]
    z = x @ d1.weight.data.T + d1.bias.data
    h = np.maximum(z, 0)
    assert y.dtype == gx.dtype == np.float64
    np.testing.assert_allclose(y, h @ d2.weight.data.T + d2.bias.data, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(d2.weight.grad, R.T @ h, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(gx, ((R @ d2.weight.data) * (z > 0)) @ d1.weight.data, rtol=1e-13)
