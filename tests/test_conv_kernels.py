"""Convolution and pooling kernels (csrc/conv.c, csrc/pool.c) against plain NumPy
references, and the binding's checks (wrong shapes, dtypes and missing buffers raise)."""

import numpy as np
import pytest

from fastnn import _kernels as K

RNG = np.random.default_rng(0)
RELU, LEAKY, TANH = K.ACT_RELU, K.ACT_LEAKY_RELU, K.ACT_TANH


# -- references -------------------------------------------------------------------------
def out_size(n, k, s, p, d, ceil=False):
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def taps(x, kh, kw, s, p, d, pad_value=0.0):
    """x (N, C, H, W) -> (N, C, kh, kw, Ho, Wo): the input under each tap of each window."""
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, s[0], p[0], d[0]), out_size(w, kw, s[1], p[1], d[1])
    xp = np.full((n, c, h + 2 * p[0] + s[0] * ho, w + 2 * p[1] + s[1] * wo), pad_value)
    xp[:, :, p[0] : p[0] + h, p[1] : p[1] + w] = x
    t = np.empty((n, c, kh, kw, ho, wo))
    for i in range(kh):
        for j in range(kw):
            t[:, :, i, j] = xp[
                :, :, i * d[0] : i * d[0] + s[0] * ho : s[0], j * d[1] : j * d[1] + s[1] * wo : s[1]
            ]
    return t


