"""Normalisation layers (FEATURES group N): BatchNorm1d/2d, LayerNorm, GroupNorm,
InstanceNorm1d/2d and weight_norm against torch.nn in float64 (outputs, input and
parameter gradients, running statistics, num_batches_tracked, state_dict keys), every
gradient against central finite differences, identical results for 1 and 2 threads on
inputs above the kernels' threading threshold, and clear errors for bad input."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import (
    BatchNorm1d,
    BatchNorm2d,
    Dense,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    LayerNorm,
    Sequential,
    _kernels,
    remove_weight_norm,
    weight_norm,
)
from fastnn.layers.normalization import _WeightNormed
from helpers import fd_check

# float64 round-off for sums over a few hundred elements.
TORCH_TOL = dict(rtol=1e-11, atol=1e-12)


@pytest.fixture(scope="module")
def th():
    return pytest.importorskip("torch")


def randomize_affine(layer, rng):
    """Give weight/bias non-trivial values (so their gradients and the affine part
    are really exercised)."""
    for name, p in layer.named_parameters():
        p.data = (
            rng.uniform(0.5, 1.5, p.shape)
            if name.endswith("weight")
            else rng.normal(0, 0.5, p.shape)
        )
    return layer


def to_torch(th, layer, tlayer):
    """Copy fastnn's state into the torch module (same keys)."""
    tlayer = tlayer.double()  # before loading: no trip through float32
    sd = layer.state_dict()
    tsd = tlayer.state_dict()
    assert set(sd) == set(tsd), (sorted(sd), sorted(tsd))
    tlayer.load_state_dict({k: th.tensor(v) for k, v in sd.items()})
    return tlayer


def run_both(th, layer, tlayer, x, g):
    """Forward + backward of both (gradients zeroed first); returns fastnn's and
    torch's (y, gx, {param: grad})."""
    layer.zero_grad()
    y = layer.forward(x)
    gx = layer.backward(g)
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    tlayer.zero_grad()
    xt = th.tensor(x, requires_grad=True)
    yt = tlayer(xt)
    yt.backward(th.tensor(g))
    tgrads = {n: p.grad.numpy().copy() for n, p in tlayer.named_parameters()}
    return (y, gx, grads), (yt.detach().numpy(), xt.grad.numpy(), tgrads)


def assert_same_as_torch(ours, theirs, where, skip_state=()):
    (y, gx, grads), (y_t, gx_t, tgrads) = ours, theirs
    np.testing.assert_allclose(y, y_t, **TORCH_TOL, err_msg=f"{where}: output")
    np.testing.assert_allclose(gx, gx_t, **TORCH_TOL, err_msg=f"{where}: input grad")
    assert set(grads) == set(tgrads), (sorted(grads), sorted(tgrads))
    for n in grads:
        np.testing.assert_allclose(grads[n], tgrads[n], **TORCH_TOL, err_msg=f"{where}: {n}")


def assert_state_equal(layer, tlayer, where, skip=()):
    sd, tsd = layer.state_dict(), tlayer.state_dict()
    assert list(sd) == list(tsd), (list(sd), list(tsd))  # same keys, same order
    for k in sd:
        if k in skip:
            continue
        t = tsd[k].numpy()
        assert sd[k].shape == t.shape and sd[k].dtype == t.dtype, k
        if k.endswith("num_batches_tracked"):
            assert int(sd[k]) == int(t), f"{where}: {k} {int(sd[k])} != {int(t)}"
        else:
            np.testing.assert_allclose(sd[k], t, **TORCH_TOL, err_msg=f"{where}: {k}")


# ------------------------------------------------------------------------ batch norm

BN_SHAPES = {
    "1d_NC": (BatchNorm1d, "BatchNorm1d", (9, 5)),
    "1d_NCL": (BatchNorm1d, "BatchNorm1d", (6, 5, 7)),
    "2d_NCHW": (BatchNorm2d, "BatchNorm2d", (4, 5, 3, 6)),
}
BN_CONFIGS = {
    "default": {},
    "momentum_0.5": dict(momentum=0.5),
    "momentum_None": dict(momentum=None),
    "affine_False": dict(affine=False),
    "no_running_stats": dict(track_running_stats=False),
    "no_affine_no_stats": dict(affine=False, track_running_stats=False, eps=1e-3),
}


