"""Regularisation and initialisation (FEATURES groups R and I): L1/L2/L1L2 weight
penalties (value, gradient, and their place in the Trainer's reported loss), Dropout's
inverted and weight-scaling modes, DropConnect, freezing parameters, Dense(init=...)
for every named initialiser, and model.apply with a weights_init function."""

import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import (
    BatchNorm1d,
    Dense,
    DropConnect,
    Dropout,
    GroupNorm,
    InstanceNorm1d,
    LayerNorm,
    Maxout,
    PReLU,
    RBF,
    ReLU,
    Sequential,
    Tanh,
    weight_norm,
)
from fastnn.losses import MSELoss
from fastnn.optim import SGD, Adam, AdamW
from fastnn.regularizers import L1, L1L2, L2


# ------------------------------------------------------------------------- penalties


def penalty_ref(w, l1, l2):
    """(value, gradient) of l1 * sum|w| + l2 * sum(w^2), sign(0) = 0."""
    w = w.astype(np.float64)
    return l1 * np.abs(w).sum() + l2 * (w * w).sum(), l1 * np.sign(w) + 2 * l2 * w


REGULARIZERS = {
    "L1": (lambda: L1(0.03), 0.03, 0.0),
    "L2": (lambda: L2(0.07), 0.0, 0.07),
    "L1L2": (lambda: L1L2(l1=0.02, l2=0.05), 0.02, 0.05),
    "L1_default": (L1, 0.01, 0.0),
    "L2_default": (L2, 0.0, 0.01),
}


def reg_model(dtype, regs):
    fastnn.seed(0)
    return Sequential(
        Dense(6, 5, regularizer=regs[0], dtype=dtype),
        Tanh(),
        Dense(5, 4, dtype=dtype),  # no penalty
        Dense(4, 3, regularizer=regs[1], dtype=dtype),
    )


@pytest.mark.parametrize("kind", list(REGULARIZERS))
def test_add_penalties_value_and_gradient(rng, dtype, kind):
    make, l1, l2 = REGULARIZERS[kind]
    model = reg_model(dtype, [make(), L2(0.2)])
    model[0].weight.data.flat[:3] = 0.0  # sign(0) = 0 for the L1 part
    G0 = {n: rng.standard_normal(p.shape).astype(dtype) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = G0[n]  # penalties are *added* to whatever .grad holds
    value = model.add_penalties()
    v0, g0 = penalty_ref(model[0].weight.data, l1, l2)
    v3, g3 = penalty_ref(model[3].weight.data, 0.0, 0.2)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    assert isinstance(value, float)
    assert value == pytest.approx(v0 + v3, rel=rtol)
    assert model.penalty() == pytest.approx(v0 + v3, rel=rtol)
    np.testing.assert_allclose(
        model[0].weight.grad,
        G0["0.weight"] + g0,
        rtol=rtol,
        atol=1e-7 if dtype == np.float32 else 0,
    )
    np.testing.assert_allclose(
        model[3].weight.grad,
        G0["3.weight"] + g3,
        rtol=rtol,
        atol=1e-7 if dtype == np.float32 else 0,
    )
    for n in ("0.bias", "2.weight", "2.bias", "3.bias"):  # biases are not penalised
        np.testing.assert_array_equal(dict(model.named_parameters())[n].grad, G0[n])


def test_penalty_does_not_touch_gradients_and_frozen_weights_get_none(rng):
    model = reg_model(np.float64, [L1L2(0.1, 0.2), L2(0.3)])
    expected = sum(
        penalty_ref(model[i].weight.data, *lv)[0] for i, lv in ((0, (0.1, 0.2)), (3, (0.0, 0.3)))
    )
    assert model.penalty() == pytest.approx(expected, rel=1e-13)
    assert all(not p.grad.any() for p in model.parameters())
    model[0].freeze()
    assert model.add_penalties() == pytest.approx(expected, rel=1e-13)  # counted ...
    assert not model[0].weight.grad.any()  # ... but no gradient for a frozen weight
    assert model[3].weight.grad.any()
    assert Sequential(Dense(3, 2)).add_penalties() == 0.0


@pytest.mark.parametrize("dim", [0, None], ids=["dim0", "dimNone"])
@pytest.mark.parametrize("reg", [(0.0, 0.3), (0.2, 0.0), (0.1, 0.4)], ids=["L2", "L1", "L1L2"])
def test_penalty_of_a_weight_normalised_layer_reaches_g_and_v(rng, num_grad, fd_tol, dim, reg):
    """With weight_norm, the regularizer penalises the effective weight g v / |v|; the
    gradient of that penalty must land in weight_g.grad and weight_v.grad (the
    trainable parameters), not in the hidden derived weight."""
    fastnn.seed(2)
    layer = weight_norm(Dense(4, 3, regularizer=L1L2(*reg), dtype=np.float64), dim=dim)
    layer.weight_g.data = rng.uniform(0.5, 2.0, layer.weight_g.shape)  # no forward since
    model = Sequential(layer)

    def value(_):
        return model.penalty()

    g, v = layer.weight_g, layer.weight_v
    w = (
        g.data
        * v.data
        / (np.linalg.norm(v.data, axis=1, keepdims=True) if dim == 0 else np.linalg.norm(v.data))
    )
    expected = penalty_ref(w, *reg)[0]
    assert model.penalty() == pytest.approx(expected, rel=1e-13)  # the current weights
    model.zero_grad()
    assert model.add_penalties() == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(g.grad, num_grad(value, g.data), **fd_tol)
    np.testing.assert_allclose(v.grad, num_grad(value, v.data), **fd_tol)
    assert g.grad.any()
    # frozen: counted, no gradient
    model.zero_grad()
    model.freeze()
    assert model.add_penalties() == pytest.approx(expected, rel=1e-13)
    assert not g.grad.any() and not v.grad.any()


def test_penalty_thread_independent(rng, use_threads):
    w = rng.standard_normal((300, 200)).astype(np.float32)  # above the threshold
    out = []
    for n in (1, 2):
        with use_threads(n):
            layer = Dense(200, 300, regularizer=L1L2(1e-3, 2e-3))
            layer.weight.data = w
            out.append((layer.add_penalties(), layer.weight.grad.copy()))
    assert out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])


