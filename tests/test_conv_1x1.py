"""The strided 1x1 path (csrc/generic/conv_1x1.h, a ResNet's projection shortcuts):
forward, dL/dx and dL/dw against plain NumPy references, central finite differences and
torch, the im2col path it replaces, and independent of the thread count."""

from contextlib import contextmanager

import numpy as np
import pytest
from test_conv_kernels import (
    RELU,
    TANH,
    check_conv_finite_differences,
    conv_grads_ref,
    conv_ref,
    out_size,
    results_on_thread_counts,
    run_conv,
)

from fastnn import _kernels as K

# N, C, H, W, K, stride: 1x1 kernels without padding, 8 samples or more (whole samples
# per thread): every one runs the strided 1x1 path
CASES = [
    (9, 16, 16, 16, 32, (2, 2)),  # the small ResNet's first shortcut, smaller
    (8, 32, 8, 8, 64, (2, 2)),  # its second
    (9, 5, 13, 11, 12, (2, 2)),  # odd sizes: 7 x 6 outputs, not whole vectors
    (10, 4, 11, 13, 9, (3, 3)),  # stride 3
    (8, 3, 10, 9, 8, (2, 1)),  # strided rows only
    (9, 3, 9, 10, 8, (1, 2)),  # strided columns only
    (9, 3, 2, 2, 8, (2, 2)),  # 1 x 1 output
    (8, 4, 3, 7, 10, (2, 3)),  # 2 x 3 output, one pixel at the edge
    (9, 6, 9, 9, 3, (2, 2)),  # 3 output channels
    (8, 2, 1, 31, 10, (1, 2)),  # 1-D
]


def geometry(case):
    n, c, h, w, k, s = case
    return (n, c, h, w), (k, c, 1, 1), s, (0, 0), (1, 1)


def uses_point(case):
    return K._conv_uses_point(*geometry(case), 1)


@contextmanager
def point_path(on):
    before = K._set_conv_point(on)
    try:
        yield
    finally:
        K._set_conv_point(before)


@pytest.mark.parametrize("case", CASES)
def test_cases_run_the_point_path(case):
    assert uses_point(case)
    with point_path(False):
        assert not uses_point(case)


def test_other_convolutions_keep_their_paths():
    assert not uses_point((4, 16, 32, 32, 32, (2, 2)))  # 4 samples: chunk by chunk
    assert not uses_point((1, 16, 32, 32, 32, (2, 2)))
    assert not uses_point((9, 16, 32, 32, 32, (1, 1)))  # stride 1: direct
    assert not K._conv_uses_point((9, 16, 8, 8), (32, 16, 1, 1), (2, 2), (1, 1), (1, 1), 1)
    assert not K._conv_uses_point((9, 16, 8, 8), (32, 8, 1, 1), (2, 2), (0, 0), (1, 1), 2)
    assert not K._conv_uses_point((9, 16, 8, 8), (32, 16, 2, 2), (2, 2), (0, 0), (1, 1), 1)


def check_against_numpy(case, act, bias, seed=0):
    n, c, h, w_, k, s = case
    p, d = (0, 0), (1, 1)
    r = np.random.default_rng(seed + sum(case[:5]))
    x = r.standard_normal((n, c, h, w_))
    w = r.standard_normal((k, c, 1, 1))
    b = r.standard_normal(k) if bias else None
    zr = conv_ref(x, w, b, s, p, d, 1)
    gy = r.standard_normal(zr.shape)
    y, z, gx, gw, gb = run_conv(x, w, b, act, s, p, d, 1, gy)
    np.testing.assert_allclose(z, zr, rtol=1e-12, atol=1e-12)
    dact = {RELU: zr > 0, TANH: 1 - np.tanh(zr) ** 2}.get(act, 1.0)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * dact, s, p, d, 1)
    np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(gb, gbr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act, bias", [(K.ACT_IDENTITY, False), (RELU, True), (TANH, False)])
def test_point_path_matches_numpy(case, act, bias):
    # identity without bias reads dL/dy in place where the outputs fill whole vectors
    check_against_numpy(case, act, bias)


@pytest.mark.parametrize("n", [1, 3])
def test_small_batches_take_im2col_and_match_numpy(n):
    case = (n, 5, 13, 11, 12, (2, 2))
    assert not uses_point(case)
    check_against_numpy(case, K.ACT_IDENTITY, True)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[6]])
def test_point_path_backward_matches_finite_differences(case):
    n, c, h, w_, k, s = case
    r = np.random.default_rng(5)
    x = r.standard_normal((n, c, h, w_))
    w = r.standard_normal((k, c, 1, 1)) * 0.3
    check_conv_finite_differences(x, w, r.standard_normal(k), s, (0, 0), (1, 1), 1, r)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3]])
@pytest.mark.parametrize("act", [K.ACT_IDENTITY, RELU])
def test_point_path_against_im2col(case, act):
    # the forward is the im2col path's and dL/dx sums in its order: the same bits; dL/dw
    # sums along the pixels in vector lanes instead of pixel by pixel
    n, c, h, w_, k, s = case
    p, d = (0, 0), (1, 1)
    r = np.random.default_rng(1)
    x = r.standard_normal((n, c, h, w_)).astype(np.float32)
    w = r.standard_normal((k, c, 1, 1)).astype(np.float32)
    gy = r.standard_normal((n, k, out_size(h, 1, s[0], 0, 1), out_size(w_, 1, s[1], 0, 1)))
    out = []
    for on in (True, False):
        with point_path(on):
            out.append(run_conv(x, w, None, act, s, p, d, 1, gy))
    (y, z, gx, gw, _), (y0, z0, gx0, gw0, _) = out
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(gx, gx0)
    np.testing.assert_allclose(gw, gw0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n, bias", [(9, False), (40, True)])
def test_point_path_results_do_not_depend_on_thread_count(n, bias):
    r = np.random.default_rng(n)
    x = r.standard_normal((n, 12, 15, 13)).astype(np.float32)
    w = r.standard_normal((24, 12, 1, 1)).astype(np.float32)
    b = r.standard_normal(24).astype(np.float32) if bias else None
    s, p, d = (2, 2), (0, 0), (1, 1)
    assert K._conv_uses_point(x.shape, w.shape, s, p, d, 1)
    gy = r.standard_normal((n, 24, 8, 7))
    act = RELU if bias else K.ACT_IDENTITY
    results_on_thread_counts(lambda: run_conv(x, w, b, act, s, p, d, 1, gy))


@pytest.mark.parametrize("n", [1, 9])
@pytest.mark.parametrize("cin, cout, size", [(16, 32, 15), (32, 64, 8)])
def test_strided_1x1_conv2d_equals_torch(n, cin, cout, size):
    # the small ResNet's projection shortcuts, odd and even planes, float64
    th = pytest.importorskip("torch")
    from test_conv_layers import load_from_torch, torch_check

    from fastnn.layers import Conv2d

    rng = np.random.default_rng(n + cin)
    theirs = th.nn.Conv2d(cin, cout, 1, stride=2, bias=False).double()
    ours = load_from_torch(Conv2d(cin, cout, 1, 2, bias=False, dtype=np.float64), theirs)
    x = rng.standard_normal((n, cin, size, size))
    assert K._conv_uses_point(x.shape, (cout, cin, 1, 1), (2, 2), (0, 0), (1, 1), 1) == (n >= 8)
    torch_check(th, ours, theirs, x, rng, grads_of=("weight",))