@pytest.mark.parametrize("config", list(BN_CONFIGS))
@pytest.mark.parametrize("shape", list(BN_SHAPES))
def test_batchnorm_matches_torch(th, rng, shape, config):
    cls, tname, xshape = BN_SHAPES[shape]
    kw = BN_CONFIGS[config]
    layer = randomize_affine(cls(5, dtype=np.float64, **kw), rng)
    tlayer = to_torch(th, layer, getattr(th.nn, tname)(5, **kw))
    # three training batches (shifted, scaled data), evaluation, training again
    for step, training in enumerate([True, True, True, False, True]):
        layer.train(training)
        tlayer.train(training)
        x = rng.normal(step - 1.0, 1.0 + step, xshape)
        g = rng.standard_normal(xshape)
        ours, theirs = run_both(th, layer, tlayer, x, g)
        assert_same_as_torch(ours, theirs, f"step {step}")
        assert_state_equal(layer, tlayer, f"step {step}")
    if layer.track_running_stats:
        assert int(layer.num_batches_tracked) == 4
        assert not np.allclose(layer.running_var, 1.0)  # the statistics really moved
    else:
        assert layer.running_mean is None and "running_mean" not in layer.state_dict()


def test_batchnorm_running_stats_formula(rng):
    """running = (1 - momentum) running + momentum * stat, the unbiased variance
    m/(m-1) for running_var; momentum=None: the cumulative average."""
    x1, x2 = rng.normal(1, 2, (6, 3, 4)), rng.normal(-1, 3, (6, 3, 4))
    m = 6 * 4

    def stats(x):
        return x.mean(axis=(0, 2)), x.var(axis=(0, 2)) * m / (m - 1)

    (m1, v1), (m2, v2) = stats(x1), stats(x2)
    bn = BatchNorm1d(3, momentum=0.3, dtype=np.float64)
    bn.forward(x1)
    bn.forward(x2)
    np.testing.assert_allclose(bn.running_mean, 0.3 * m2 + 0.7 * (0.3 * m1), rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, 0.3 * v2 + 0.7 * (0.3 * v1 + 0.7), rtol=1e-13)
    cum = BatchNorm1d(3, momentum=None, dtype=np.float64)
    cum.forward(x1)
    cum.forward(x2)
    np.testing.assert_allclose(cum.running_mean, (m1 + m2) / 2, rtol=1e-13)
    np.testing.assert_allclose(cum.running_var, (v1 + v2) / 2, rtol=1e-13)
    assert int(cum.num_batches_tracked) == 2


def test_batchnorm_parameter_gradients_accumulate(rng):
    bn = randomize_affine(BatchNorm1d(4, dtype=np.float64), rng)
    x, g = rng.standard_normal((7, 4)), rng.standard_normal((7, 4))
    bn.forward(x)
    bn.zero_grad()
    bn.backward(g)
    once = [p.grad.copy() for p in bn.parameters()]
    bn.forward(x)
    bn.backward(g)
    for p, g1 in zip(bn.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g1, rtol=1e-14)


# --------------------------------------------------------------------- layer norm

LN_CASES = {
    "1d_on_1d": (6, (6,), {}),
    "1d_on_2d": (6, (4, 6), {}),
    "1d_on_3d": (6, (3, 4, 6), {}),
    "2d_on_4d": ((5, 6), (3, 4, 5, 6), {}),
    "3d_on_4d": ((4, 5, 6), (3, 4, 5, 6), {}),
    "no_affine": ((5, 6), (3, 4, 5, 6), dict(elementwise_affine=False)),
    "no_bias": ((5, 6), (3, 4, 5, 6), dict(bias=False)),
    "eps": (6, (4, 6), dict(eps=1e-2)),
}


@pytest.mark.parametrize("case", list(LN_CASES))
def test_layernorm_matches_torch(th, rng, case):
    shape, xshape, kw = LN_CASES[case]
    layer = randomize_affine(LayerNorm(shape, dtype=np.float64, **kw), rng)
    if kw.get("bias") is False:
        assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    if kw.get("elementwise_affine") is False:
        assert layer.parameters() == []
    tlayer = to_torch(th, layer, th.nn.LayerNorm(shape, **kw))
    for training in (True, False):  # the same in both modes
        layer.train(training)
        tlayer.train(training)
        x = rng.normal(2.0, 3.0, xshape)
        ours, theirs = run_both(th, layer, tlayer, x, rng.standard_normal(xshape))
        assert_same_as_torch(ours, theirs, case)


