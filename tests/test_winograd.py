"""Winograd's F(2x2, 3x3) and F(4x4, 3x3) path of the convolutions
(csrc/generic/winograd.h): the 3x3, stride-1 convolutions with 16 channels or more in
and out, against the plain NumPy
direct convolution, against the direct path in float32, against finite differences,
and independent of the thread count."""

import numpy as np
import pytest
from helpers import fd_check
from test_conv_kernels import act_ref, conv_grads_ref, conv_ref, run_conv

import fastnn
from fastnn import _kernels as K
from fastnn.layers import Conv2d, ReLU

S1, D1 = (1, 1), (1, 1)

CASES = [  # N, C, K, H, W, padding: odd sizes (partial edge tiles), padding 0 and 1, batch 1
    (2, 16, 16, 7, 9, (1, 1)),
    (1, 16, 24, 5, 5, (0, 0)),
    (3, 20, 16, 6, 11, (1, 0)),
    (1, 17, 33, 3, 4, (0, 1)),
    (2, 32, 16, 16, 13, (1, 1)),  # two blocks of tile rows
    (2, 16, 24, 19, 22, (1, 0)),
    (1, 16, 16, 40, 37, (1, 1)),  # F(4x4, 3x3) from 24 x 24 outputs, several blocks
    (2, 16, 20, 27, 30, (0, 0)),
    (1, 17, 16, 26, 25, (1, 0)),
    (1, 16, 16, 1, 1, (1, 1)),  # one output pixel: a single partial tile
    (9, 16, 16, 9, 8, (1, 1)),  # a batch that runs sample by sample in backward
]


@pytest.fixture
def winograd_switch():
    """Restores the Winograd switch after a test that turns it off."""
    before = K._set_conv_winograd(True)
    yield
    K._set_conv_winograd(before)


def test_which_convolutions_run_winograd():
    def uses(c, k, ks=(3, 3), s=S1, p=(1, 1), d=D1, g=1):
        return K._conv_uses_winograd((2, c, 8, 8), (k, c // g, *ks), s, p, d, g)

    assert uses(16, 16) and uses(64, 32) and uses(16, 16, p=(0, 1))
    assert not uses(8, 16) and not uses(16, 8)  # too few channels
    assert not uses(16, 16, s=(2, 2)) and not uses(16, 16, d=(2, 1))
    assert not uses(16, 16, p=(2, 1)) and not uses(16, 16, ks=(3, 1)) and not uses(16, 16, g=2)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act", [K.ACT_IDENTITY, K.ACT_RELU, K.ACT_TANH])
def test_winograd_matches_numpy_in_float64(case, act):
    n, c, k, h, w_, p = case
    assert K._conv_uses_winograd((n, c, h, w_), (k, c, 3, 3), S1, p, D1, 1)
    r = np.random.default_rng(sum(case[:5]))
    x, w, b = (
        r.standard_normal((n, c, h, w_)),
        r.standard_normal((k, c, 3, 3)),
        r.standard_normal(k),
    )
    zr = conv_ref(x, w, b, S1, p, D1, 1)
    yr, dact = act_ref(act, zr)
    gy = r.standard_normal(zr.shape)
    y, z, gx, gw, gb = run_conv(x, w, b, act, S1, p, D1, 1, gy)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * dact, S1, p, D1, 1)
    np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, gbr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_winograd_float32_within_round_off_of_direct(case, winograd_switch):
    # Winograd's transforms add roundings to each output: float32 results stay within
    # a multiple of float32's epsilon times the sums' magnitude of the direct path's
    # (and of the float64 reference). F(4x4, 3x3) (outputs from 24 x 24 on), whose
    # transforms have coefficients up to 8 and 1/24, rounds about 8 times as far as
    # F(2x2, 3x3): ~1e-5 of the magnitude.
    n, c, k, h, w_, p = case
    r = np.random.default_rng(7)
    x = r.standard_normal((n, c, h, w_)).astype(np.float32)
    w = r.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = r.standard_normal(k).astype(np.float32)
    ho, wo = h + 2 * p[0] - 2, w_ + 2 * p[1] - 2
    gy = r.standard_normal((n, k, ho, wo))
    wino = run_conv(x, w, b, K.ACT_IDENTITY, S1, p, D1, 1, gy)
    K._set_conv_winograd(False)
    assert not K._conv_uses_winograd(x.shape, w.shape, S1, p, D1, 1)
    direct = run_conv(x, w, b, K.ACT_IDENTITY, S1, p, D1, 1, gy)
    exact = conv_ref(x.astype(np.float64), w.astype(np.float64), b, S1, p, D1, 1)
    eps = np.finfo(np.float32).eps

    def ulps(out_hw):  # F(4x4, 3x3) or F(2x2, 3x3) for outputs of out_hw
        return eps * (256 if min(out_hw) >= 24 else 32)

    scale = np.sqrt(9 * c)  # the sums' typical magnitude (unit-variance terms)
    np.testing.assert_allclose(wino[0], exact, rtol=0, atol=ulps((ho, wo)) * scale)
    np.testing.assert_allclose(wino[0], direct[0], rtol=0, atol=ulps((ho, wo)) * scale)
    # dL/dx (Winograd, sums over K; its outputs h x w) and dL/dw (the direct tiles on
    # both sides)
    gscale = np.sqrt(9 * k)
    np.testing.assert_allclose(wino[2], direct[2], rtol=0, atol=ulps((h, w_)) * gscale)
    np.testing.assert_allclose(wino[3], direct[3], rtol=0, atol=32 * eps * np.sqrt(n * ho * wo))


@pytest.mark.parametrize("padding, hw", [(0, (5, 7)), (1, (5, 7)), (1, (24, 25))])
def test_winograd_layer_backward_matches_finite_differences(rng, num_grad, fd_tol, padding, hw):
    layer = Conv2d(16, 16, 3, padding=padding, dtype=np.float64)
    x = rng.standard_normal((1, 16, *hw))
    assert K._conv_uses_winograd(x.shape, layer.weight.data.shape, S1, (padding,) * 2, D1, 1)
    fd_check(layer, x, num_grad, fd_tol, rng)


def test_winograd_relu_step_matches_finite_differences(rng, num_grad, fd_tol):
    model = fastnn.Sequential(Conv2d(16, 16, 3, padding=1, dtype=np.float64), ReLU())
    fd_check(model, rng.standard_normal((2, 16, 3, 5)), num_grad, fd_tol, rng)


@pytest.mark.parametrize("n, hw", [(3, (15, 13)), (16, (15, 13)), (9, (26, 24))])
def test_winograd_does_not_depend_on_the_thread_count(n, hw):
    # Each sample goes through one thread's buffers whatever the batch: the same bits
    # on 1 and 2 threads, forward and backward (chunk by chunk at batch 3, sample by
    # sample from 8; F(4x4, 3x3) on 26 x 24).
    r = np.random.default_rng(3)
    x = r.standard_normal((n, 16, *hw)).astype(np.float32)
    w = r.standard_normal((32, 16, 3, 3)).astype(np.float32)
    b = r.standard_normal(32).astype(np.float32)
    gy = r.standard_normal((n, 32, *hw))
    before, dynamic = fastnn.get_num_threads(), fastnn.threads.get_dynamic_threads()
    fastnn.threads.set_dynamic_threads(False)
    runs = []
    try:
        for nt in (1, 2):
            fastnn.set_num_threads(nt)
            runs.append(run_conv(x, w, b, K.ACT_RELU, S1, (1, 1), D1, 1, gy))
    finally:
        fastnn.set_num_threads(before)
        fastnn.threads.set_dynamic_threads(dynamic)
    for a, b_ in zip(*runs):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("hw", [(9, 8), (26, 25)])  # F(2x2, 3x3), F(4x4, 3x3)
def test_winograd_conv_relu_matches_torch_in_float64(hw):
    th = pytest.importorskip("torch")
    r = np.random.default_rng(11)
    ours = fastnn.Sequential(Conv2d(16, 24, 3, padding=1, dtype=np.float64), ReLU())
    theirs = th.nn.Sequential(th.nn.Conv2d(16, 24, 3, padding=1).double(), th.nn.ReLU())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = r.standard_normal((9, 16, *hw))
    assert K._conv_uses_winograd(x.shape, (24, 16, 3, 3), S1, (1, 1), D1, 1)
    tx = th.tensor(x, requires_grad=True)
    ty = theirs(tx)
    gy = r.standard_normal(tuple(ty.shape))
    ty.backward(th.tensor(gy))
    y = ours.forward(x)
    gx = ours.backward(gy)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-11, atol=1e-12)
    for name, p in ours.named_parameters():
        tp = dict(theirs.named_parameters())[name]
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-11, err_msg=name)


