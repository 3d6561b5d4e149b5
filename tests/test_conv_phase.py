"""The phase path of strided convolutions (csrc/generic/conv_phase.h): forward, dL/dx
and dL/dw against plain NumPy references and central finite differences, the same
results as the im2col columns it replaces, and independent of the thread count."""

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

# N, C, H, W, K, groups, kernel, stride, padding, dilation: every one runs the phase path
CASES = [
    (1, 3, 9, 9, 8, 1, (3, 3), (2, 2), (1, 1), (1, 1)),  # batch 1: chunk by chunk
    (11, 3, 9, 9, 8, 1, (3, 3), (2, 2), (1, 1), (1, 1)),  # sample by sample
    (9, 5, 13, 11, 12, 1, (3, 3), (2, 2), (0, 0), (1, 1)),  # padding 0, odd sizes
    (2, 4, 11, 13, 9, 1, (5, 5), (3, 3), (2, 1), (1, 1)),  # stride 3, K = 9
    (10, 2, 14, 15, 8, 1, (3, 3), (3, 3), (2, 2), (2, 2)),  # stride 3, dilation 2
    (9, 3, 12, 12, 16, 1, (3, 3), (2, 2), (1, 1), (2, 2)),  # one residue of 2 per axis
    (3, 4, 12, 12, 16, 2, (3, 3), (2, 2), (1, 1), (1, 1)),  # groups of 8
    (9, 4, 12, 10, 16, 2, (5, 5), (2, 2), (2, 2), (1, 1)),  # groups, 5x5
    (9, 4, 3, 3, 8, 1, (3, 3), (2, 2), (0, 0), (1, 1)),  # 1 x 1 output
    (2, 3, 7, 3, 8, 1, (3, 3), (2, 2), (1, 0), (1, 1)),  # output 1 pixel wide
    (9, 3, 10, 9, 8, 1, (3, 2), (2, 1), (1, 0), (1, 1)),  # strided rows only
    (2, 3, 9, 10, 8, 1, (2, 3), (1, 2), (0, 1), (1, 1)),  # strided columns only
    (2, 1, 1, 31, 10, 1, (1, 5), (1, 2), (0, 2), (1, 1)),  # 1-D
    (9, 16, 16, 16, 32, 1, (3, 3), (2, 2), (1, 1), (1, 1)),  # the small ResNet's, smaller
    (2, 2, 9, 1000, 20, 1, (3, 3), (2, 2), (1, 1), (1, 1)),  # rows staged 4 at a time
    (2, 2, 1, 4500, 8, 1, (1, 3), (1, 2), (0, 1), (1, 1)),  # a row too long to stage
    (9, 3, 11, 12, 16, 1, (3, 5), (2, 2), (1, 2), (1, 1)),  # 5 column taps of stride 2
]