# --------------------------------------------------------------------- group norm

GN_CASES = {
    "G1_4d": (1, 6, (2, 6, 3, 4), {}),
    "G2_4d": (2, 6, (2, 6, 3, 4), {}),
    "G3_3d": (3, 6, (3, 6, 7), {}),
    "G6_4d": (6, 6, (2, 6, 3, 4), {}),
    "G2_2d": (2, 6, (5, 6), {}),
    "G3_2d": (3, 6, (5, 6), {}),
    "G2_4d_no_affine": (2, 6, (2, 6, 3, 4), dict(affine=False)),
    "G3_3d_no_affine": (3, 6, (3, 6, 7), dict(affine=False)),
}


@pytest.mark.parametrize("case", list(GN_CASES))
def test_groupnorm_matches_torch(th, rng, case):
    groups, channels, xshape, kw = GN_CASES[case]
    layer = randomize_affine(GroupNorm(groups, channels, dtype=np.float64, **kw), rng)
    tlayer = to_torch(th, layer, th.nn.GroupNorm(groups, channels, **kw))
    for training in (True, False):
        layer.train(training)
        tlayer.train(training)
        x = rng.normal(-1.0, 2.0, xshape)
        ours, theirs = run_both(th, layer, tlayer, x, rng.standard_normal(xshape))
        assert_same_as_torch(ours, theirs, case)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 4),
    groups=st.integers(1, 4),
    per_group=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 4), max_size=2),
    affine=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_groupnorm_any_shape_property(n, groups, per_group, spatial, affine, seed):
    """GroupNorm against a NumPy reference (forward and every gradient) for arbitrary
    batch, group, channel and spatial sizes."""
    c = groups * per_group
    shape = (n, c, *spatial)
    if per_group * int(np.prod(spatial)) < 2:
        shape = (n, c, *spatial, 2)  # at least 2 values per group
    r = np.random.default_rng(seed)
    layer = GroupNorm(groups, c, affine=affine, dtype=np.float64)
    if affine:
        randomize_affine(layer, r)
    x = r.normal(1.0, 2.0, shape)
    xg = x.reshape(n, groups, -1)
    mean, var = xg.mean(-1, keepdims=True), xg.var(-1, keepdims=True)
    xhat = ((xg - mean) / np.sqrt(var + 1e-5)).reshape(shape)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    w = layer.weight.data.reshape(bshape) if affine else 1.0
    b = layer.bias.data.reshape(bshape) if affine else 0.0
    np.testing.assert_allclose(layer.forward(x), xhat * w + b, rtol=1e-10, atol=1e-12)
    g = r.standard_normal(shape)
    layer.zero_grad()
    gx = layer.backward(g)
    u = (g * w).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    ref = u - u.mean(-1, keepdims=True) - xh * (u * xh).mean(-1, keepdims=True)
    ref = (ref / np.sqrt(var + 1e-5)).reshape(shape)
    np.testing.assert_allclose(gx, ref, rtol=1e-9, atol=1e-11)
    if affine:
        axes = tuple(i for i in range(len(shape)) if i != 1)
        np.testing.assert_allclose(layer.weight.grad, (g * xhat).sum(axes), rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(layer.bias.grad, g.sum(axes), rtol=1e-10, atol=1e-11)


# ------------------------------------------------------------------ instance norm

IN_CASES = {
    "1d_default": (InstanceNorm1d, "InstanceNorm1d", (3, 5, 7), {}),
    "1d_affine": (InstanceNorm1d, "InstanceNorm1d", (3, 5, 7), dict(affine=True)),
    "1d_track": (
        InstanceNorm1d,
        "InstanceNorm1d",
        (3, 5, 7),
        dict(track_running_stats=True, momentum=0.3),
    ),
    "2d_default": (InstanceNorm2d, "InstanceNorm2d", (2, 4, 3, 5), {}),
    "2d_affine": (InstanceNorm2d, "InstanceNorm2d", (2, 4, 3, 5), dict(affine=True)),
    "2d_affine_track": (
        InstanceNorm2d,
        "InstanceNorm2d",
        (2, 4, 3, 5),
        dict(affine=True, track_running_stats=True),
    ),
}


@pytest.mark.parametrize("case", list(IN_CASES))
def test_instancenorm_matches_torch(th, rng, case):
    cls, tname, xshape, kw = IN_CASES[case]
    c = xshape[1]
    layer = cls(c, dtype=np.float64, **kw)
    assert (layer.weight is not None) == kw.get("affine", False)  # affine off by default
    assert (layer.running_mean is not None) == kw.get("track_running_stats", False)
    randomize_affine(layer, rng)
    tlayer = to_torch(th, layer, getattr(th.nn, tname)(c, **kw))
    for step, training in enumerate([True, True, False, True, False]):
        layer.train(training)
        tlayer.train(training)
        x = rng.normal(step, 1.0 + step, xshape)
        ours, theirs = run_both(th, layer, tlayer, x, rng.standard_normal(xshape))
        assert_same_as_torch(ours, theirs, f"step {step}")
        # torch's InstanceNorm never advances num_batches_tracked (it has no use for
        # it); fastnn counts training batches (needed for momentum=None).
        assert_state_equal(layer, tlayer, f"step {step}", skip=("num_batches_tracked",))
    if layer.track_running_stats:
        assert int(layer.num_batches_tracked) == 3
        assert not np.allclose(layer.running_mean, 0.0)


def test_instancenorm_running_stats_formula(rng):
    """Tracking: the batch-norm update with every instance's mean and unbiased
    variance, averaged over the samples; momentum=None is the cumulative average."""
    x1, x2 = rng.normal(1, 2, (3, 2, 5)), rng.normal(-2, 1, (3, 2, 5))

    def stats(x):
        return x.mean(axis=2).mean(0), x.var(axis=2, ddof=1).mean(0)

    (m1, v1), (m2, v2) = stats(x1), stats(x2)
    layer = InstanceNorm1d(2, momentum=0.2, track_running_stats=True, dtype=np.float64)
    layer.forward(x1)
    layer.forward(x2)
    np.testing.assert_allclose(layer.running_mean, 0.2 * m2 + 0.8 * 0.2 * m1, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, 0.2 * v2 + 0.8 * (0.2 * v1 + 0.8), rtol=1e-13)
    cum = InstanceNorm1d(2, momentum=None, track_running_stats=True, dtype=np.float64)
    cum.forward(x1)
    cum.forward(x2)
    np.testing.assert_allclose(cum.running_mean, (m1 + m2) / 2, rtol=1e-13)
    np.testing.assert_allclose(cum.running_var, (v1 + v2) / 2, rtol=1e-13)
    # evaluation normalises with the running statistics
    cum.eval()
    y = cum.forward(x1)
    np.testing.assert_allclose(
        y, (x1 - cum.running_mean[:, None]) / np.sqrt(cum.running_var[:, None] + 1e-5), rtol=1e-12
    )


# ----------------------------------------------------------- float32, far from zero

# name -> (layer factory, input shape, axes each statistic runs over)
STAT_CASES = {
    "bn1d": (lambda dt: BatchNorm1d(6, dtype=dt), (64, 6), (0,)),
    "bn1d_NCL": (lambda dt: BatchNorm1d(6, dtype=dt), (16, 6, 5), (0, 2)),
    "bn2d": (lambda dt: BatchNorm2d(4, dtype=dt), (8, 4, 5, 5), (0, 2, 3)),
    "layernorm": (lambda dt: LayerNorm(48, dtype=dt), (16, 48), (1,)),
    "groupnorm": (lambda dt: GroupNorm(1, 4, dtype=dt), (8, 4, 5, 5), (1, 2, 3)),
    "instancenorm2d": (lambda dt: InstanceNorm2d(4, dtype=dt), (8, 4, 5, 5), (2, 3)),
}


@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("case", list(STAT_CASES))
def test_statistics_accurate_far_from_zero(rng, dtype, case, offset):
    """Normalising data with a large common offset: the output is as accurate as the
    input's representation allows (a one-pass E[x^2] - E[x]^2 in the input's precision
    would lose ~offset^2 * eps of the variance)."""
    make, shape, axes = STAT_CASES[case]
    if dtype == np.float64:
        offset *= 1e3  # 1e6: the same relative challenge for float64
    x = (rng.standard_normal(shape) + offset).astype(dtype)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    exact = (x64 - mean) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-5)
    y = make(dtype).forward(x)
    eps = np.finfo(dtype).eps
    assert np.abs(y - exact).max() <= 16 * eps * (offset + 4)