# small planes: the tiles of several samples side by side in one product (groups of
# 2 on 8 x 8, 8 on 4 x 4, 6 on 3 x 5), batches that leave a partial group
SMALL = [(11, 16, 16, 8, 8), (5, 16, 24, 4, 4), (2, 16, 16, 3, 5), (13, 24, 16, 2, 3)]


@pytest.mark.parametrize("n, c, k, h, w_", SMALL)
def test_winograd_sample_groups_match_numpy(n, c, k, h, w_):
    r = np.random.default_rng(n * h)
    x = r.standard_normal((n, c, h, w_))
    w = r.standard_normal((k, c, 3, 3))
    b = r.standard_normal(k)
    zr = conv_ref(x, w, b, S1, (1, 1), D1, 1)
    gy = r.standard_normal(zr.shape)
    _, z, gx, gw, gb = run_conv(x, w, b, K.ACT_RELU, S1, (1, 1), D1, 1, gy)
    np.testing.assert_allclose(z, zr, rtol=1e-11, atol=1e-11)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * (zr > 0), S1, (1, 1), D1, 1)
    np.testing.assert_allclose(gx, gxr, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gw, gwr, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gb, gbr, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("n, c, k, h, w_", SMALL)
def test_winograd_sample_groups_change_no_result(n, c, k, h, w_):
    # each sample alone (no group) gives the bits it gets within its group, forward and
    # dL/dx, on 1 and 2 threads
    assert K._conv_uses_winograd((n, c, h, w_), (k, c, 3, 3), S1, (1, 1), D1, 1)
    r = np.random.default_rng(h * w_)
    x = r.standard_normal((n, c, h, w_)).astype(np.float32)
    w = r.standard_normal((k, c, 3, 3)).astype(np.float32)
    gy = r.standard_normal((n, k, h, w_)).astype(np.float32)
    before = fastnn.get_num_threads()
    try:
        for nt in (1, 2):
            fastnn.set_num_threads(nt)
            y, _, gx, _, _ = run_conv(x, w, None, K.ACT_IDENTITY, S1, (1, 1), D1, 1, gy)
            for j in range(n):
                yj, _, gxj, _, _ = run_conv(
                    x[j : j + 1], w, None, K.ACT_IDENTITY, S1, (1, 1), D1, 1, gy[j : j + 1]
                )
                np.testing.assert_array_equal(y[j : j + 1], yj)
                np.testing.assert_array_equal(gx[j : j + 1], gxj)
    finally:
        fastnn.set_num_threads(before)