def trainer_setup(rng, lr):
    fastnn.seed(1)
    model = Sequential(
        Dense(5, 4, regularizer=L2(0.05), dtype=np.float64),
        Tanh(),
        Dense(4, 2, regularizer=L1(0.02), dtype=np.float64),
    )
    X, y = rng.standard_normal((20, 5)), rng.standard_normal((20, 2))
    trainer = fastnn.Trainer(model, MSELoss(), SGD(model.parameters(), lr=lr))
    return model, trainer, X, y


def test_trainer_reported_loss_includes_the_penalty(rng):
    model, trainer, X, y = trainer_setup(rng, lr=0.0)  # lr 0: the weights stay put
    mse = float(np.mean((model.predict(X) - y) ** 2))
    pen = model.penalty()
    assert pen > 0.01 * mse
    assert trainer.train_step(X, y) == pytest.approx(mse + pen, rel=1e-12)
    hist = trainer.fit(X, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["loss"], [mse + pen] * 2, rtol=1e-12)
    assert trainer.evaluate(X, y)["loss"] == pytest.approx(mse + pen, rel=1e-12)
    # validation loss too
    hist = trainer.fit(X, y, epochs=3, batch_size=20, validation_data=(X, y), verbose=0)
    assert hist.history["val_loss"][-1] == pytest.approx(mse + pen, rel=1e-12)


def test_trainer_update_uses_the_penalty_gradient(rng):
    lr = 0.1
    model, trainer, X, y = trainer_setup(rng, lr=lr)
    # the gradient of the data term alone, from a copy without regularizers
    fastnn.seed(1)
    plain = Sequential(Dense(5, 4, dtype=np.float64), Tanh(), Dense(4, 2, dtype=np.float64))
    plain.load_state_dict(model.state_dict())
    loss = MSELoss()
    loss(plain.forward(X), y)
    plain.zero_grad()
    plain.backward(loss.backward())
    before = model.state_dict()
    trainer.train_step(X, y)
    after = model.state_dict()
    regs = {"0.weight": (0.0, 0.05), "2.weight": (0.02, 0.0)}
    for n, p in plain.named_parameters():
        pen_grad = penalty_ref(before[n], *regs[n])[1] if n in regs else 0.0
        np.testing.assert_allclose(
            after[n], before[n] - lr * (p.grad + pen_grad), rtol=1e-12, atol=1e-15, err_msg=n
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: L1(-0.1),
        lambda: L2(-1e-3),
        lambda: L1L2(l1=-1.0),
        lambda: L1L2(l2=-1.0),
        lambda: L1(float("nan")),
        lambda: L2("0.1"),
        lambda: L1L2(l1=None),
    ],
    ids=["l1", "l2", "l1l2_l1", "l1l2_l2", "nan", "string", "none"],
)
def test_bad_penalties_raise(make):
    with pytest.raises(ValueError, match=r"(l1|l2) must be a number >= 0"):
        make()