def conv_ref(x, w, b, s, p, d, groups):
    t = taps(x, w.shape[2], w.shape[3], s, p, d)
    n, c = x.shape[:2]
    k, cg = w.shape[:2]
    t = t.reshape(n, groups, cg, *t.shape[2:])
    wg = w.reshape(groups, k // groups, cg, *w.shape[2:])
    y = np.einsum("ngcijhw,gocij->ngohw", t, wg).reshape(n, k, *t.shape[-2:])
    return y if b is None else y + b[:, None, None]


def conv_grads_ref(x, w, gz, s, p, d, groups, eps=1e-6):
    """dL/dx, dL/dw, dL/db of L = sum(gz * conv(x, w)) by the adjoint of taps (exact)."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    ho, wo = gz.shape[2:]
    gzg = gz.reshape(n, groups, k // groups, ho, wo)
    t = taps(x, kh, kw, s, p, d).reshape(n, groups, cg, kh, kw, ho, wo)
    gw = np.einsum("ngohw,ngcijhw->gocij", gzg, t).reshape(w.shape)
    wg = w.reshape(groups, k // groups, cg, kh, kw)
    gt = np.einsum("ngohw,gocij->ngcijhw", gzg, wg).reshape(n, c, kh, kw, ho, wo)
    gxp = np.zeros((n, c, h + 2 * p[0] + s[0] * ho, wd + 2 * p[1] + s[1] * wo))
    for i in range(kh):
        for j in range(kw):
            gxp[
                :, :, i * d[0] : i * d[0] + s[0] * ho : s[0], j * d[1] : j * d[1] + s[1] * wo : s[1]
            ] += gt[:, :, i, j]
    gx = gxp[:, :, p[0] : p[0] + h, p[1] : p[1] + wd]
    return gx, gw, gz.sum(axis=(0, 2, 3))


def act_ref(code, z):
    if code == RELU:
        return np.maximum(z, 0), (z > 0).astype(z.dtype)
    if code == LEAKY:
        return np.where(z < 0, 0.1 * z, z), np.where(z > 0, 1.0, 0.1)
    if code == TANH:
        return np.tanh(z), 1 - np.tanh(z) ** 2
    return z, np.ones_like(z)


def run_conv(x, w, b, act, s, p, d, groups, gy):
    dt = x.dtype
    n, k = x.shape[0], w.shape[0]
    ho = out_size(x.shape[2], w.shape[2], s[0], p[0], d[0])
    wo = out_size(x.shape[3], w.shape[3], s[1], p[1], d[1])
    y, z = np.empty((n, k, ho, wo), dt), np.empty((n, k, ho, wo), dt)
    scratch = np.empty(K.conv_scratch_size(x.shape, w.shape, s, p, d, groups), dt)
    K.conv_forward(x, w, b, act, 0.1, 0.0, z, y, scratch, s, p, d, groups)
    gw = np.ones_like(w)  # gradients accumulate
    gb = np.ones(k, dt) if b is not None else None
    gx = np.empty_like(x)
    K.conv_backward(
        x, w, act, 0.1, 0.0, z, y, gy.astype(dt), gw, gb, gx, scratch, np.empty(k), s, p, d, groups
    )
    return y, z, gx, gw - 1, None if gb is None else gb - 1


CASES = [  # N, C, H, W, K, groups, kernel, stride, padding, dilation
    (2, 3, 7, 6, 4, 1, (3, 2), (1, 1), (1, 0), (1, 1)),
    (3, 4, 9, 8, 6, 2, (3, 3), (2, 1), (1, 2), (2, 1)),
    (1, 4, 5, 5, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1)),  # depthwise
    (2, 2, 6, 7, 6, 2, (1, 1), (2, 2), (0, 0), (1, 1)),  # 1x1, channel multiplier 3
    (2, 1, 1, 11, 3, 1, (1, 4), (1, 3), (0, 2), (1, 2)),  # 1-D
    (1, 3, 4, 4, 2, 1, (4, 4), (1, 1), (0, 0), (1, 1)),  # kernel = input
    (2, 4, 7, 9, 16, 2, (3, 3), (2, 1), (1, 1), (1, 1)),  # groups of 8 output channels
    (3, 5, 6, 11, 20, 1, (2, 3), (1, 2), (1, 0), (1, 2)),  # K = 20: a partial vector
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act", [K.ACT_IDENTITY, RELU, LEAKY, TANH])
def test_conv_forward_backward_match_numpy(case, act):
    n, c, h, w_, k, g, ks, s, p, d = case
    x = RNG.standard_normal((n, c, h, w_))
    w = RNG.standard_normal((k, c // g, *ks))
    b = RNG.standard_normal(k)
    zr = conv_ref(x, w, b, s, p, d, g)
    yr, dact = act_ref(act, zr)
    gy = RNG.standard_normal(zr.shape)
    y, z, gx, gw, gb = run_conv(x, w, b, act, s, p, d, g, gy)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * dact, s, p, d, g)
    np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, gbr, rtol=1e-12, atol=1e-12)


def random_geometries(count, seed, wide=False):
    """Random convolutions, stride 1 with padding within the kernel's reach (the direct
    path: padded planes read in place) and all others (im2col), each with odd sizes,
    groups, dilation and output widths that leave partial vector tiles. wide: 8 or more
    output channels, whole vectors of them per group (the weight gradient's tiles)."""
    r = np.random.default_rng(seed)
    while count:
        g = int(r.choice([1, 1, 2, 3]))
        c, k = g * int(r.integers(1, 5)), g * int(r.integers(1, 7))
        if wide:
            k = int(r.integers(8, 27)) if g == 1 else g * 8 * int(r.integers(1, 3))
        ks = (int(r.integers(1, 6)), int(r.integers(1, 6)))
        s = (1, 1) if r.random() < 0.6 else (int(r.integers(1, 3)), int(r.integers(1, 3)))
        d = (1, 1) if r.random() < 0.7 else (int(r.integers(1, 3)), int(r.integers(1, 3)))
        p = (int(r.integers(0, 4)), int(r.integers(0, 4)))
        h, w = int(r.integers(1, 20)), int(r.integers(1, 30))
        if h + 2 * p[0] < d[0] * (ks[0] - 1) + 1 or w + 2 * p[1] < d[1] * (ks[1] - 1) + 1:
            continue
        count -= 1
        yield (int(r.integers(1, 5)), c, h, w, k, g, ks, s, p, d)


@pytest.mark.parametrize(
    "case", list(random_geometries(60, 7)) + list(random_geometries(40, 8, wide=True))
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_random_geometries_match_numpy(case, bias):
    # without a bias gradient, dL/dz and its transpose come from one fused pass
    n, c, h, w_, k, g, ks, s, p, d = case
    x = RNG.standard_normal((n, c, h, w_))
    w = RNG.standard_normal((k, c // g, *ks))
    b = RNG.standard_normal(k) if bias else None
    zr = conv_ref(x, w, b, s, p, d, g)
    gy = RNG.standard_normal(zr.shape)
    y, z, gx, gw, gb = run_conv(x, w, b, RELU, s, p, d, g, gy)
    np.testing.assert_allclose(z, zr, rtol=1e-12, atol=1e-12)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * (zr > 0), s, p, d, g)
    np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(gb, gbr, rtol=1e-12, atol=1e-12)
    else:
        assert gb is None


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_weight_gradient_alone_matches_numpy(stride):
    # no input gradient (a network's first layer): dL/dz is only packed for the tiles
    r = np.random.default_rng(stride)
    x = r.standard_normal((3, 5, 9, 11))
    w = r.standard_normal((12, 5, 3, 3))
    s, p, d = (stride, stride), (1, 1), (1, 1)
    gy = r.standard_normal(conv_ref(x, w, None, s, p, d, 1).shape)
    z, y = np.empty_like(gy), np.empty_like(gy)
    scratch = np.empty(K.conv_scratch_size(x.shape, w.shape, s, p, d, 1))
    K.conv_forward(x, w, None, RELU, 0.0, 0.0, z, y, scratch, s, p, d, 1)
    gw = np.zeros_like(w)
    K.conv_backward(x, w, RELU, 0.0, 0.0, z, y, gy, gw, None, None, scratch, None, s, p, d, 1)
    _, gwr, _ = conv_grads_ref(x, w, gy * (z > 0), s, p, d, 1)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_weight_gradient_over_sample_blocks_matches_numpy(stride):
    # more output pixels than one block of the weight-gradient tiles (~2048): their sums
    # wait in scratch between blocks
    r = np.random.default_rng(10 + stride)
    x = r.standard_normal((20, 3, 24, 24))
    w = r.standard_normal((16, 3, 3, 3))
    b = r.standard_normal(16)
    s, p, d = (stride, stride), (1, 1), (1, 1)
    zr = conv_ref(x, w, b, s, p, d, 1)
    gy = r.standard_normal(zr.shape)
    y, z, gx, gw, gb = run_conv(x, w, b, RELU, s, p, d, 1, gy)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * (zr > 0), s, p, d, 1)
    np.testing.assert_allclose(gw, gwr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, gbr, rtol=1e-12, atol=1e-12)


# K = 512 on 64 x 3 x 3: weight-gradient sums for 7 blocks of samples only
WIDE = (1, 64, 4, 4, 512, 1, (3, 3), (1, 1), (1, 1), (1, 1))


@pytest.mark.parametrize("case", CASES + [WIDE])
@pytest.mark.parametrize("wanted", ["all", "weights"])
def test_conv_sample_by_sample_matches_numpy(case, wanted):
    # From 8 samples up a thread takes whole samples, and the weight and bias sums run
    # over 8 blocks of samples: 11 samples make blocks of 1 and 2. "weights": dL/dw
    # alone (dL/dz packed straight from dL/dy).
    _, c, h, w_, k, g, ks, s, p, d = case
    n = 11
    x = RNG.standard_normal((n, c, h, w_))
    w = RNG.standard_normal((k, c // g, *ks))
    b = RNG.standard_normal(k) if wanted == "all" else None
    zr = conv_ref(x, w, b, s, p, d, g)
    gy = RNG.standard_normal(zr.shape)
    y, z = np.empty(zr.shape), np.empty(zr.shape)
    scratch = np.empty(K.conv_scratch_size(x.shape, w.shape, s, p, d, g))
    K.conv_forward(x, w, b, TANH, 0.0, 0.0, z, y, scratch, s, p, d, g)
    np.testing.assert_allclose(z, zr, rtol=1e-12, atol=1e-12)
    gw = np.ones_like(w)  # gradients accumulate
    gb = np.ones(k) if b is not None else None
    gx = np.empty_like(x) if wanted == "all" else None
    K.conv_backward(x, w, TANH, 0.0, 0.0, z, y, gy, gw, gb, gx, scratch, np.empty(k), s, p, d, g)
    gxr, gwr, gbr = conv_grads_ref(x, w, gy * (1 - np.tanh(zr) ** 2), s, p, d, g)
    np.testing.assert_allclose(gw - 1, gwr, rtol=1e-12, atol=1e-12)
    if wanted == "all":
        np.testing.assert_allclose(gx, gxr, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gb - 1, gbr, rtol=1e-12, atol=1e-12)


def test_conv_float32_many_chunks_and_no_bias():
    # 600 samples of 1x28x28 with 5x5 taps span several im2col chunks.
    x = RNG.standard_normal((600, 1, 28, 28)).astype(np.float32)
    w = RNG.standard_normal((6, 1, 5, 5)).astype(np.float32)
    gy = RNG.standard_normal((600, 6, 24, 24))
    y, _, gx, gw, gb = run_conv(x, w, None, K.ACT_IDENTITY, (1, 1), (0, 0), (1, 1), 1, gy)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(
        y, conv_ref(x64, w64, None, (1, 1), (0, 0), (1, 1), 1), rtol=1e-4, atol=1e-4
    )
    gxr, gwr, _ = conv_grads_ref(
        x64, w64, gy.astype(np.float32).astype(np.float64), (1, 1), (0, 0), (1, 1), 1
    )
    np.testing.assert_allclose(gx, gxr, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, gwr, rtol=1e-4, atol=1e-2)
    assert gb is None


def check_conv_finite_differences(x, w, b, s, p, d, groups, r, picks=12, eps=1e-6):
    """dL/dx and dL/dw of L = sum(gy * tanh(conv(x, w) + b)) from the kernels against
    central differences at `picks` random entries of each."""
    gy = r.standard_normal(conv_ref(x, w, b, s, p, d, groups).shape)
    _, _, gx, gw, _ = run_conv(x, w, b, TANH, s, p, d, groups, gy)

    def loss(xv, wv):
        return float(np.sum(gy * np.tanh(conv_ref(xv, wv, b, s, p, d, groups))))

    for arr, grad, is_x in ((x, gx, True), (w, gw, False)):
        for idx in r.choice(arr.size, picks, replace=False):
            i = np.unravel_index(idx, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[i] += eps
            minus[i] -= eps
            lp = loss(plus, w) if is_x else loss(x, plus)
            lm = loss(minus, w) if is_x else loss(x, minus)
            np.testing.assert_allclose(grad[i], (lp - lm) / (2 * eps), rtol=1e-6, atol=1e-7)


def results_on_thread_counts(run, counts=(1, 2, 3)):
    """run()'s results on each number of threads, checked bit-identical; the first."""
    from fastnn import threads

    before = threads.get_num_threads()
    try:
        outs = []
        for nt in counts:
            threads.set_num_threads(nt)
            outs.append(run())
    finally:
        threads.set_num_threads(before)
    for other in outs[1:]:
        for a, o in zip(outs[0], other):
            if a is not None:
                np.testing.assert_array_equal(a, o)
    return outs[0]


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_results_do_not_depend_on_thread_count(stride):
    x = RNG.standard_normal((64, 8, 12, 12)).astype(np.float32)
    w = RNG.standard_normal((24, 8, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(24).astype(np.float32)
    ho = out_size(12, 3, stride, 1, 1)
    gy = RNG.standard_normal((64, 24, ho, ho))
    s = (stride, stride)
    results_on_thread_counts(lambda: run_conv(x, w, b, RELU, s, (1, 1), (1, 1), 1, gy))


def test_large_weight_sums_over_fewer_blocks_match_numpy_on_any_thread_count():
    # 64 -> 64 3x3 (Winograd): 8 blocks' weight-gradient sums would pass 1 MiB, so the
    # samples go in 4 blocks (13 samples: of 4, 3, 3, 3)
    r = np.random.default_rng(3)
    x = r.standard_normal((13, 64, 8, 8))
    w = r.standard_normal((64, 64, 3, 3)) * 0.1
    s, p, d = (1, 1), (1, 1), (1, 1)
    zr = conv_ref(x, w, None, s, p, d, 1)
    gy = r.standard_normal(zr.shape)
    gxr, gwr, _ = conv_grads_ref(x, w, gy * (zr > 0), s, p, d, 1)
    y, _, gx, gw, _ = results_on_thread_counts(lambda: run_conv(x, w, None, RELU, s, p, d, 1, gy))
    np.testing.assert_allclose(y, np.maximum(zr, 0), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gx, gxr, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gw, gwr, rtol=1e-11, atol=1e-11)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    results_on_thread_counts(lambda: run_conv(x32, w32, None, RELU, s, p, d, 1, gy))


# -- pooling ----------------------------------------------------------------------------
def maxpool_ref(x, k, s, p, d, ceil):
    n, c, h, w = x.shape
    ho, wo = out_size(h, k[0], s[0], p[0], d[0], ceil), out_size(w, k[1], s[1], p[1], d[1], ceil)
    y = np.empty((n, c, ho, wo))
    idx = np.empty((n, c, ho, wo), np.int64)
    for i in range(ho):
        for j in range(wo):
            hs = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
            ws = [j * s[1] - p[1] + a * d[1] for a in range(k[1])]
            flat = [hh * w + ww for hh in hs if 0 <= hh < h for ww in ws if 0 <= ww < w]
            vals = x.reshape(n, c, h * w)[:, :, flat]
            best = vals.argmax(axis=2)  # first maximum, as torch
            y[:, :, i, j] = np.take_along_axis(vals, best[..., None], 2)[..., 0]
            idx[:, :, i, j] = np.asarray(flat)[best]
    return y, idx


def avgpool_ref(x, k, s, p, ceil, cip, divisor):
    n, c, h, w = x.shape
    ho, wo = out_size(h, k[0], s[0], p[0], 1, ceil), out_size(w, k[1], s[1], p[1], 1, ceil)
    y = np.zeros((n, c, ho, wo))
    weights = np.zeros((ho, wo, h, w))
    for i in range(ho):
        for j in range(wo):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            pool = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            div = divisor or (pool if cip else (h1 - h0) * (w1 - w0))
            weights[i, j, h0:h1, w0:w1] = 1.0 / div
    y = np.einsum("nchw,ijhw->ncij", x, weights)
    return y, weights


POOLS = [  # kernel, stride, padding, dilation, ceil_mode
    ((3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 3), (2, 1), (1, 0), (2, 1), True),
    ((3, 2), (2, 2), (0, 1), (1, 1), True),
    ((2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 3), (1, 2), (0, 1), (1, 1), False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", POOLS)
def test_maxpool_matches_numpy(pool, dtype):
    k, s, p, d, ceil = pool
    x = RNG.standard_normal((2, 3, 9, 8)).astype(dtype)
    x[0, 0, :2, :2] = 1.5  # ties: the first maximum wins
    yr, idxr = maxpool_ref(x, k, s, p, d, ceil)
    y, idx = np.empty(yr.shape, dtype), np.empty(yr.shape, np.int32)
    K.maxpool_forward(x, y, idx, k, s, p, d, ceil)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, idxr)
    gy = RNG.standard_normal(yr.shape).astype(dtype)
    gx = np.full_like(x, np.nan)  # overwritten, not accumulated
    K.maxpool_backward(gy, idx, gx, k, s, p, d, ceil)
    gxr = np.zeros((2, 3, 72))
    for (a, b, i, j), flat in np.ndenumerate(idxr):
        gxr[a, b, flat] += gy[a, b, i, j]
    # overlapping windows sum in float32 (the reference in float64): absolute round-off
    np.testing.assert_allclose(gx.reshape(2, 3, 72), gxr, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool", [pl for pl in POOLS if pl[3] == (1, 1)])
@pytest.mark.parametrize("cip,divisor", [(True, 0), (False, 0), (True, 5)])
def test_avgpool_matches_numpy(pool, cip, divisor):
    k, s, p, _, ceil = pool
    x = RNG.standard_normal((2, 3, 9, 8))
    yr, weights = avgpool_ref(x, k, s, p, ceil, cip, divisor)
    y = np.empty(yr.shape)
    K.avgpool_forward(x, y, k, s, p, ceil, cip, divisor)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-14)
    gy = RNG.standard_normal(yr.shape)
    gx = np.full_like(x, np.nan)
    K.avgpool_backward(gy, gx, k, s, p, ceil, cip, divisor)
    np.testing.assert_allclose(
        gx, np.einsum("ncij,ijhw->nchw", gy, weights), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("out", [(1, 1), (4, 3), (9, 8), (5, 7), (1, 3)])
def test_adaptive_avgpool_matches_numpy(out):
    x = RNG.standard_normal((2, 3, 9, 8))
    weights = np.zeros((*out, 9, 8))
    for i in range(out[0]):
        for j in range(out[1]):
            h0, h1 = i * 9 // out[0], -(-(i + 1) * 9 // out[0])
            w0, w1 = j * 8 // out[1], -(-(j + 1) * 8 // out[1])
            weights[i, j, h0:h1, w0:w1] = 1.0 / ((h1 - h0) * (w1 - w0))
    y = np.empty((2, 3, *out))
    K.adaptive_avgpool_forward(x, y)
    np.testing.assert_allclose(y, np.einsum("nchw,ijhw->ncij", x, weights), rtol=1e-12)
    gy = RNG.standard_normal(y.shape)
    gx = np.empty_like(x)
    K.adaptive_avgpool_backward(gy, gx)
    np.testing.assert_allclose(gx, np.einsum("ncij,ijhw->nchw", gy, weights), rtol=1e-12)


# -- the binding refuses misuse -----------------------------------------------------------
def conv_args(**over):
    x = np.zeros((2, 3, 5, 5))
    w = np.zeros((4, 3, 3, 3))
    args = dict(
        x=x,
        w=w,
        bias=np.zeros(4),
        act=0,
        alpha=0.0,
        beta=0.0,
        z=None,
        y=np.zeros((2, 4, 3, 3)),
        scratch=np.zeros(10000),
        stride=(1, 1),
        padding=(0, 0),
        dilation=(1, 1),
        groups=1,
    )
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over,err",
    [
        (dict(y=np.zeros((2, 4, 4, 4))), ValueError),
        (dict(y=np.zeros((2, 4, 3, 3), np.float32)), (TypeError, ValueError)),
        (dict(y=None), TypeError),
        (dict(x=np.zeros((2, 3, 5, 5))[:, :, ::2]), ValueError),  # not contiguous
        (dict(bias=np.zeros(3)), ValueError),
        (dict(scratch=np.zeros(10)), ValueError),
        (dict(groups=2), ValueError),
        (dict(w=np.zeros((4, 3, 7, 7))), ValueError),  # kernel larger than the input
        (dict(padding=(-1, 0)), ValueError),
        (dict(act=99), ValueError),
    ],
)
def test_conv_binding_rejects_misuse(over, err):
    with pytest.raises(err):
        K.conv_forward(**conv_args(**over))


def test_conv_backward_binding_rejects_misuse():
    x, w = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3))
    gy, sc = np.zeros((2, 4, 3, 3)), np.zeros(10000)
    geo = ((1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(TypeError, match="y must be a float64 array, got None"):
        K.conv_backward(x, w, RELU, 0, 0, None, None, gy, None, None, None, sc, None, *geo)
    with pytest.raises(ValueError, match="gw"):
        K.conv_backward(
            x, w, 0, 0, 0, None, None, gy, np.zeros((4, 3, 2, 3)), None, None, sc, None, *geo
        )
    with pytest.raises(TypeError, match="bsum"):
        K.conv_backward(x, w, 0, 0, 0, None, None, gy, None, np.zeros(4), None, sc, None, *geo)
    with pytest.raises(ValueError, match="gx"):
        K.conv_backward(
            x, w, 0, 0, 0, None, None, gy, None, None, np.zeros((2, 3, 5, 4)), sc, None, *geo
        )


def test_pool_binding_rejects_misuse():
    x = np.zeros((2, 3, 6, 6))
    with pytest.raises(ValueError, match=r"y must have shape \(2, 3, 3, 3\)"):
        K.maxpool_forward(
            x,
            np.zeros((2, 3, 2, 2)),
            np.zeros((2, 3, 2, 2), np.int32),
            (2, 2),
            (2, 2),
            (0, 0),
            (1, 1),
            False,
        )
    with pytest.raises(ValueError, match="half the kernel"):
        K.avgpool_forward(x, np.zeros((2, 3, 5, 5)), (2, 2), (2, 2), (2, 2), False, True)
    with pytest.raises(ValueError, match="idx"):
        K.maxpool_backward(
            np.zeros((2, 3, 3, 3)),
            np.zeros((2, 3, 2, 3), np.int32),
            np.zeros_like(x),
            (2, 2),
            (2, 2),
            (0, 0),
            (1, 1),
            False,
        )
    with pytest.raises(ValueError, match="does not match"):
        K.adaptive_avgpool_forward(x, np.zeros((2, 4, 1, 1)))