@pytest.mark.parametrize("case", list(STAT_CASES))
def test_float32_close_to_torch(th, rng, case):
    make, shape, _ = STAT_CASES[case]
    layer = randomize_affine(make(np.float32), rng)
    tname = {
        "bn1d": "BatchNorm1d",
        "bn1d_NCL": "BatchNorm1d",
        "bn2d": "BatchNorm2d",
        "layernorm": "LayerNorm",
        "groupnorm": "GroupNorm",
        "instancenorm2d": "InstanceNorm2d",
    }[case]
    args = {"layernorm": (48,), "groupnorm": (1, 4)}.get(case, (shape[1],))
    tlayer = getattr(th.nn, tname)(*args)
    tlayer.load_state_dict({k: th.tensor(v) for k, v in layer.state_dict().items()})
    x = rng.normal(0.5, 2.0, shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    y = layer.forward(x)
    layer.zero_grad()
    gx = layer.backward(g)
    xt = th.tensor(x, requires_grad=True)
    yt = tlayer(xt)
    yt.backward(th.tensor(g))
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(gx, xt.grad.numpy(), **tol)
    tp = dict(tlayer.named_parameters())
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, tp[n].grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=n)
    for k, v in layer.state_dict().items():
        np.testing.assert_allclose(v, tlayer.state_dict()[k].numpy(), **tol, err_msg=k)