def test_dense_regularizer_must_be_a_regularizer():
    with pytest.raises(TypeError, match="regularizer must be a fastnn.regularizers object"):
        Dense(3, 2, regularizer="l2")
    # from get_config (a dict) it is rebuilt
    layer = Dense(3, 2, regularizer={"l1": 0.1, "l2": 0.2})
    assert (layer.regularizer.l1, layer.regularizer.l2) == (0.1, 0.2)


# --------------------------------------------------------------------------- Dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
def test_dropout_modes_same_expected_activation(rng, p):
    """Monte Carlo over K masks: inverted training has mean x (= its eval output),
    weight-scaling training has mean (1 - p) x (= its eval output); each element's
    sample mean within 5.5 standard errors, the grand mean within 4."""
    K = 300
    x = rng.uniform(0.5, 2.0, (30, 40))
    results = {}
    for mode in ("inverted", "weight_scaling"):
        layer = Dropout(p, mode=mode)
        fastnn.seed(123)
        acc = np.zeros_like(x)
        for _ in range(K):
            acc += layer.forward(x)
        layer.eval()
        results[mode] = (acc / K, layer.forward(x))
    mean_inv, eval_inv = results["inverted"]
    mean_ws, eval_ws = results["weight_scaling"]
    np.testing.assert_array_equal(eval_inv, x)  # inverted: identity in eval
    np.testing.assert_allclose(eval_ws, (1 - p) * x, rtol=1e-15)  # times 1 - p in eval
    se_inv = x * math.sqrt(p / (1 - p) / K)
    se_ws = x * math.sqrt(p * (1 - p) / K)
    assert np.all(np.abs(mean_inv - eval_inv) <= 5.5 * se_inv)
    assert np.all(np.abs(mean_ws - eval_ws) <= 5.5 * se_ws)
    n = x.size
    assert abs((mean_inv / eval_inv).mean() - 1) <= 4 * math.sqrt(p / (1 - p) / K / n)
    assert abs((mean_ws / eval_ws).mean() - 1) <= 4 * math.sqrt(p / (1 - p) / K / n)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_modes_share_masks_and_scale(rng, dtype, p):
    x = rng.uniform(0.5, 2.0, (17, 23)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    out = {}
    for mode in ("inverted", "weight_scaling"):
        layer = Dropout(p, mode=mode)
        fastnn.seed(9)
        y = layer.forward(x)
        out[mode] = (y, layer.backward(g))
    (y_i, g_i), (y_w, g_w) = out["inverted"], out["weight_scaling"]
    keep = y_w != 0
    np.testing.assert_array_equal(y_i != 0, keep)  # the same mask under the same seed
    np.testing.assert_array_equal(y_w[keep], x[keep])  # survivors unscaled
    scale = dtype.type(1 / (1 - p))
    np.testing.assert_array_equal(y_i, y_w * scale)
    np.testing.assert_array_equal(g_w, np.where(keep, g, 0))
    np.testing.assert_array_equal(g_i, np.where(keep, g * scale, 0))
    # weight-scaling evaluation: forward and backward multiply by 1 - p
    layer = Dropout(p, mode="weight_scaling").eval()
    np.testing.assert_allclose(layer.forward(x), x * (1 - p), rtol=1e-6)
    np.testing.assert_allclose(layer.backward(g), g * (1 - p), rtol=1e-6)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_dropout_p_outside_unit_interval_raises(p):
    with pytest.raises(ValueError, match=r"Dropout p must be in \[0, 1\)"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"Dropout p must be in \[0, 1\)"):
        Dropout(p, mode="weight_scaling")
    with pytest.raises(ValueError, match=r"DropConnect p must be in \[0, 1\)"):
        DropConnect(Dense(3, 2), p)


def test_dropout_bad_mode():
    with pytest.raises(ValueError, match=r"unknown Dropout mode 'scaled'.*'inverted'"):
        Dropout(0.5, mode="scaled")


# ----------------------------------------------------------------------- DropConnect


def dc_layer(p=0.4, n_in=6, n_out=5, dtype=np.float64, bias=True):
    fastnn.seed(3)
    return DropConnect(Dense(n_in, n_out, bias=bias, dtype=dtype), p)


def weight_mask(shape, p, dtype, state):
    """mask / (1 - p) of the next dropout draw from fastnn's RNG state `state`, drawn
    by a Dropout layer on ones (the same counter-based generator)."""
    fastnn.rng.set_state(state)
    return Dropout(p).forward(np.ones(shape, dtype))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_dropconnect_drops_weights_with_the_counter_rng(rng, dtype, bias):
    p = 0.4
    dc = dc_layer(p, dtype=dtype, bias=bias)
    W = dc.layer.weight.data.copy()
    b = 0.0 if not bias else dc.layer.bias.data.copy()
    fastnn.seed(21)
    state = fastnn.rng.get_state()
    x = rng.standard_normal((7, 6)).astype(dtype)
    y = dc.forward(x)
    after = fastnn.rng.get_state()
    assert after["dropout_counter"] == state["dropout_counter"] + 1  # one draw per forward
    m = weight_mask(W.shape, p, dtype, state)
    assert set(np.unique(m)) <= {0.0, dtype.type(1 / (1 - p))}
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, x @ (W * m).T + b, **tol)
    np.testing.assert_array_equal(dc.layer.weight.data, W)  # the full weights are back
    # weights, not activations: with the identity as input, each output column is a
    # column of the masked weight matrix, exactly 0 where a weight was dropped
    fastnn.rng.set_state(state)
    yI = dc.forward(np.eye(6, dtype=dtype)) - b
    np.testing.assert_allclose(yI, (W * m).T, **tol)
    assert np.array_equal(yI == 0, (m == 0).T)


