"""Convolution, pooling and Flatten layers: against torch in float64 (outputs, input
gradients, weight and bias gradients), against central finite differences, torch
state_dicts, and the errors a user sees for bad input."""

import numpy as np
import pytest
from helpers import fd_check

import fastnn
from fastnn.layers import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Flatten,
    MaxPool1d,
    MaxPool2d,
    ReLU,
    Tanh,
)


@pytest.fixture
def th():
    return pytest.importorskip("torch")


def torch_check(th, ours, theirs, x, rng, grads_of=("weight", "bias")):
    """Forward and backward of `ours` and `theirs` (a torch module with the same
    parameters) agree in float64 on x; returns our output."""
    theirs.zero_grad()
    tx = th.tensor(x, requires_grad=True)
    ty = theirs(tx)
    gy = rng.standard_normal(tuple(ty.shape))
    ty.backward(th.tensor(gy))
    ours.zero_grad()
    y = ours.forward(x)
    gx = ours.backward(gy)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-11, atol=1e-12)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(
            p.grad, tparams[name].grad.numpy(), rtol=1e-10, atol=1e-11, err_msg=name
        )
    return y


def load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours


CONV2D = [  # in, out, kernel, stride, padding, dilation, groups, bias, (H, W), N
    (3, 4, 3, 1, 0, 1, 1, True, (7, 9), 2),
    (4, 6, (3, 2), (2, 1), (1, 2), (2, 1), 2, True, (9, 8), 3),
    (4, 4, 3, 1, 1, 1, 4, False, (5, 5), 1),  # depthwise, batch 1
    (2, 6, 1, 2, 0, 1, 2, True, (6, 7), 2),  # 1x1, strided, groups
    (3, 5, 4, 1, "same", 1, 1, True, (6, 7), 2),  # 'same' with an odd total padding
    (3, 5, 3, 1, "same", 2, 1, True, (6, 7), 2),
    (3, 2, 3, 1, "valid", 1, 1, True, (5, 5), 2),
    (1, 3, (5, 5), 3, 2, 1, 1, True, (11, 13), 2),
]


@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_matches_torch(th, rng, case):
    cin, cout, k, s, p, d, g, bias, hw, n = case
    theirs = th.nn.Conv2d(cin, cout, k, s, p, d, g, bias).double()
    ours = load_from_torch(Conv2d(cin, cout, k, s, p, d, g, bias, dtype=np.float64), theirs)
    y = torch_check(th, ours, theirs, rng.standard_normal((n, cin) + hw), rng)
    assert ours.compute_output_shape((cin,) + hw) == y.shape[1:]


CONV1D = [
    (3, 4, 3, 1, 0, 1, 1, True, 9, 2),
    (4, 6, 3, 2, 2, 2, 2, True, 11, 3),
    (4, 8, 5, 1, "same", 1, 4, False, 7, 1),
    (2, 3, 4, 1, "same", 1, 1, True, 6, 2),
]


@pytest.mark.parametrize("case", CONV1D)
def test_conv1d_matches_torch(th, rng, case):
    cin, cout, k, s, p, d, g, bias, length, n = case
    theirs = th.nn.Conv1d(cin, cout, k, s, p, d, g, bias).double()
    ours = load_from_torch(Conv1d(cin, cout, k, s, p, d, g, bias, dtype=np.float64), theirs)
    torch_check(th, ours, theirs, rng.standard_normal((n, cin, length)), rng)


@pytest.mark.parametrize("act", ["ReLU", "Tanh", "LeakyReLU", "GELU"])
def test_conv_activation_fused_matches_torch(th, rng, act):
    theirs = th.nn.Sequential(th.nn.Conv2d(3, 5, 3, padding=1), getattr(th.nn, act)()).double()
    ours = fastnn.Sequential(
        Conv2d(3, 5, 3, padding=1, dtype=np.float64), getattr(fastnn.layers, act)()
    )
    load_from_torch(ours, theirs)
    torch_check(th, ours, theirs, rng.standard_normal((2, 3, 6, 5)), rng)


def test_conv_takes_non_contiguous_input(th, rng):
    theirs = th.nn.Conv2d(3, 4, 3, padding=1).double()
    ours = load_from_torch(Conv2d(3, 4, 3, padding=1, dtype=np.float64), theirs)
    x = rng.standard_normal((2, 7, 6, 3)).transpose(0, 3, 1, 2)[:, :, ::2]  # strided view
    assert not x.flags.c_contiguous
    torch_check(th, ours, theirs, x, rng)