# --------------------------------------------------------------- finite differences


def _eval_bn(cls, c, **kw):
    def make():
        layer = cls(c, dtype=np.float64, **kw)
        layer.running_mean[...] = np.linspace(-0.5, 0.5, c)
        layer.running_var[...] = np.linspace(0.5, 2.0, c)
        return layer.eval()

    return make


FD_CASES = {
    "bn1d_NC": (lambda: BatchNorm1d(4, dtype=np.float64), (6, 4)),
    "bn1d_NCL": (lambda: BatchNorm1d(3, dtype=np.float64), (4, 3, 5)),
    "bn2d": (lambda: BatchNorm2d(2, dtype=np.float64), (3, 2, 3, 3)),
    "bn1d_eval": (_eval_bn(BatchNorm1d, 4), (5, 4)),
    "bn2d_eval": (_eval_bn(BatchNorm2d, 2), (3, 2, 2, 3)),
    "bn1d_no_affine": (lambda: BatchNorm1d(4, affine=False, dtype=np.float64), (6, 4)),
    "bn1d_no_stats": (
        lambda: BatchNorm1d(3, track_running_stats=False, dtype=np.float64).eval(),
        (5, 3),
    ),
    "layernorm_1d": (lambda: LayerNorm(5, dtype=np.float64), (4, 5)),
    "layernorm_2d": (lambda: LayerNorm((3, 4), dtype=np.float64), (2, 3, 4)),
    "layernorm_no_bias": (lambda: LayerNorm(5, bias=False, dtype=np.float64), (3, 5)),
    "layernorm_no_affine": (
        lambda: LayerNorm(5, elementwise_affine=False, dtype=np.float64),
        (3, 5),
    ),
    "groupnorm_4d": (lambda: GroupNorm(2, 4, dtype=np.float64), (2, 4, 2, 3)),
    "groupnorm_3d": (lambda: GroupNorm(3, 6, dtype=np.float64), (2, 6, 3)),
    "groupnorm_2d": (lambda: GroupNorm(2, 6, dtype=np.float64), (3, 6)),
    "groupnorm_no_affine": (lambda: GroupNorm(2, 4, affine=False, dtype=np.float64), (2, 4, 3)),
    "instancenorm1d": (lambda: InstanceNorm1d(3, dtype=np.float64), (2, 3, 5)),
    "instancenorm1d_affine": (lambda: InstanceNorm1d(3, affine=True, dtype=np.float64), (2, 3, 5)),
    "instancenorm2d_affine": (
        lambda: InstanceNorm2d(2, affine=True, dtype=np.float64),
        (2, 2, 3, 3),
    ),
    "instancenorm2d_tracked_eval": (lambda: _eval_in2d(), (2, 2, 3, 2)),
}