def test_dropconnect_drop_rate_and_fresh_masks():
    p = 0.3
    dc = dc_layer(p, n_in=200, n_out=150)
    x = np.eye(200)
    fastnn.seed(4)
    y1 = dc.forward(x) - dc.layer.bias.data
    y2 = dc.forward(x) - dc.layer.bias.data
    n = y1.size
    for y in (y1, y2):
        rate = np.mean(y == 0)
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert not np.array_equal(y1 == 0, y2 == 0)  # a fresh mask every forward
    fastnn.seed(4)
    np.testing.assert_array_equal(dc.forward(x) - dc.layer.bias.data, y1)  # reproducible


def test_dropconnect_thread_independent(rng, use_threads):
    x = rng.standard_normal((8, 256)).astype(np.float32)
    g = rng.standard_normal((8, 160)).astype(np.float32)
    out = []
    for n in (1, 2):
        with use_threads(n):
            dc = dc_layer(0.5, n_in=256, n_out=160, dtype=np.float32)  # 40960 weights
            fastnn.seed(8)
            y = dc.forward(x)
            gx = dc.backward(g)
            out.append((y, gx, dc.layer.weight.grad.copy()))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_dropconnect_backward_finite_differences(rng, num_grad, fd_tol, bias):
    """Gradients with the mask held fixed: the RNG state is restored before every
    forward, so every evaluation draws the same mask."""
    dc = dc_layer(0.5, n_in=4, n_out=3, bias=bias)
    fastnn.seed(31)
    state = fastnn.rng.get_state()

    def forward(xv):
        fastnn.rng.set_state(state)
        return dc.forward(xv)

    x = rng.standard_normal((5, 4))
    R = rng.standard_normal((5, 3))

    def f(xv):
        return float(np.sum(forward(xv) * R))

    forward(x)
    dc.zero_grad()
    gx = dc.backward(R)
    m = weight_mask((3, 4), 0.5, np.dtype(np.float64), state)
    assert 0 < np.count_nonzero(m) < m.size  # some weights dropped, some kept
    np.testing.assert_allclose(gx, num_grad(f, x.copy()), **fd_tol)
    W = dc.layer.weight
    gW = W.grad.copy()
    np.testing.assert_allclose(gW, num_grad(lambda _: f(x), W.data), **fd_tol)
    np.testing.assert_array_equal(gW[m == 0], 0.0)  # dropped weights get no gradient
    np.testing.assert_allclose(gW, m * (R.T @ x), rtol=1e-12)
    if bias:
        np.testing.assert_allclose(
            dc.layer.bias.grad, num_grad(lambda _: f(x), dc.layer.bias.data), **fd_tol
        )


