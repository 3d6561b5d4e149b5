"""Every loss against torch.nn (float64, value and input gradient) for each reduction,
per-class and per-element weights, ignored labels, (N, C, *) inputs and per-sample
weights; finite differences of the new losses; the elementwise kernel against NumPy."""

import numpy as np
import pytest

from fastnn import _kernels, losses
from fastnn.losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_value_grad(fn, pred, *args, reduction="mean"):
    """torch's loss and d(sum of loss)/dpred."""
    p = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    out = fn(p, *args)
    out.sum().backward()
    return out.detach().numpy(), p.grad.numpy()


def check(ours, pred, target, fn, targs, sample_weight=None, rtol=1e-10):
    value = ours(pred, target, sample_weight=sample_weight)
    grad = ours.backward()
    ref, gref = torch_value_grad(fn, pred, *targs)
    np.testing.assert_allclose(value, ref, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(grad, gref, rtol=rtol, atol=1e-12)
    return value


REDUCTIONS = ["mean", "sum", "none"]
SHAPES = [(7, 4), (5, 3, 6), (3, 4, 2, 5)]


# ------------------------------------------------------------------ classification


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_matches_torch(rng, shape, reduction, smoothing, weighted, ignore):
    C = shape[1]
    z = rng.normal(0, 2, shape)
    y = rng.integers(0, C, (shape[0],) + shape[2:])
    if ignore:
        y.reshape(-1)[::3] = -100
    w = rng.uniform(0.2, 2.0, C) if weighted else None
    ours = CrossEntropyLoss(weight=w, reduction=reduction, label_smoothing=smoothing)
    tw = None if w is None else torch.tensor(w)
    check(
        ours,
        z,
        y,
        lambda p: F.cross_entropy(
            p, torch.tensor(y), weight=tw, reduction=reduction, label_smoothing=smoothing
        ),
        (),
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_matches_torch(rng, shape, reduction, weighted):
    C = shape[1]
    x = np.log(rng.dirichlet(np.ones(C), (shape[0],) + shape[2:]))
    x = np.moveaxis(x, -1, 1).copy()
    y = rng.integers(0, C, (shape[0],) + shape[2:])
    y.reshape(-1)[1::4] = 7  # ignore_index=7 (>= C): ignored, not out of range
    w = rng.uniform(0.2, 2.0, C) if weighted else None
    ours = NLLLoss(weight=w, ignore_index=7, reduction=reduction)
    tw = None if w is None else torch.tensor(w)
    check(
        ours,
        x,
        y,
        lambda p: F.nll_loss(p, torch.tensor(y), weight=tw, ignore_index=7, reduction=reduction),
        (),
    )


def test_cross_entropy_fast_path_equals_general_path(rng, dtype):
    """The allocation-free 2-D path and the weighted path agree (all-ones weights)."""
    z = rng.normal(0, 2, (33, 5)).astype(dtype)
    y = rng.integers(0, 5, 33)
    fast = CrossEntropyLoss(label_smoothing=0.1)
    general = CrossEntropyLoss(weight=np.ones(5), label_smoothing=0.1)
    a, b = fast(z, y), general(z, y)
    np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == np.float32 else 1e-12)
    ga, gb = fast.backward(), general.backward()
    assert ga.dtype == gb.dtype == dtype
    np.testing.assert_allclose(ga, gb, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-7)
    g1 = fast._backward()
    fast(z, y)
    assert fast._backward() is g1  # the 2-D path reuses its buffers


# ---------------------------------------------------------------- sample weights


def sample_weighted_reference(elem, s, denom=None):
    """Weighted mean: sum_n s_n (terms of sample n) / sum_n s_n (denominators of n)."""
    s_e = s.reshape((-1,) + (1,) * (elem.ndim - 1))
    d = np.ones_like(elem) if denom is None else denom
    return (elem * s_e).sum() / (d * s_e).sum()


@pytest.mark.parametrize("shape", [(9, 4), (6, 3, 5)])
def test_cross_entropy_sample_weight(rng, num_grad, fd_tol, shape):
    z = rng.normal(size=shape)
    y = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    s = rng.uniform(0, 2, shape[0])
    w = rng.uniform(0.5, 2, shape[1])
    ours = CrossEntropyLoss(weight=w)
    value = ours(z, y, sample_weight=s)
    elem = CrossEntropyLoss(weight=w, reduction="none")(z, y)
    np.testing.assert_allclose(value, sample_weighted_reference(elem, s, w[y]), rtol=1e-12)
    g = ours.backward()
    np.testing.assert_allclose(
        g, num_grad(lambda zz: ours(zz, y, sample_weight=s), z.copy()), **fd_tol
    )
    # integer weights = repeating the samples
    reps = rng.integers(0, 3, shape[0])
    rep = CrossEntropyLoss(weight=w)(np.repeat(z, reps, 0), np.repeat(y, reps, 0))
    np.testing.assert_allclose(ours(z, y, sample_weight=reps), rep, rtol=1e-12)
    # all ones = no weights
    np.testing.assert_allclose(ours(z, y, sample_weight=np.ones(shape[0])), ours(z, y), rtol=1e-12)


ELEMENTWISE = [
    (MSELoss, {}, lambda p, t, r: F.mse_loss(p, t, reduction=r)),
    (L1Loss, {}, lambda p, t, r: F.l1_loss(p, t, reduction=r)),
    (HuberLoss, {"delta": 0.7}, lambda p, t, r: F.huber_loss(p, t, reduction=r, delta=0.7)),
    (HuberLoss, {}, lambda p, t, r: F.huber_loss(p, t, reduction=r)),
    (SmoothL1Loss, {"beta": 0.5}, lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=0.5)),
    (SmoothL1Loss, {"beta": 0.0}, lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=0.0)),
    (BCEWithLogitsLoss, {}, lambda p, t, r: F.binary_cross_entropy_with_logits(p, t, reduction=r)),
]