def _eval_in2d():
    layer = InstanceNorm2d(2, affine=True, track_running_stats=True, dtype=np.float64)
    layer.running_mean[...] = [0.3, -0.2]
    layer.running_var[...] = [0.7, 1.9]
    return layer.eval()


@pytest.mark.parametrize("case", list(FD_CASES))
def test_normalization_gradients_finite_differences(rng, num_grad, fd_tol, case):
    make, shape = FD_CASES[case]
    layer = randomize_affine(make(), rng)
    fd_check(layer, rng.normal(0.5, 2.0, shape), num_grad, fd_tol, rng)


# ------------------------------------------------------------------------- threads

THREAD_CASES = {
    "bn1d_NC": (lambda dt: BatchNorm1d(128, dtype=dt), (320, 128)),
    "bn1d_NCL": (lambda dt: BatchNorm1d(64, dtype=dt), (16, 64, 40)),
    "bn2d": (lambda dt: BatchNorm2d(32, dtype=dt), (8, 32, 12, 14)),
    "bn2d_eval": (lambda dt: BatchNorm2d(32, dtype=dt).eval(), (8, 32, 12, 14)),
    "layernorm": (lambda dt: LayerNorm(128, dtype=dt), (320, 128)),
    "layernorm_2d": (lambda dt: LayerNorm((16, 40), dtype=dt), (64, 16, 40)),
    "groupnorm": (lambda dt: GroupNorm(4, 32, dtype=dt), (8, 32, 12, 14)),
    "instancenorm2d": (
        lambda dt: InstanceNorm2d(32, affine=True, track_running_stats=True, dtype=dt),
        (8, 32, 12, 14),
    ),
}


@pytest.mark.parametrize("case", list(THREAD_CASES))
def test_normalization_thread_independent(rng, dtype, use_threads, case):
    make, shape = THREAD_CASES[case]
    assert np.prod(shape) >= _kernels.PARALLEL_MIN_ELEMENTS  # the threaded path
    x = rng.normal(1.0, 2.0, shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    out = []
    for n in (1, 2):
        with use_threads(n):
            layer = randomize_affine(make(dtype), np.random.default_rng(5))
            for _ in range(2):
                y = layer.forward(x)
                gx = layer.backward(g)
            state = layer.state_dict()
            out.append([y, gx] + [p.grad for p in layer.parameters()] + list(state.values()))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------- weight norm


def make_weight_normed(th, dim, rng, n_in=5, n_out=4):
    fastnn.seed(11)
    layer = Dense(n_in, n_out, dtype=np.float64)
    t = th.nn.Linear(n_in, n_out).double()
    with th.no_grad():
        t.weight.copy_(th.tensor(layer.weight.data))
        t.bias.copy_(th.tensor(layer.bias.data))
    assert weight_norm(layer, dim=dim) is layer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
        t = th.nn.utils.weight_norm(t, dim=dim)
    return layer, t


@pytest.mark.parametrize("dim", [0, None], ids=["dim0", "dimNone"])
def test_weight_norm_matches_torch(th, rng, dim):
    layer, t = make_weight_normed(th, dim, rng)
    assert isinstance(layer, _WeightNormed) and isinstance(layer, Dense)
    sd, tsd = layer.state_dict(), t.state_dict()
    assert set(sd) == set(tsd) == {"bias", "weight_g", "weight_v"}
    assert sorted(n for n, _ in layer.named_parameters()) == ["bias", "weight_g", "weight_v"]
    for k in sd:
        assert sd[k].shape == tuple(tsd[k].shape), k
        np.testing.assert_allclose(sd[k], tsd[k].numpy(), rtol=1e-15, err_msg=k)
    # g starts at the norms: the layer computes what it did before
    expect_g = (
        np.linalg.norm(sd["weight_v"], axis=1, keepdims=True)
        if dim == 0
        else np.linalg.norm(sd["weight_v"])
    )
    np.testing.assert_allclose(sd["weight_g"], expect_g, rtol=1e-15)
    # move g and v away from their initial values, in both
    g_new = rng.uniform(0.5, 2.0, sd["weight_g"].shape)
    v_new = rng.standard_normal(sd["weight_v"].shape)
    layer.load_state_dict({"bias": sd["bias"], "weight_g": g_new, "weight_v": v_new})
    t.load_state_dict(
        {"bias": tsd["bias"], "weight_g": th.tensor(g_new), "weight_v": th.tensor(v_new)}
    )
    x, gy = rng.standard_normal((6, 5)), rng.standard_normal((6, 4))
    ours, theirs = run_both(th, layer, t, x, gy)
    assert_same_as_torch(ours, theirs, f"weight_norm dim={dim}")
    # the effective weight is g * v / |v|
    norm = np.linalg.norm(v_new, axis=1, keepdims=True) if dim == 0 else np.linalg.norm(v_new)
    np.testing.assert_allclose(layer.weight.data, g_new * v_new / norm, rtol=1e-14)


@pytest.mark.parametrize("dim", [0, None], ids=["dim0", "dimNone"])
def test_weight_norm_training_steps_match_torch(th, rng, dim):
    """Inside a Sequential with an optimizer: two SGD steps on g, v and the bias give
    torch's parameters."""
    layer, t = make_weight_normed(th, dim, rng)
    model = Sequential(layer)
    assert set(model.state_dict()) == {"0.bias", "0.weight_g", "0.weight_v"}
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = th.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        x, gy = rng.standard_normal((6, 5)), rng.standard_normal((6, 4))
        opt.zero_grad()
        model.forward(x)
        model.backward(gy)
        opt.step()
        topt.zero_grad()
        t(th.tensor(x)).backward(th.tensor(gy))
        topt.step()
    tsd = t.state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v, tsd[k[2:]].numpy(), **TORCH_TOL, err_msg=k)


