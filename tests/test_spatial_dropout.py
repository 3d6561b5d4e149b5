"""Dropout1d/2d, DropBlock2d, StochasticDepth and Cutout: their masks against NumPy
(and torch) re-computations from the same random draws, their statistics, gradients by
finite differences, eval-mode identity and independence from the thread count."""

import numpy as np
import pytest
from helpers import fd_check

import fastnn
from fastnn import _kernels, rng as frng
from fastnn.layers import Cutout, DropBlock2d, Dropout1d, Dropout2d, StochasticDepth

LAYERS = [
    (lambda: Dropout1d(0.3), (4, 5, 7)),
    (lambda: Dropout2d(0.3), (4, 5, 6, 7)),
    (lambda: DropBlock2d(0.3, 3), (4, 5, 6, 7)),
    (lambda: StochasticDepth(0.3, "row"), (4, 5, 6, 7)),
    (lambda: StochasticDepth(0.3, "batch"), (4, 5)),
    (lambda: Cutout(3, n_holes=2), (4, 5, 6, 7)),
]


def next_uniform(n):
    """The draws the next mask of fastnn's generator will use (advances it)."""
    key, counter = frng.next_dropout_stream()
    bits = np.empty(n, np.uint32)
    _kernels.random_bits(key, counter, bits)
    return bits * 2.0**-32


@pytest.mark.parametrize("make,shape", LAYERS)
def test_eval_mode_is_identity(rng, make, shape):
    layer = make().eval()
    x = rng.standard_normal(shape)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


@pytest.mark.parametrize("make,shape", LAYERS)
def test_backward_matches_finite_differences(rng, num_grad, fd_tol, make, shape):
    fd_check(
        make(), rng.standard_normal(shape), num_grad, fd_tol, rng, before=lambda: fastnn.seed(3)
    )


@pytest.mark.parametrize("make,shape", LAYERS)
def test_masks_do_not_depend_on_thread_count(rng, use_threads, make, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    outs = []
    for n in (1, 2):
        with use_threads(n):
            fastnn.seed(5)
            outs.append(make().forward(x))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("cls,shape", [(Dropout1d, (3, 4, 5)), (Dropout2d, (3, 4, 5, 6))])
def test_channel_dropout_mask_from_the_generator(rng, cls, shape):
    x = rng.standard_normal(shape)
    fastnn.seed(11)
    y = cls(0.4).forward(x)
    fastnn.seed(11)
    keep = (next_uniform(shape[0] * shape[1]) >= 0.4).reshape(shape[:2])
    expect = x * (keep / 0.6).reshape(shape[:2] + (1,) * (len(shape) - 2))
    np.testing.assert_allclose(y, expect, rtol=1e-15)


def test_channel_dropout_drops_about_p_of_the_channels():
    fastnn.seed(0)
    y = Dropout2d(0.25).forward(np.ones((200, 50, 2, 2)))
    dropped = (y[:, :, 0, 0] == 0).mean()
    assert abs(dropped - 0.25) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)


def test_channel_dropout_p1_zeroes_everything():
    y = Dropout2d(1.0).forward(np.ones((2, 3, 2, 2)))
    np.testing.assert_array_equal(y, 0)


def drop_block_reference(x, p, b, u, eps=1e-6):
    """torchvision.ops.drop_block2d in NumPy, with the uniform draws u (N, C, H-b+1, W-b+1)."""
    n, c, h, w = x.shape
    gamma = p * h * w / (b * b * (h - b + 1) * (w - b + 1))
    seeds = np.pad((u < gamma).astype(float), [(0, 0), (0, 0), (b // 2, b // 2), (b // 2, b // 2)])
    blocked = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            blocked[:, :, i, j] = seeds[
                :, :, max(i - b // 2, 0) : i + b // 2 + 1, max(j - b // 2, 0) : j + b // 2 + 1
            ].max(axis=(2, 3))
    keep = 1 - blocked
    return x * keep * keep.size / (eps + keep.sum())


@pytest.mark.parametrize("b,hw", [(3, (9, 8)), (5, (7, 7)), (1, (4, 5)), (7, (5, 9))])
def test_dropblock_matches_torchvision_rule(rng, b, hw):
    x = rng.standard_normal((3, 4) + hw)
    fastnn.seed(2)
    y = DropBlock2d(0.3, b).forward(x)
    be = min(b, *hw)
    fastnn.seed(2)
    u = next_uniform(3 * 4 * (hw[0] - be + 1) * (hw[1] - be + 1))
    u = u.reshape(3, 4, hw[0] - be + 1, hw[1] - be + 1)
    np.testing.assert_allclose(y, drop_block_reference(x, 0.3, be, u), rtol=1e-12)
    th = pytest.importorskip("torch")
    # torchvision's own steps (pad, max-pool, rescale) on the same Bernoulli draws
    gamma = 0.3 * hw[0] * hw[1] / (be * be * (hw[0] - be + 1) * (hw[1] - be + 1))
    noise = th.tensor((u < gamma).astype(np.float64))
    noise = th.nn.functional.pad(noise, [be // 2] * 4, value=0)
    noise = th.nn.functional.max_pool2d(noise, (be, be), (1, 1), be // 2)
    keep = 1 - noise
    expect = th.tensor(x) * keep * (keep.numel() / (1e-6 + keep.sum()))
    np.testing.assert_allclose(y, expect.numpy(), rtol=1e-12)


def test_dropblock_even_block_raises():
    with pytest.raises(ValueError, match=r"DropBlock2d\(p=0.2, block_size=4\).*must be odd"):
        DropBlock2d(0.2, 4).forward(np.ones((1, 1, 8, 8)))


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_matches_torchvision_rule(rng, mode):
    x = rng.standard_normal((6, 3, 2))
    fastnn.seed(4)
    y = StochasticDepth(0.5, mode).forward(x)
    fastnn.seed(4)
    keep = next_uniform(6 if mode == "row" else 1) >= 0.5
    np.testing.assert_allclose(y, x * (keep / 0.5)[:, None, None], rtol=1e-15)


def test_stochastic_depth_p1_drops_everything():
    np.testing.assert_array_equal(StochasticDepth(1.0).forward(np.ones((3, 2))), 0)


def test_stochastic_depth_bad_mode():
    with pytest.raises(ValueError, match="StochasticDepth mode"):
        StochasticDepth(0.1, "col")


def test_cutout_zeroes_squares_in_every_channel():
    fastnn.seed(9)
    y = Cutout(4).forward(np.ones((50, 3, 12, 12)))
    holes = y[:, 0] == 0
    assert (y == y[:, :1]).all()  # the same square in all channels
    sizes = holes.sum(axis=(1, 2))
    assert sizes.max() == 16 and sizes.min() >= 4  # clipped at the borders
    for img in holes:
        r, c = np.nonzero(img)
        assert r.max() - r.min() < 4 and c.max() - c.min() < 4
    np.testing.assert_array_equal(y[y != 0], 1)  # no rescaling


@pytest.mark.parametrize(
    "make,x,match",
    [
        (lambda: Dropout2d(0.1), np.ones((2, 3, 4)), r"Dropout2d\(p=0.1\): expected a 4-D"),
        (lambda: Dropout1d(0.1), np.ones((2, 3)), r"Dropout1d\(p=0.1\): expected a 3-D"),
        (lambda: Cutout(2), np.ones((2, 3, 4)), r"Cutout\(size=2\): expected a 4-D"),
    ],
)
def test_bad_input_names_the_layer(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)
