"""Fused steps of a plan (fastnn.plan) compute what their layers compute one by one:
Dense + activation, and BatchNorm1d -> ReLU (-> Dropout) in training; fusion happens
only where an intermediate output has a single consumer and no hook watches it."""

import numpy as np
import pytest

import fastnn
from fastnn import rng
from fastnn.layers.dense import DenseActivation
from fastnn.layers.normalization import _BatchNormReLU


def layer_by_layer(layers, x, g):
    """Forward and backward through public layer calls (never fused)."""
    outs = x
    for layer in layers:
        outs = layer.forward(outs)
    y = outs
    for layer in reversed(layers):
        g = layer.backward(g)
    return y, g


def fused_and_layered(make_layers, step_type, x, g, use_threads):
    """(output, input gradient, parameter gradients, buffers) of the layers make_layers()
    builds, once as the fused step of a Sequential (asserted to be a step_type) and once
    layer by layer, each on 2 threads from the same random state."""
    results = []
    for fused in (True, False):
        layers = make_layers()
        model = fastnn.Sequential(*layers)
        assert isinstance(model.steps[0].run, step_type)
        state = rng.get_state()
        with use_threads(2):
            if fused:
                ctx = fastnn.Context()
                y = model._forward(ctx, x).copy()
                gx = model._backward(ctx, g).copy()
            else:
                y, gx = layer_by_layer(layers, x, g)
        rng.set_state(state)
        grads = [p.grad.copy() for p in model.parameters()]
        bufs = [b.copy() for _, b in model.named_buffers()]
        results.append((y, gx, grads, bufs))
    return results


def make(dtype, dropout, affine=True, track=True):
    fastnn.seed(3)
    layers = [
        fastnn.BatchNorm1d(70, affine=affine, track_running_stats=track, dtype=dtype),
        fastnn.ReLU(),
    ]
    if dropout is not None:
        layers.append(fastnn.Dropout(dropout))
    if affine:  # non-trivial affine parameters
        r = np.random.default_rng(0)
        layers[0].weight.data[...] = r.uniform(0.5, 1.5, 70)
        layers[0].bias.data[...] = r.normal(0, 0.3, 70)
    return layers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout", [None, 0.0, 0.3])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("rows", [5, 600])
def test_batchnorm_relu_dropout_matches_layers(dtype, dropout, affine, track, rows, use_threads):
    r = np.random.default_rng(1)
    x = (r.standard_normal((rows, 70)) * 2 + 0.5).astype(dtype)
    g = r.standard_normal((rows, 70)).astype(dtype)
    tol = dict(rtol=2e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    (y1, gx1, gr1, b1), (y2, gx2, gr2, b2) = fused_and_layered(
        lambda: make(dtype, dropout, affine, track), _BatchNormReLU, x, g, use_threads
    )
    np.testing.assert_array_equal(y1, y2)  # same ops, same masks: same bits
    np.testing.assert_allclose(gx1, gx2, **tol)
    for a, b in zip(gr1, gr2):
        np.testing.assert_allclose(a, b, **tol)
    for a, b in zip(b1, b2):
        np.testing.assert_array_equal(a, b)


def test_fused_step_is_used_only_in_training_on_2d_input():
    layers = make(np.float64, 0.5)
    model = fastnn.Sequential(*layers)
    ctx = fastnn.Context()
    x = np.random.default_rng(0).standard_normal((8, 70))
    model._forward(ctx, x)
    assert ctx.child(0).fused
    model.eval()
    y = model._forward(ctx, x)
    assert not ctx.child(0).fused
    np.testing.assert_allclose(y, np.maximum(layers[0].forward(x), 0))  # dropout: identity


def test_weight_scaling_dropout_runs_unfused():
    layers = make(np.float64, None)
    layers.append(fastnn.Dropout(0.5, mode="weight_scaling"))
    model = fastnn.Sequential(*layers)
    ctx = fastnn.Context()
    x = np.random.default_rng(0).standard_normal((8, 70))
    model._forward(ctx, x)
    assert not ctx.child(0).fused


def test_fused_mask_zeroes_the_output():
    layers = make(np.float32, 0.5)
    model = fastnn.Sequential(*layers)
    ctx = fastnn.Context()
    x = np.random.default_rng(0).standard_normal((64, 70)).astype(np.float32)
    y = model._forward(ctx, x)
    mask = ctx.child(0).mask
    assert mask.shape == x.shape and set(np.unique(mask)) <= {0, 1}
    assert np.all(y[mask == 0] == 0)


def test_no_fusion_where_an_output_has_two_consumers_or_a_hook():
    d, act = fastnn.Dense(4, 4), fastnn.ReLU()
    x = fastnn.Input((4,))
    h = d(x)
    model = fastnn.Model(x, fastnn.layers.Add()([act(h), h]))  # h read twice
    assert all(len(s.layers) == 1 for s in model._plan().steps)
    seq = fastnn.Sequential(fastnn.Dense(4, 4), fastnn.ReLU())
    assert len(seq.steps) == 1
    handle = seq[1].register_forward_hook(lambda m, i, o: None)
    assert len(seq.steps) == 2
    handle.remove()
    assert len(seq.steps) == 1


@pytest.mark.parametrize(
    "act", [fastnn.ReLU(), fastnn.Tanh(), fastnn.LeakyReLU(-0.2), fastnn.GELU(), fastnn.Identity()]
)
def test_dense_activation_matches_layers(act, use_threads):
    r = np.random.default_rng(2)
    x = r.standard_normal((33, 20))
    g = r.standard_normal((33, 9))
    out = []
    for fused in (True, False):
        fastnn.seed(1)
        dense = fastnn.Dense(20, 9, dtype=np.float64)
        model = fastnn.Sequential(dense, act)
        assert isinstance(model.steps[0].run, DenseActivation)
        with use_threads(2):
            if fused:
                ctx = fastnn.Context()
                y, gx = model._forward(ctx, x).copy(), model._backward(ctx, g).copy()
            else:
                y, gx = layer_by_layer([dense, act], x, g)
        out.append((y, gx, dense.weight.grad.copy(), dense.bias.grad.copy()))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def make_bn2d_relu(dtype, affine=True, track=True, channels=5):
    layers = [
        fastnn.BatchNorm2d(channels, affine=affine, track_running_stats=track, dtype=dtype),
        fastnn.ReLU(),
    ]
    if affine:
        r = np.random.default_rng(0)
        layers[0].weight.data[...] = r.uniform(0.5, 1.5, channels)
        layers[0].bias.data[...] = r.normal(0, 0.3, channels)
    return layers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7), (9, 70, 6, 5), (1, 5, 1, 2)])
