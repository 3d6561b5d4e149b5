"""Add -> ReLU, the join of a residual block, fused into one step (Add.fuse, the
add_relu kernel): equal to its layers one by one, to NumPy, to central differences, and
within a residual CNN to torch."""

import numpy as np
import pytest

import fastnn
from fastnn import Input, Model
from fastnn import _kernels as K
from fastnn.layers import Add
from fastnn.layers.merge import _AddReLU


@pytest.mark.parametrize("n", [1, 7, 40000], ids=["1", "7", "40000"])
def test_add_relu_kernel_equals_numpy(rng, dtype, threads, n):
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    a[::5] = np.nan  # NaN passes, as through ReLU
    y = np.full_like(a, -1)
    K.add_relu(a, b, y)
    s = a + b
    np.testing.assert_array_equal(y, np.where(s < 0, 0, s))
    K.add_relu(a, b, a)  # in place
    np.testing.assert_array_equal(a, y)


def test_add_relu_kernel_refuses_mismatched_arrays():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="add_relu"):
        K.add_relu(a, np.zeros((4, 3), np.float32), np.zeros((3, 4), np.float32))
    with pytest.raises((TypeError, ValueError), match="add_relu"):
        K.add_relu(a, np.zeros((3, 4)), np.zeros((3, 4), np.float32))


def residual_graph(n_inputs=2, hook_relu=False, dtype=np.float64):
    """Input -> Dense -> (Add of it, the input and more branches) -> ReLU -> Dense."""
    fastnn.seed(7)
    x = Input((5,), dtype=dtype)
    branches = [fastnn.Dense(5, 5, dtype=dtype)(x) for _ in range(n_inputs - 1)]
    relu = fastnn.ReLU()
    if hook_relu:  # a hook on the ReLU keeps it a step of its own
        relu.register_forward_hook(lambda *args: None)
    h = relu(Add()([*branches, x]))
    return Model(x, fastnn.Dense(5, 3, dtype=dtype)(h))


def run(model, x, g):
    ctx = fastnn.Context()
    y = model._forward(ctx, x).copy()
    model.zero_grad()
    gx = model._backward(ctx, g).copy()
    return y, gx, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("n_inputs", [2, 3])
def test_fused_add_relu_equals_its_layers(rng, dtype, n_inputs):
    x = rng.standard_normal((9, 5)).astype(dtype)
    g = rng.standard_normal((9, 3)).astype(dtype)
    fused, layered = residual_graph(n_inputs, dtype=dtype), residual_graph(n_inputs, True, dtype)
    assert any(isinstance(s.run, _AddReLU) for s in fused._plan().steps)
    assert not any(isinstance(s.run, _AddReLU) for s in layered._plan().steps)
    for a, b in zip(run(fused, x, g), run(layered, x, g)):
        if isinstance(a, list):
            for p, q in zip(a, b):
                np.testing.assert_array_equal(p, q)
        else:
            np.testing.assert_array_equal(a, b)


def test_add_with_a_second_reader_is_not_fused():
    x = Input((4,), dtype=np.float64)
    s = Add()([fastnn.Dense(4, 4, dtype=np.float64)(x), x])
    model = Model(x, [fastnn.ReLU()(s), s])
    assert not any(isinstance(st.run, _AddReLU) for st in model._plan().steps)


def test_fused_add_relu_gradients_match_finite_differences(rng, num_grad, fd_tol):
    model = residual_graph(3)
    x = rng.standard_normal((6, 5))
    R = rng.standard_normal((6, 3))

    def f(_):
        return float(np.sum(model._forward(fastnn.Context(), x) * R))

    _, gx, grads = run(model, x, R)
    np.testing.assert_allclose(gx, num_grad(f, x), **fd_tol)
    for p, grad in zip(model.parameters(), grads):
        np.testing.assert_allclose(grad, num_grad(f, p.data), **fd_tol)


def test_residual_cnn_training_step_equals_torch(rng):
    """The benchmark's small ResNet (fastnn.bench.cnn) with widths 4 and 6 - a stem, a
    basic block with an identity shortcut and one with a projection, BatchNorm2d ->
    ReLU and Add -> ReLU fused - in float64 and in training mode: output, input
    gradient, every parameter gradient and the running statistics equal torch's."""
    torch = pytest.importorskip("torch")
    from fastnn.bench.cnn import fastnn_resnet, torch_resnet

    L, nn = fastnn.layers, torch.nn
    fastnn.seed(0)
    model = fastnn_resnet((4, 6)).astype(np.float64)
    steps = [type(s.run).__name__ for s in model._plan().steps]
    assert steps.count("_AddReLU") == 2 and steps.count("_BatchNorm2dReLU") == 3
    torch.manual_seed(0)
    tmodel = torch_resnet(torch, (4, 6)).double()
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
    tlayers = [m for m in tmodel.modules() if isinstance(m, kinds)]
    flayers = [m for m in model.layers if isinstance(m, (L.Conv2d, L.BatchNorm2d, L.Dense))]
    assert [type(m).__name__ for m in flayers] == [
        {"Linear": "Dense"}.get(type(m).__name__, type(m).__name__) for m in tlayers
    ]
    with torch.no_grad():
        for f, t in zip(flayers, tlayers):
            if isinstance(f, L.BatchNorm2d):  # non-trivial affine parameters
                f.weight.data[...] = rng.uniform(0.5, 1.5, f.num_features)
                f.bias.data[...] = rng.normal(0, 0.3, f.num_features)
            t.weight.copy_(torch.from_numpy(f.weight.data))
            if getattr(f, "bias", None) is not None:
                t.bias.copy_(torch.from_numpy(f.bias.data))

    x = rng.standard_normal((3, 3, 32, 32))
    R = rng.standard_normal((3, 10))
    y, gx, grads = run(model, x, R)
    tx = torch.tensor(x, requires_grad=True)
    ty = tmodel(tx)
    (ty * torch.from_numpy(R)).sum().backward()
    t = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **t)
    np.testing.assert_allclose(gx, tx.grad.numpy(), **t)
    named = dict(zip([id(p) for p in model.parameters()], grads))
    for f, tl in zip(flayers, tlayers):
        np.testing.assert_allclose(named[id(f.weight)], tl.weight.grad.numpy(), **t)
        if getattr(f, "bias", None) is not None:
            np.testing.assert_allclose(named[id(f.bias)], tl.bias.grad.numpy(), **t)
        if isinstance(f, L.BatchNorm2d):
            np.testing.assert_allclose(f.running_mean, tl.running_mean.numpy(), **t)
            np.testing.assert_allclose(f.running_var, tl.running_var.numpy(), **t)