def test_dropconnect_is_identity_in_eval(rng):
    dc = dc_layer(0.5).eval()
    plain = Dense(6, 5, dtype=np.float64)
    plain.load_state_dict(dc.state_dict())
    x, g = rng.standard_normal((4, 6)), rng.standard_normal((4, 5))
    state = fastnn.rng.get_state()
    np.testing.assert_array_equal(dc.forward(x), plain.forward(x))
    assert fastnn.rng.get_state() == state  # no mask drawn
    dc.zero_grad()
    np.testing.assert_array_equal(dc.backward(g), plain.backward(g))
    np.testing.assert_array_equal(dc.layer.weight.grad, plain.weight.grad)
    # p = 0 in training: the layer unchanged as well
    dc0 = dc_layer(0.0)
    np.testing.assert_array_equal(dc0.forward(x), plain.forward(x))


def test_dropconnect_state_dict_keys_equal_the_wrapped_dense():
    dc = dc_layer()
    assert list(dc.state_dict()) == list(dc.layer.state_dict()) == ["weight", "bias"]
    assert [n for n, _ in dc.named_parameters()] == ["weight", "bias"]
    assert dc.parameters() == dc.layer.parameters()
    model = Sequential(dc, ReLU(), DropConnect(Dense(5, 2), 0.2))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    plain = Sequential(Dense(6, 5, dtype=np.float64), ReLU(), Dense(5, 2))
    plain.load_state_dict(model.state_dict())  # interchangeable
    with pytest.raises(TypeError, match="DropConnect wraps a layer with a `weight`"):
        DropConnect(ReLU(), 0.5)


def test_dropconnect_frozen_weight_gets_no_gradient(rng):
    dc = dc_layer(0.5)
    dc.layer.weight.requires_grad = False
    dc.forward(rng.standard_normal((3, 6)))
    dc.backward(np.ones((3, 5)))
    assert not dc.layer.weight.grad.any()
    assert dc.layer.bias.grad.any()


# --------------------------------------------------------------------------- freezing


def _wn_dense():
    fastnn.seed(0)
    return weight_norm(Dense(4, 3, dtype=np.float64))


FREEZE_CASES = {
    "dense": (lambda: Dense(4, 3, dtype=np.float64), (5, 4)),
    "prelu": (lambda: PReLU(3, dtype=np.float64), (5, 3, 2)),
    "maxout": (lambda: Maxout(4, 3, 2, dtype=np.float64), (5, 4)),
    "rbf": (lambda: RBF(4, 3, dtype=np.float64), (5, 4)),
    "batchnorm": (lambda: BatchNorm1d(3, dtype=np.float64), (5, 3)),
    "layernorm": (lambda: LayerNorm(4, dtype=np.float64), (5, 4)),
    "groupnorm": (lambda: GroupNorm(2, 4, dtype=np.float64), (5, 4, 2)),
    "instancenorm": (lambda: InstanceNorm1d(3, affine=True, dtype=np.float64), (5, 3, 4)),
    "weight_norm": (_wn_dense, (5, 4)),
    "dropconnect": (lambda: DropConnect(Dense(4, 3, dtype=np.float64), 0.3), (5, 4)),
}


def _grads(make, shape, frozen=(), freeze_all=False):
    fastnn.seed(0)
    layer = make()
    rng = np.random.default_rng(1)
    for p in layer.parameters():  # non-trivial values (PReLU slope < 0 matters, etc.)
        p.data = p.data + rng.uniform(-0.3, 0.3, p.shape)
    if freeze_all:
        layer.freeze()
    for name, p in layer.named_parameters():
        if name in frozen:
            p.requires_grad = False
    x = rng.standard_normal(shape)
    fastnn.seed(5)  # the same DropConnect mask every time
    y = layer.forward(x)
    gx = layer.backward(rng.standard_normal(y.shape))
    return gx, {n: p.grad.copy() for n, p in layer.named_parameters()}, layer