@pytest.mark.parametrize("dim", [0, None], ids=["dim0", "dimNone"])
def test_weight_norm_finite_differences(th, rng, num_grad, fd_tol, dim):
    layer, _ = make_weight_normed(th, dim, rng, n_in=4, n_out=3)
    layer.weight_g.data = rng.uniform(0.5, 2.0, layer.weight_g.shape)
    fd_check(layer, rng.standard_normal((5, 4)), num_grad, fd_tol, rng)


@pytest.mark.parametrize("dim", [0, None], ids=["dim0", "dimNone"])
def test_remove_weight_norm(th, rng, dim):
    layer, t = make_weight_normed(th, dim, rng)
    g_new = rng.uniform(0.5, 2.0, layer.weight_g.shape)
    layer.weight_g.data = g_new
    with th.no_grad():
        t.weight_g.copy_(th.tensor(g_new))
    x = rng.standard_normal((3, 5))
    y_before = layer.forward(x)
    assert remove_weight_norm(layer) is layer
    th.nn.utils.remove_weight_norm(t)
    assert type(layer) is Dense and not hasattr(layer, "weight_g")
    # (torch re-registers the weight last, ['bias', 'weight']; fastnn restores the
    # plain layer's order)
    assert set(t.state_dict()) == {"weight", "bias"}
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    np.testing.assert_allclose(layer.weight.data, t.weight.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(layer.forward(x), y_before, rtol=1e-14)
    # an ordinary parameter again: it gets its own gradient
    layer.zero_grad()
    layer.backward(np.ones((3, 4)))
    np.testing.assert_allclose(layer.weight.grad, np.ones((4, 3)) @ x, rtol=1e-14)


@pytest.mark.parametrize("dim", [0, None], ids=["dim0", "dimNone"])
def test_weight_norm_astype(rng, dim):
    """astype converts weight_g, weight_v and the derived weight together."""
    fastnn.seed(12)
    layer = weight_norm(Dense(5, 4), dim=dim)
    ref = Dense(5, 4, dtype=np.float64)
    ref.weight.data = layer.weight.data
    ref.bias.data = layer.bias.data
    layer.astype(np.float64)
    assert {p.dtype for p in layer.parameters()} == {np.dtype(np.float64)}
    x, g = rng.standard_normal((3, 5)), rng.standard_normal((3, 4))
    # ref holds the float32-rounded weight, layer recomputes it in float64: ~1e-7 apart
    # per weight (absolute, for values of order 1), more in relative terms where a sum
    # cancels.
    np.testing.assert_allclose(layer.forward(x), ref.forward(x), rtol=1e-6, atol=1e-6)
    assert layer.forward(x).dtype == np.float64
    np.testing.assert_allclose(layer.backward(g), ref.backward(g), rtol=1e-6, atol=1e-6)


def test_weight_norm_bad_arguments():
    with pytest.raises(ValueError, match="dim must be 0 or None"):
        weight_norm(Dense(3, 2), dim=1)
    with pytest.raises(ValueError, match="only the parameter 'weight'"):
        weight_norm(Dense(3, 2), name="bias")
    with pytest.raises(ValueError, match="ReLU has no 2-D\\+ 'weight' parameter"):
        weight_norm(fastnn.ReLU())
    with pytest.raises(ValueError, match="no 2-D\\+ 'weight'"):
        weight_norm(BatchNorm1d(3))  # a 1-D weight
    layer = weight_norm(Dense(3, 2))
    with pytest.raises(ValueError, match="already weight-normalised"):
        weight_norm(layer)
    with pytest.raises(ValueError, match="not weight-normalised"):
        remove_weight_norm(Dense(3, 2))


# ----------------------------------------------------------------------- bad input


def test_groupnorm_channels_must_divide_into_groups():
    with pytest.raises(
        ValueError,
        match=r"num_channels \(6\) must be divisible by "
        r"num_groups \(4\)",
    ):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match="num_groups"):
        GroupNorm(0, 6)