def test_batchnorm2d_relu_matches_layers(dtype, affine, track, shape, use_threads):
    from fastnn.layers.normalization import _BatchNorm2dReLU

    c = shape[1]
    r = np.random.default_rng(1)
    x = (r.standard_normal(shape) * 2 + 0.5).astype(dtype)
    g = r.standard_normal(shape).astype(dtype)
    tol = dict(rtol=2e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    (y1, gx1, gr1, b1), (y2, gx2, gr2, b2) = fused_and_layered(
        lambda: make_bn2d_relu(dtype, affine, track, c), _BatchNorm2dReLU, x, g, use_threads
    )
    np.testing.assert_allclose(y1, y2, **tol)
    assert (y1 == 0).any() and (y1 > 0).any()  # the ReLU cuts somewhere
    np.testing.assert_allclose(gx1, gx2, **tol)
    for a, b in zip(gr1, gr2):
        np.testing.assert_allclose(a, b, **tol)
    for a, b in zip(b1, b2):
        np.testing.assert_allclose(a, b, **tol)


def test_batchnorm2d_relu_equals_torch_and_finite_differences(num_grad):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    x = r.standard_normal((3, 4, 5, 3)) + 0.3
    g = r.standard_normal(x.shape)
    layers = make_bn2d_relu(np.float64, channels=4)
    model = fastnn.Sequential(*layers)
    ctx = fastnn.Context()
    y = model._forward(ctx, x).copy()
    gx = model._backward(ctx, g).copy()
    bn = torch.nn.BatchNorm2d(4, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(layers[0].weight.data))
        bn.bias.copy_(torch.from_numpy(layers[0].bias.data))
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.relu(bn(xt))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layers[0].weight.grad, bn.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layers[0].bias.grad, bn.bias.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layers[0].running_mean, bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layers[0].running_var, bn.running_var.numpy(), rtol=1e-12)

    def f(xv):  # the fused step's loss sum(g * y), from a fresh context each time
        fresh = fastnn.Sequential(*make_bn2d_relu(np.float64, channels=4))
        return float(np.sum(fresh._forward(fastnn.Context(), xv) * g))

    np.testing.assert_allclose(gx, num_grad(f, x.copy()), rtol=1e-5, atol=1e-7)


def test_batchnorm2d_relu_is_fused_in_model_graphs_and_unfused_in_eval():
    from fastnn.layers.normalization import _BatchNorm2dReLU

    inp = fastnn.Input((3, 4, 4), dtype=np.float64)
    h = fastnn.layers.ReLU()(fastnn.layers.BatchNorm2d(3, dtype=np.float64)(inp))
    model = fastnn.Model(inp, fastnn.layers.Conv2d(3, 2, 1, dtype=np.float64)(h))
    assert isinstance(model._plan().steps[0].run, _BatchNorm2dReLU)
    x = np.random.default_rng(0).standard_normal((4, 3, 4, 4))
    model.eval()
    bn, relu = model._plan().steps[0].layers
    want = np.maximum(bn.forward(x), 0)
    ctx = fastnn.Context()
    np.testing.assert_allclose(model._plan().steps[0].run._forward(ctx, x), want)