@pytest.mark.parametrize("case", list(FREEZE_CASES))
def test_frozen_parameters_get_no_gradient(case):
    make, shape = FREEZE_CASES[case]
    gx_ref, ref, _ = _grads(make, shape)
    assert ref and all(g.any() for g in ref.values())
    for name in ref:  # freeze one parameter at a time
        gx, grads, _ = _grads(make, shape, frozen=(name,))
        np.testing.assert_array_equal(gx, gx_ref)
        assert not grads[name].any(), f"frozen {name} got a gradient"
        for other in ref:
            if other != name:
                np.testing.assert_array_equal(grads[other], ref[other], err_msg=other)
    gx, grads, layer = _grads(make, shape, freeze_all=True)  # freeze() the whole layer
    np.testing.assert_array_equal(gx, gx_ref)
    assert all(not p.requires_grad for p in layer.parameters())
    assert all(not g.any() for g in grads.values())
    layer.unfreeze()
    assert all(p.requires_grad for p in layer.parameters())


def _frozen_model():
    fastnn.seed(2)
    return Sequential(
        Dense(4, 6, dtype=np.float64),
        BatchNorm1d(6, dtype=np.float64),
        ReLU(),
        Dense(6, 3, dtype=np.float64),
    )


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: Adam(ps, lr=1e-2),
        lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    ],
    ids=["adam", "adamw", "sgd_momentum_wd"],
)
@pytest.mark.parametrize("freeze_after_building", [False, True], ids=["before", "after"])
def test_frozen_parameters_are_not_updated(rng, make_opt, freeze_after_building):
    model = _frozen_model()

    def freeze():
        model[0].freeze()
        model[1].bias.requires_grad = False

    if not freeze_after_building:
        freeze()
    opt = make_opt(model.parameters())
    if freeze_after_building:
        freeze()
    before = model.state_dict()
    loss = MSELoss()
    X, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
    for _ in range(3):
        opt.zero_grad()
        loss(model.forward(X), y)
        model.backward(loss.backward())
        assert not model[0].weight.grad.any() and not model[1].bias.grad.any()
        opt.step()
    after = model.state_dict()
    for k in ("0.weight", "0.bias", "1.bias"):
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    for k in ("1.weight", "3.weight", "3.bias"):
        assert not np.array_equal(after[k], before[k]), k
    # unfrozen, they train again
    model[0].unfreeze()
    opt.zero_grad()
    loss(model.forward(X), y)
    model.backward(loss.backward())
    opt.step()
    assert not np.array_equal(model.state_dict()["0.weight"], before["0.weight"])
    np.testing.assert_array_equal(model.state_dict()["1.bias"], before["1.bias"])


def test_trainer_skips_frozen_layers(rng):
    model = _frozen_model()
    model[0].freeze()
    before = model.state_dict()
    trainer = fastnn.Trainer(model, MSELoss(), Adam(model.parameters(), lr=1e-2))
    trainer.fit(
        rng.standard_normal((16, 4)),
        rng.standard_normal((16, 3)),
        epochs=2,
        batch_size=4,
        verbose=0,
    )
    after = model.state_dict()
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])
    np.testing.assert_array_equal(after["0.bias"], before["0.bias"])
    assert not np.array_equal(after["3.weight"], before["3.weight"])


# ------------------------------------------------------------------------ initialisers

IN, OUT = 300, 400  # weight (400, 300): fan_in 300, fan_out 400
XAVIER_STD = math.sqrt(2 / (IN + OUT))
HE_STD = math.sqrt(2 / IN)

# name -> (distribution, std, bound or None)
INIT_EXPECTED = {
    "xavier_uniform": ("uniform", XAVIER_STD, XAVIER_STD * math.sqrt(3)),
    "glorot_uniform": ("uniform", XAVIER_STD, XAVIER_STD * math.sqrt(3)),
    "xavier_normal": ("normal", XAVIER_STD, None),
    "glorot_normal": ("normal", XAVIER_STD, None),
    "kaiming_uniform": ("uniform", HE_STD, HE_STD * math.sqrt(3)),
    "he_uniform": ("uniform", HE_STD, HE_STD * math.sqrt(3)),
    "kaiming_normal": ("normal", HE_STD, None),
    "he_normal": ("normal", HE_STD, None),
    "orthogonal": ("orthogonal", 1 / math.sqrt(OUT), None),
    "trunc_normal": ("normal", 0.02, 2.0),
    "normal": ("normal", 0.01, None),
    "uniform": ("uniform", 0.1 / math.sqrt(12), 0.05),
    "zeros": ("zeros", 0.0, 0.0),
}