def test_conv_float32_close_to_torch(th, rng):
    theirs = th.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    ours = load_from_torch(Conv2d(3, 8, 3, stride=2, padding=1), theirs)
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(
        ours.forward(x), theirs(th.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_conv_default_init_has_torch_bounds():
    fastnn.seed(0)
    c = Conv2d(4, 8, 3, groups=2)
    fan_in = 2 * 9
    assert np.abs(c.weight.data).max() <= 1 / np.sqrt(fan_in) + 1e-7
    assert np.abs(c.bias.data).max() <= 1 / np.sqrt(fan_in) + 1e-7
    assert c.weight.shape == (8, 2, 3, 3)


@pytest.mark.parametrize(
    "layer,shape",
    [
        (
            lambda: Conv2d(
                2, 3, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), dtype=np.float64
            ),
            (2, 2, 5, 6),
        ),
        (lambda: Conv2d(4, 4, 3, padding="same", groups=4, dtype=np.float64), (1, 4, 4, 4)),
        (lambda: Conv1d(2, 4, 2, padding="same", groups=2, dtype=np.float64), (2, 2, 5)),
    ],
)
def test_conv_backward_matches_finite_differences(rng, num_grad, fd_tol, layer, shape):
    fd_check(layer(), rng.standard_normal(shape), num_grad, fd_tol, rng)


def test_conv_relu_step_matches_finite_differences(rng, num_grad, fd_tol):
    model = fastnn.Sequential(Conv2d(2, 3, 3, padding=1, dtype=np.float64), Tanh())
    fd_check(model, rng.standard_normal((2, 2, 4, 5)), num_grad, fd_tol, rng)


# -- pooling ----------------------------------------------------------------------------
POOL2D = [  # kernel, stride, padding, ceil_mode
    (2, None, 0, False),
    (3, 2, 1, False),
    ((3, 2), (2, 1), (1, 0), True),
    (3, 3, 1, True),
]


@pytest.mark.parametrize("case", POOL2D)
@pytest.mark.parametrize("hw", [(7, 9), (8, 8), (5, 3)])
def test_maxpool2d_matches_torch(th, rng, case, hw):
    k, s, p, ceil = case
    theirs = th.nn.MaxPool2d(k, s, p, ceil_mode=ceil)
    torch_check(
        th, MaxPool2d(k, s, p, ceil_mode=ceil), theirs, rng.standard_normal((2, 3) + hw), rng
    )


def test_maxpool2d_dilation_matches_torch(th, rng):
    theirs = th.nn.MaxPool2d(3, 2, 1, dilation=2)
    torch_check(th, MaxPool2d(3, 2, 1, dilation=2), theirs, rng.standard_normal((2, 2, 9, 8)), rng)


@pytest.mark.parametrize("case", POOL2D)
@pytest.mark.parametrize("cip,div", [(True, None), (False, None), (True, 3)])
def test_avgpool2d_matches_torch(th, rng, case, cip, div):
    k, s, p, ceil = case
    theirs = th.nn.AvgPool2d(k, s, p, ceil, cip, div)
    torch_check(
        th, AvgPool2d(k, s, p, ceil, cip, div), theirs, rng.standard_normal((2, 3, 7, 9)), rng
    )


@pytest.mark.parametrize("k,s,p,ceil", [(2, None, 0, False), (3, 2, 1, True), (4, 1, 2, False)])
def test_pool1d_matches_torch(th, rng, k, s, p, ceil):
    x = rng.standard_normal((2, 3, 11))
    torch_check(
        th, MaxPool1d(k, s, p, ceil_mode=ceil), th.nn.MaxPool1d(k, s, p, ceil_mode=ceil), x, rng
    )
    torch_check(th, AvgPool1d(k, s, p, ceil), th.nn.AvgPool1d(k, s, p, ceil), x, rng)


@pytest.mark.parametrize("out", [1, (3, 2), (None, 4), (7, 9), (4, 5)])
def test_adaptive_avgpool2d_matches_torch(th, rng, out):
    torch_check(
        th,
        AdaptiveAvgPool2d(out),
        th.nn.AdaptiveAvgPool2d(out),
        rng.standard_normal((2, 3, 7, 9)),
        rng,
    )


@pytest.mark.parametrize("out", [1, 3, 11])
def test_adaptive_avgpool1d_matches_torch(th, rng, out):
    torch_check(
        th,
        AdaptiveAvgPool1d(out),
        th.nn.AdaptiveAvgPool1d(out),
        rng.standard_normal((2, 3, 11)),
        rng,
    )


@pytest.mark.parametrize(
    "layer",
    [
        lambda: MaxPool2d(3, 2, 1),
        lambda: AvgPool2d((2, 3), 1, (1, 0), count_include_pad=False),
        lambda: AdaptiveAvgPool2d((2, 3)),
        lambda: MaxPool1d(2),
        lambda: AvgPool1d(3, 2, 1),
        lambda: AdaptiveAvgPool1d(2),
    ],
)
def test_pool_backward_matches_finite_differences(rng, num_grad, fd_tol, layer):
    pool = layer()
    shape = (2, 2, 5, 6) if "2d" in type(pool).__name__ else (2, 2, 7)
    fd_check(pool, rng.standard_normal(shape), num_grad, fd_tol, rng)


@pytest.mark.parametrize("start,end", [(1, -1), (2, 3), (0, 1), (-2, -1)])
def test_flatten_matches_torch(th, rng, start, end):
    x = rng.standard_normal((2, 3, 4, 5))
    torch_check(th, Flatten(start, end), th.nn.Flatten(start, end), x, rng)
    assert (
        Flatten(start, end).compute_output_shape(x.shape[1:])
        == th.nn.Flatten(start, end)(th.tensor(x)).shape[1:]
    )


def test_lenet_state_dict_from_torch_loads_and_predicts_the_same(th, rng):
    nn = th.nn
    theirs = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 10),
    ).double()
    ours = fastnn.Sequential(
        Conv2d(1, 6, 5, padding=2),
        ReLU(),
        MaxPool2d(2),
        Conv2d(6, 16, 5),
        ReLU(),
        AvgPool2d(2),
        Flatten(),
        fastnn.layers.Dense(16 * 5 * 5, 10),
    ).astype(np.float64)
    load_from_torch(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    torch_check(th, ours, theirs, rng.standard_normal((3, 1, 28, 28)), rng)


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,x,match",
    [
        (lambda: Conv2d(3, 4, 3), np.zeros((2, 4, 8, 8)), r"Conv2d\(3, 4.*expected 3 channels"),
        (lambda: Conv2d(3, 4, 5), np.zeros((2, 3, 4, 8)), r"Conv2d\(3, 4.*larger than the padded"),
        (lambda: Conv2d(3, 4, 3), np.zeros((3, 8, 8)), r"Conv2d\(3, 4.*4-D input"),
        (lambda: Conv1d(3, 4, 3), np.zeros((2, 3, 4, 4)), r"Conv1d\(3, 4.*3-D input"),
        (lambda: MaxPool2d(3), np.zeros((2, 3, 2, 8)), r"MaxPool2d.*larger than the padded"),
        (lambda: AvgPool1d(2), np.zeros((2, 8)), r"AvgPool1d.*3-D input"),
    ],
)
def test_bad_input_names_the_layer(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: Conv2d(3, 4, 3, padding=-1), ValueError, r"Conv2d\(3, 4.*padding must be >= 0"),
        (lambda: Conv2d(3, 4, 3, groups=2), ValueError, r"groups=2 must divide in_channels"),
        (lambda: Conv2d(4, 6, 3, groups=4), ValueError, r"groups=4 must divide"),
        (lambda: Conv2d(3, 4, 3, stride=2, padding="same"), ValueError, r"'same' needs stride 1"),
        (lambda: Conv2d(3, 4, 3, padding="full"), ValueError, r"padding must be 'same'"),
        (lambda: Conv2d(3, 4, 0), ValueError, r"kernel_size must be >= 1"),
        (lambda: Conv2d(3, 4, (3, 3, 3)), TypeError, r"tuple of 2 ints"),
        (lambda: Conv2d(3, 4, 3, padding_mode="mirror"), ValueError, r"padding_mode must be"),
        (lambda: MaxPool2d(2, padding=2), ValueError, r"at most half the kernel"),
        (lambda: AvgPool2d(2, divisor_override=0), ValueError, r"divisor_override"),
    ],
)
def test_bad_arguments_raise(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_bad_gradient_shape_raises():
    c = Conv2d(2, 3, 3)
    y = c.forward(np.zeros((2, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(2, 3.*backward: expected gradient of shape"):
        c.backward(np.zeros(y.shape[:3] + (2,), np.float32))


def test_conv_scratch_is_shared_and_reused_across_steps(rng):
    """The im2col scratch is one buffer for all convolutions of the thread, grown to
    the largest need in the first step and reused after."""
    from fastnn.module import _shared_scratch

    model = fastnn.Sequential(
        Conv2d(3, 8, 3, padding=1),
        ReLU(),
        Conv2d(8, 8, 3, padding=1),
        MaxPool2d(2),
        Flatten(),
        fastnn.layers.Dense(8 * 4 * 4, 2),
    )
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    model.forward(x)
    model.backward(np.ones((16, 2), np.float32))
    scratch = _shared_scratch("conv", 1, np.float32).base
    assert scratch.size >= max(
        fastnn._kernels.conv_scratch_size(s, c.weight.shape, c.stride, c.padding, (1, 1), 1)
        for s, c in (((16, 3, 8, 8), model[0]), ((16, 8, 8, 8), model[2]))
    )
    for _ in range(2):
        model.forward(x)
        model.backward(np.ones((16, 2), np.float32))
    assert _shared_scratch("conv", 1, np.float32).base is scratch
    assert not any("conv" in c._scratch_ws for c in (model[0], model[2]))


def small_resnet(seed=0):
    """Stem, a basic block and a projected one, global pooling, Dense: float64."""
    from fastnn.bench.cnn import basic_block

    fastnn.seed(seed)
    L = fastnn.layers
    x = fastnn.Input((3, 8, 8))
    h = L.ReLU()(L.BatchNorm2d(4)(Conv2d(3, 4, 3, 1, 1)(x)))
    h = basic_block(basic_block(h, 4, 4, 1), 4, 6, 2)
    h = Flatten()(AdaptiveAvgPool2d(1)(h))
    return fastnn.Model(x, L.Dense(6, 3)(h)).astype(np.float64)


def test_pooled_gradients_equal_unpooled_ones(rng):
    """Backward with the plan's gradient pool (buffers lent and taken back) gives the
    gradients of a backward without it (a hook on a layer turns lending off)."""
    x = rng.standard_normal((5, 3, 8, 8))
    g = rng.standard_normal((5, 3))
    results = []
    for hooked in (False, True):
        model = small_resnet()
        if hooked:
            model.layers[-1].register_forward_hook(lambda *a: None)
        ctx = fastnn.Context()
        model._forward(ctx, x)
        gx = model._backward(ctx, g).copy()
        assert (ctx.__dict__.get("own_grad_pool") is None) == hooked
        results.append((gx, [p.grad.copy() for p in model.parameters()]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_resnet_training_steps_allocate_nothing_after_the_first():
    import tracemalloc

    from fastnn.bench.cnn import fastnn_cnn_step, make_images

    X, y = make_images("resnet", n=64)
    step = fastnn_cnn_step("resnet", X, y, 16)
    step(), step()  # warm: workspaces, gradient pool and scratch exist
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            step()
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"steady-state steps allocated {grown} bytes"


def test_resnet_training_steps_do_not_depend_on_the_thread_count():
    # A ResNet's convolutions run sample by sample at batch 16 (each thread whole
    # samples, the weight gradient over fixed blocks of samples): two Adam steps give
    # the same bits on 1, 2 and 3 threads.
    from fastnn.bench.workloads import trainer_step
    from fastnn.bench.cnn import fastnn_resnet, make_images

    X, y = make_images("resnet", 32)
    before, dynamic = fastnn.get_num_threads(), fastnn.threads.get_dynamic_threads()
    fastnn.threads.set_dynamic_threads(False)  # exactly nt threads, whatever the load
    weights = []
    try:
        for nt in (1, 2, 3):
            fastnn.set_num_threads(nt)
            step = trainer_step(lambda: fastnn_resnet((8, 16, 16)), X, y, 16)
            step()
            step()
            weights.append([p.data.copy() for p in step.trainer.model.parameters()])
    finally:
        fastnn.set_num_threads(before)
        fastnn.threads.set_dynamic_threads(dynamic)
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            np.testing.assert_array_equal(a, b)