def test_layernorm_shape_mismatch_at_forward():
    with pytest.raises(ValueError, match=r"LayerNorm\(\(5,\)\).*trailing axes.*\(2, 4\)"):
        LayerNorm(5).forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\)\).*\(2, 4, 3\)"):
        LayerNorm((3, 4)).forward(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"trailing axes must be \(2, 3, 4\)"):
        LayerNorm((2, 3, 4)).forward(np.zeros((3, 4)))  # fewer axes than the shape
    with pytest.raises(ValueError, match="normalized_shape must not be empty"):
        LayerNorm(())
    with pytest.raises(ValueError, match="eps must be positive"):
        LayerNorm(3, eps=0.0)


@pytest.mark.parametrize(
    "layer,shape,fragment",
    [
        (lambda: BatchNorm1d(4), (3, 5), r"BatchNorm1d\(4\).*4 channels on axis 1.*\(3, 5\)"),
        (lambda: BatchNorm1d(4), (3, 5, 2), r"4 channels.*\(3, 5, 2\)"),
        (lambda: BatchNorm1d(4), (2, 4, 3, 3), r"2-D or 3-D input"),
        (lambda: BatchNorm2d(4), (3, 4, 5), r"BatchNorm2d\(4\).*4-D input"),
        (lambda: BatchNorm2d(4), (3, 5, 2, 2), r"4 channels.*\(3, 5, 2, 2\)"),
        (lambda: InstanceNorm1d(4), (3, 4), r"InstanceNorm1d\(4\).*3-D input"),
        (lambda: InstanceNorm2d(3), (2, 4, 5, 5), r"InstanceNorm2d\(3\).*3 channels"),
        (lambda: GroupNorm(2, 4), (3, 6, 5), r"GroupNorm\(2, 4\).*\(N, 4, \.\.\.\).*\(3, 6, 5\)"),
        (lambda: GroupNorm(2, 4), (4,), r"GroupNorm\(2, 4\)"),
    ],
)
def test_wrong_channel_count(layer, shape, fragment):
    with pytest.raises(ValueError, match=f"(?s){fragment}"):
        layer().forward(np.zeros(shape))


def test_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm2d(3).forward(np.zeros((1, 3, 1, 1)))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        InstanceNorm1d(3).forward(np.zeros((4, 3, 1)))
    # fine in evaluation
    BatchNorm2d(3).eval().forward(np.zeros((1, 3, 1, 1)))


@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d, InstanceNorm1d, InstanceNorm2d])
def test_bad_eps_and_momentum(cls):
    with pytest.raises(ValueError, match="eps must be positive"):
        cls(3, eps=-1e-5)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\] or None"):
        cls(3, momentum=-0.1)