def test_init_names_are_all_covered():
    assert set(INIT_EXPECTED) == set(fastnn.init.BY_NAME)


@pytest.mark.parametrize("name", sorted(INIT_EXPECTED))
def test_dense_named_init_statistics(name):
    kind, std, bound = INIT_EXPECTED[name]
    fastnn.seed(17)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = Dense(IN, OUT, init=name)
    assert (kind == "zeros") == any(
        "symmetry" in str(w.message) or "constant" in str(w.message) for w in caught
    )
    w = layer.weight.data.astype(np.float64)
    assert w.shape == (OUT, IN) and layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.bias.data, 0.0)  # named inits zero the bias
    if kind == "zeros":
        np.testing.assert_array_equal(w, 0.0)
        return
    if kind == "orthogonal":  # more rows than columns: orthonormal columns
        np.testing.assert_allclose(w.T @ w, np.eye(IN), atol=1e-5)
        return
    n = w.size
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    assert w.std() == pytest.approx(std, rel=0.02)
    if bound is not None:
        assert np.abs(w).max() <= bound * (1 + 1e-6)
    kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert kurtosis == pytest.approx(1.8 if kind == "uniform" else 3.0, abs=0.1)
    if kind == "uniform":
        assert np.abs(w).max() > 0.99 * bound  # fills its range
    # reproducible under fastnn.seed
    fastnn.seed(17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(Dense(IN, OUT, init=name).weight.data, layer.weight.data)


def test_dense_callable_init():
    seen = []

    def my_init(param):
        seen.append(param)
        param.data = np.arange(param.size, dtype=np.float64).reshape(param.shape) / 100

    layer = Dense(3, 2, init=my_init, dtype=np.float64)
    assert seen == [layer.weight]  # called once, with the weight Parameter
    np.testing.assert_array_equal(layer.weight.data, np.arange(6).reshape(2, 3) / 100)
    np.testing.assert_array_equal(layer.bias.data, 0.0)
    # an initialiser from fastnn.init with arguments, through a lambda
    fastnn.seed(0)
    layer = Dense(
        200,
        300,
        init=lambda p: fastnn.init.kaiming_uniform_(p, mode="fan_out", nonlinearity="tanh"),
    )
    bound = 5 / 3 * math.sqrt(3 / 300)
    assert bound * 0.98 < np.abs(layer.weight.data).max() <= bound * (1 + 1e-6)


def test_dense_unknown_init_lists_valid_names():
    with pytest.raises(ValueError, match="unknown init 'nope'") as info:
        Dense(3, 2, init="nope")
    for name in fastnn.init.BY_NAME:
        assert repr(name) in str(info.value)
    assert "callable" in str(info.value)


def test_apply_with_the_seed_note_weights_init():
    def weights_init(m):
        if isinstance(m, fastnn.Dense):
            fastnn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                fastnn.init.zeros_(m.bias)

    def build():
        return Sequential(
            Dense(400, 300),
            BatchNorm1d(300),
            ReLU(),
            DropConnect(Dense(300, 200), 0.5),
            Sequential(Dense(200, 100), ReLU()),
            Dense(100, 10, bias=False),
        )

    fastnn.seed(6)
    model = build()
    visited = []
    assert model.apply(lambda m: visited.append(type(m).__name__)) is model
    assert visited.count("Dense") == 4 and visited[-1] == "Sequential"
    assert visited.index("Dense") < visited.index("BatchNorm1d")  # children first
    fastnn.seed(6)
    model.apply(weights_init)
    denses = [m for m in model.modules() if isinstance(m, Dense)]
    assert len(denses) == 4
    for d in denses:
        w = d.weight.data
        assert w.std() == pytest.approx(math.sqrt(2 / d.in_features), rel=0.05)
        if d.bias is not None:
            np.testing.assert_array_equal(d.bias.data, 0.0)
    np.testing.assert_array_equal(model[1].weight.data, 1.0)  # BatchNorm untouched
    np.testing.assert_array_equal(model[1].bias.data, 0.0)
    # reproducible under fastnn.seed
    fastnn.seed(6)
    again = build()
    fastnn.seed(6)
    again.apply(weights_init)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