def uses_phase(case):
    n, c, h, w, k, g, ks, s, p, d = case
    return K._conv_uses_phase((n, c, h, w), (k, c // g, *ks), s, p, d, g)


@pytest.mark.parametrize("case", CASES)
def test_cases_run_the_phase_path(case):
    assert uses_phase(case)
    before = K._set_conv_phase(False)
    try:
        assert not uses_phase(case)
    finally:
        K._set_conv_phase(before)


def test_one_by_one_and_non_overlapping_kernels_keep_im2col():
    # their columns are a plain gather: nothing for the phase planes to save
    assert not uses_phase((4, 16, 32, 32, 32, 1, (1, 1), (2, 2), (0, 0), (1, 1)))
    assert not uses_phase((4, 16, 32, 32, 32, 1, (2, 2), (2, 2), (0, 0), (1, 1)))
    assert not uses_phase((4, 16, 32, 32, 4, 1, (3, 3), (2, 2), (1, 1), (1, 1)))  # K < 8


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act, bias", [(RELU, True), (TANH, False)])
def test_phase_path_matches_numpy(case, act, bias):
    n, c, h, w_, k, g, ks, s, p, d = case
    r = np.random.default_rng(sum(map(hash, (n, c, h, w_, k))) % 2**32)
    x = r.standard_normal((n, c, h, w_))
    w = r.standard_normal((k, c // g, *ks))
    b = r.standard_normal(k) if bias else None
    zr = conv_ref(x, w, b, s, p, d, g)
    gy = r.standard_normal(zr.shape)
    y, z, gx, gw, gb = run_conv(x, w, b, act, s, p, d, g, gy)
    np.testing.assert_allclose(z, zr, rtol=1e-12, atol=1e-12)
    dact = (zr > 0) if act == RELU else 1 - np.tanh(zr) ** 2
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * dact, s, p, d, g)
    np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(gb, gbr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[6], CASES[10]])
def test_phase_path_backward_matches_finite_differences(case):
    # L = sum(gy * tanh(conv(x, w) + b)): dL/dx and dL/dw by central differences
    n, c, h, w_, k, g, ks, s, p, d = case
    r = np.random.default_rng(5)
    x = r.standard_normal((n, c, h, w_))
    w = r.standard_normal((k, c // g, *ks)) * 0.3
    check_conv_finite_differences(x, w, r.standard_normal(k), s, p, d, g, r)


def run_both_paths(case, dtype, seed=0):
    """run_conv's results with the phase path, then with im2col columns."""
    n, c, h, w_, k, g, ks, s, p, d = case
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, c, h, w_)).astype(dtype)
    w = r.standard_normal((k, c // g, *ks)).astype(dtype)
    b = r.standard_normal(k).astype(dtype)
    ho, wo = out_size(h, ks[0], s[0], p[0], d[0]), out_size(w_, ks[1], s[1], p[1], d[1])
    gy = r.standard_normal((n, k, ho, wo))
    out = []
    for phase in (True, False):
        before = K._set_conv_phase(phase)
        try:
            out.append(run_conv(x, w, b, RELU, s, p, d, g, gy))
        finally:
            K._set_conv_phase(before)
    return out


@pytest.mark.parametrize("case", [CASES[i] for i in (1, 3, 7, 13, 14, 15, 16)])
def test_phase_forward_equals_im2col_and_gradients_agree(case):
    # the forward sums over (channel, tap) in the im2col product's order: the same bits,
    # whatever register tiles each path takes (8 rows of output channels on AVX-512, 4
    # on im2col's); dL/dx sums in another order (each phase's taps), dL/dw runs the same
    # tiles
    (y, z, gx, gw, gb), (y0, z0, gx0, gw0, gb0) = run_both_paths(case, np.float32)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(gw, gw0)
    np.testing.assert_array_equal(gb, gb0)
    np.testing.assert_allclose(gx, gx0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [3, 40])
def test_phase_path_results_do_not_depend_on_thread_count(n):
    # 3 samples: each pass split between the threads; 40: whole samples per thread
    r = np.random.default_rng(n)
    x = r.standard_normal((n, 8, 15, 13)).astype(np.float32)
    w = r.standard_normal((24, 8, 3, 3)).astype(np.float32)
    b = r.standard_normal(24).astype(np.float32)
    s, p, d = (2, 2), (1, 1), (1, 1)
    assert K._conv_uses_phase(x.shape, w.shape, s, p, d, 1)
    gy = r.standard_normal((n, 24, out_size(15, 3, 2, 1, 1), out_size(13, 3, 2, 1, 1)))
    results_on_thread_counts(lambda: run_conv(x, w, b, RELU, s, p, d, 1, gy))


@pytest.mark.parametrize("n", [1, 9])
@pytest.mark.parametrize("cin, cout, size", [(16, 32, 15), (32, 64, 8)])
def test_strided_conv2d_equals_torch(n, cin, cout, size):
    # the small ResNet's downsampling convolutions, odd and even planes, float64
    th = pytest.importorskip("torch")
    from test_conv_layers import load_from_torch, torch_check

    from fastnn.layers import Conv2d

    rng = np.random.default_rng(n + cin)
    theirs = th.nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False).double()
    ours = load_from_torch(Conv2d(cin, cout, 3, 2, 1, bias=False, dtype=np.float64), theirs)
    x = rng.standard_normal((n, cin, size, size))
    assert K._conv_uses_phase(x.shape, (cout, cin, 3, 3), (2, 2), (1, 1), (1, 1), 1)
    torch_check(th, ours, theirs, x, rng, grads_of=("weight",))