@pytest.mark.parametrize("shape", [(11,), (8, 3), (4, 3, 5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "cls,kw,fn",
    ELEMENTWISE,
    ids=["mse", "l1", "huber0.7", "huber", "smoothl1", "smoothl1_0", "bce"],
)
def test_elementwise_matches_torch(rng, shape, reduction, cls, kw, fn):
    pred = rng.normal(0, 3, shape)
    if cls is BCEWithLogitsLoss:
        target = rng.uniform(0, 1, shape)
        target.reshape(-1)[::2] = rng.integers(0, 2, target.reshape(-1)[::2].shape)
    else:
        target = pred + rng.normal(0, 1.5, shape)
        target.reshape(-1)[::5] = pred.reshape(-1)[::5]  # ties: torch's sign(0) = 0
    check(
        cls(reduction=reduction, **kw),
        pred,
        target,
        lambda p: fn(p, torch.tensor(target), reduction),
        (),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pw_shape", [None, (1,), (4,)])
@pytest.mark.parametrize("w_shape", [None, (4,), (6, 1), (6, 4)])
def test_bce_weights_match_torch(rng, reduction, pw_shape, w_shape):
    pred = rng.normal(0, 3, (6, 4))
    target = rng.integers(0, 2, (6, 4)).astype(float)
    pw = None if pw_shape is None else rng.uniform(0.5, 3, pw_shape)
    w = None if w_shape is None else rng.uniform(0.2, 2, w_shape)
    ours = BCEWithLogitsLoss(weight=w, reduction=reduction, pos_weight=pw)
    check(
        ours,
        pred,
        target,
        lambda p: F.binary_cross_entropy_with_logits(
            p,
            torch.tensor(target),
            weight=None if w is None else torch.tensor(w),
            pos_weight=None if pw is None else torch.tensor(pw),
            reduction=reduction,
        ),
        (),
    )


def test_bce_extreme_logits_finite(dtype):
    pred = np.array([[1e4, -1e4, 80.0, -80.0]], dtype)
    target = np.array([[1.0, 0.0, 0.0, 1.0]], dtype)
    loss = BCEWithLogitsLoss()
    value = loss(pred, target)
    g = loss.backward()
    assert np.isfinite(value) and np.isfinite(g).all()
    np.testing.assert_allclose(value, (80 + 80) / 4, rtol=1e-5)
    np.testing.assert_allclose(g, [[0, 0, 0.25, -0.25]], atol=1e-7)


@pytest.mark.parametrize(
    "cls,kw",
    [
        (HuberLoss, {"delta": 0.5}),
        (SmoothL1Loss, {"beta": 0.8}),
        (BCEWithLogitsLoss, {"pos_weight": [2.0, 0.5, 1.0]}),
        (MSELoss, {}),
        (L1Loss, {}),
    ],
)
def test_elementwise_sample_weight(rng, num_grad, fd_tol, cls, kw):
    pred = rng.normal(0, 2, (7, 3))
    target = (
        rng.uniform(0, 1, (7, 3))
        if cls is BCEWithLogitsLoss
        else pred + rng.choice([-1, 1], (7, 3)) * rng.uniform(0.1, 1.5, (7, 3))
    )
    s = rng.uniform(0, 2, 7)
    ours = cls(**kw)
    value = ours(pred, target, sample_weight=s)
    elem = cls(reduction="none", **kw)(pred, target)
    np.testing.assert_allclose(value, sample_weighted_reference(elem, s), rtol=1e-12)
    g = ours.backward()
    ng = num_grad(lambda p: ours(p, target, sample_weight=s), pred.copy())
    np.testing.assert_allclose(g, ng, **fd_tol)
    total = cls(reduction="sum", **kw)(pred, target, sample_weight=s)
    np.testing.assert_allclose(total, (elem * s[:, None]).sum(), rtol=1e-12)


# ------------------------------------------------------------------ kernel and errors


@pytest.mark.parametrize(
    "kind,param",
    [
        (_kernels.LOSS_MSE, 0.0),
        (_kernels.LOSS_L1, 0.0),
        (_kernels.LOSS_HUBER, 0.9),
        (_kernels.LOSS_SMOOTH_L1, 0.6),
        (_kernels.LOSS_BCE_LOGITS, 0.0),
    ],
)
def test_pointwise_kernel_against_numpy(rng, dtype, kind, param, threads):
    shape = (719, 7)
    p = rng.normal(0, 4, shape).astype(dtype)
    t = (
        rng.uniform(0, 1, shape)
        if kind == _kernels.LOSS_BCE_LOGITS
        else p + rng.normal(0, 1, shape)
    ).astype(dtype)
    pw = rng.uniform(0.5, 2, 7).astype(dtype) if kind == _kernels.LOSS_BCE_LOGITS else None
    loss, grad = np.empty_like(p), np.empty_like(p)
    _kernels.pointwise_loss(kind, p, t, param, pw, loss, grad)
    x, y = p.astype(np.float64), t.astype(np.float64)
    d, a = x - y, np.abs(x - y)
    if kind == _kernels.LOSS_MSE:
        ref, gref = d**2, 2 * d
    elif kind == _kernels.LOSS_L1:
        ref, gref = a, np.sign(d)
    elif kind == _kernels.LOSS_HUBER:
        ref = np.where(a < param, 0.5 * d**2, param * (a - 0.5 * param))
        gref = np.where(a < param, d, param * np.sign(d))
    elif kind == _kernels.LOSS_SMOOTH_L1:
        ref = np.where(a < param, 0.5 * d**2 / param, a - 0.5 * param)
        gref = np.where(a < param, d / param, np.sign(d))
    else:
        w = pw.astype(np.float64)
        sig = 1 / (1 + np.exp(-x))
        ref = -(w * y * np.log(sig) + (1 - y) * np.log1p(-sig))
        gref = (w * y + 1 - y) * sig - w * y
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss, ref, **tol)
    np.testing.assert_allclose(grad, gref, **tol)


def test_pointwise_kernel_checks_arguments():
    a = np.zeros(4)
    with pytest.raises(ValueError, match="target"):
        _kernels.pointwise_loss(_kernels.LOSS_MSE, a, np.zeros(3), 0.0, None, a.copy(), a.copy())
    with pytest.raises(TypeError, match="float64"):
        _kernels.pointwise_loss(
            _kernels.LOSS_MSE, a, np.zeros(4, np.float32), 0.0, None, a.copy(), a.copy()
        )
    with pytest.raises(ValueError, match="kind"):
        _kernels.pointwise_loss(99, a, a, 0.0, None, a.copy(), a.copy())
    with pytest.raises(ValueError, match="pos_weight"):
        _kernels.pointwise_loss(_kernels.LOSS_BCE_LOGITS, a, a, 0.0, np.ones(3), a.copy(), a.copy())
    with pytest.raises(TypeError):
        _kernels.pointwise_loss(_kernels.LOSS_MSE, None, a, 0.0, None, a.copy(), a.copy())


def test_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match="HuberLoss.*delta"):
        HuberLoss(delta=0)
    with pytest.raises(ValueError, match="SmoothL1Loss.*beta"):
        SmoothL1Loss(beta=-1)
    with pytest.raises(ValueError, match="weight has 2 entries for 3 classes"):
        CrossEntropyLoss(weight=[1, 2])(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match=r"sample_weight.*\(2,\)"):
        MSELoss()(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=[1.0])
    with pytest.raises(ValueError, match="sample_weight.*>= 0"):
        CrossEntropyLoss()(np.zeros((2, 3)), [0, 1], sample_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"labels of shape \(2, 5\)"):
        CrossEntropyLoss()(np.zeros((2, 3, 5)), [0, 1])
    with pytest.raises(ValueError, match="label -3 out of range"):
        CrossEntropyLoss()(np.zeros((2, 3)), [0, -3])
    with pytest.raises(ValueError, match="pos_weight has 2 entries"):
        BCEWithLogitsLoss(pos_weight=[1.0, 2.0])(np.zeros((2, 3)), np.zeros((2, 3)))


def test_losses_by_name():
    assert isinstance(losses.get("cross_entropy"), CrossEntropyLoss)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), CrossEntropyLoss)
    assert isinstance(losses.get("MSE"), MSELoss)
    assert isinstance(losses.get("bce"), BCEWithLogitsLoss)
    assert isinstance(losses.get("huber"), HuberLoss)
    loss = HuberLoss(delta=2.0)
    assert losses.get(loss) is loss
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
