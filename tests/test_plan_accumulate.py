"""Gradients of values read by several steps (fastnn.plan.Plan._accumulate): the first
gradient reaching such a slot is kept without a copy and the next ones are added in
place only into a buffer the plan may write; the sums equal NumPy's, the caller's
output gradients and the arrays other slots still read stay untouched."""

import numpy as np

import fastnn
from fastnn import Input, Model
from fastnn.layers import Add, Multiply


def fan_out_model():
    """x read by three Dense layers, by Add twice (x + x) and by Multiply; the hidden
    value h read by two Dense layers and returned as an output too."""
    fastnn.seed(11)
    d = [fastnn.Dense(4, 4, dtype=np.float64) for _ in range(5)]
    x = Input((4,), dtype=np.float64)
    h = fastnn.Tanh()(Add()([d[0](x), d[1](x), x, x]))
    m = Multiply()([d[2](x), h])
    return Model(x, [fastnn.Dense(4, 2, dtype=np.float64)(Add()([d[3](h), d[4](h), m])), h]), d


def reference(model, d, x, g_out, g_h):
    """The input gradient by hand, in NumPy."""
    W = [layer.weight.data for layer in d]
    b = [layer.bias.data for layer in d]
    last = model.layers[-1]
    a = x @ W[0].T + b[0] + x @ W[1].T + b[1] + 2 * x
    h = np.tanh(a)
    p = x @ W[2].T + b[2]
    gs = g_out @ last.weight.data  # gradient of the last Add's output
    gh = g_h + gs @ W[3] + gs @ W[4] + gs * p
    gp = gs * h
    ga = gh * (1 - h**2)
    return ga @ W[0] + ga @ W[1] + 2 * ga + gp @ W[2]


def test_fan_out_gradients_equal_numpy_and_inputs_stay_untouched(rng):
    model, d = fan_out_model()
    x = rng.standard_normal((7, 4))
    g_out, g_h = rng.standard_normal((7, 2)), rng.standard_normal((7, 4))
    g_out0, g_h0 = g_out.copy(), g_h.copy()
    ctx = fastnn.Context()
    model._forward(ctx, x)
    gx = model._backward(ctx, [g_out, g_h])
    np.testing.assert_allclose(gx, reference(model, d, x, g_out, g_h), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(g_out, g_out0)  # the caller's gradients are read only
    np.testing.assert_array_equal(g_h, g_h0)


def test_with_and_without_the_gradient_pool_the_same_bits(rng):
    """Summing in place into lent buffers gives the bits of summing into buffers of
    the slots' own (a hook turns lending off)."""
    x = rng.standard_normal((6, 4))
    g_out, g_h = rng.standard_normal((6, 2)), rng.standard_normal((6, 4))
    results = []
    for hooked in (False, True):
        model, _ = fan_out_model()
        if hooked:
            model.layers[0].register_forward_hook(lambda *args: None)
        ctx = fastnn.Context()
        for _ in range(2):  # the second backward reuses the pool's buffers
            model._forward(ctx, x)
            model.zero_grad()
            gx = model._backward(ctx, [g_out, g_h]).copy()
        assert (ctx.__dict__.get("own_grad_pool") is None) == hooked
        results.append((gx, [p.grad.copy() for p in model.parameters()]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_a_shared_gradient_is_not_copied_when_one_slot_holds_it(rng):
    """A residual join: the block input's gradient starts as the array Add -> ReLU
    handed to both of its inputs, and the branch's input gradient is added into it in
    place once the branch has consumed it (no copy, no buffer of its own)."""
    fastnn.seed(3)
    x = Input((5,), dtype=np.float64)
    f = fastnn.Dense(5, 5, dtype=np.float64)
    h = fastnn.ReLU()(Add()([f(fastnn.ReLU()(x)), x]))
    model = Model(x, h)
    join = model._plan().steps[-1]
    handed = []
    run = join.run._backward
    join.run._backward = lambda ctx, g, need=True: handed.append(run(ctx, g, need)) or handed[-1]
    xv, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    ctx = fastnn.Context()
    y = model._forward(ctx, xv).copy()
    gx = model._backward(ctx, g)
    gj = g * (y > 0)
    np.testing.assert_allclose(gx, gj + (gj @ f.weight.data) * (xv > 0), rtol=1e-13, atol=1e-14)
    assert handed[0][0] is handed[0][1] and gx is handed[0][1]
