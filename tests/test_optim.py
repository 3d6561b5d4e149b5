"""Optimizers (fastnn.optim): update rules against a NumPy reference of the documented
formulas and against torch.optim, flat-buffer views, parameter groups, frozen
parameters, the lr property, state_dict round trips and input validation."""

import copy
import functools
import itertools

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.losses import CrossEntropyLoss
from helpers import grad_stream, make_params as _make_params, tols

SHAPES = [(7, 5), (5,), (3, 7), (3,), (1,)]
DTYPES = [np.float32, np.float64]


# -- helpers ----------------------------------------------------------------------------
make_params = functools.partial(_make_params, shapes=SHAPES)


class RefSGD:
    """torch.optim.SGD's documented algorithm, in NumPy."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.p = [np.array(x, copy=True) for x in params]
        self.lr, self.mom, self.damp, self.wd, self.nest = (
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
        )
        self.buf = [None] * len(params)

    def step(self, grads):
        for i, (p, g) in enumerate(zip(self.p, grads)):
            g = g + self.wd * p
            if self.mom != 0:
                if self.buf[i] is None:
                    self.buf[i] = g.copy()
                else:
                    self.buf[i] = self.mom * self.buf[i] + (1 - self.damp) * g
                g = g + self.mom * self.buf[i] if self.nest else self.buf[i]
            self.p[i] = p - self.lr * g


class RefAdam:
    """torch.optim.Adam / AdamW's documented algorithm, in NumPy."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        decoupled=False,
    ):
        self.p = [np.array(x, copy=True) for x in params]
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.ams, self.decoupled = amsgrad, decoupled
        self.m = [np.zeros_like(x) for x in self.p]
        self.v = [np.zeros_like(x) for x in self.p]
        self.vmax = [np.zeros_like(x) for x in self.p]
        self.t = 0

    def step(self, grads):
        self.t += 1
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for i, g in enumerate(grads):
            p = self.p[i]
            if self.decoupled:
                p = p * (1 - self.lr * self.wd)
            else:
                g = g + self.wd * p
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            vhat = self.v[i]
            if self.ams:
                self.vmax[i] = np.maximum(self.vmax[i], self.v[i])
                vhat = self.vmax[i]
            self.p[i] = p - self.lr / bc1 * self.m[i] / (np.sqrt(vhat) / np.sqrt(bc2) + self.eps)


def run(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()


SGD_CASES = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=w)
    for m, d, n, w in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.05])
    if not (n and (m == 0 or d != 0))
]
SGD_IDS = [
    "mom{momentum}-damp{dampening}-nest{nesterov}-wd{weight_decay}".format(**c) for c in SGD_CASES
]

ADAM_CASES = [
    (cls, dict(weight_decay=w, amsgrad=a, **extra))
    for cls in ("Adam", "AdamW")
    for w, a in itertools.product([0.0, 0.1], [False, True])
    for extra in ({}, {"betas": (0.8, 0.99), "eps": 1e-6, "lr": 3e-2})
]
ADAM_IDS = [
    f"{c}-wd{o['weight_decay']}-ams{o['amsgrad']}-{'custom' if 'eps' in o else 'dflt'}"
    for c, o in ADAM_CASES
]


def test_sgd_cases_cover_every_valid_combination():
    assert len(SGD_CASES) == 10  # 16 minus 6 invalid (nesterov without momentum or with dampening)


# -- against the NumPy reference --------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", SGD_CASES, ids=SGD_IDS)
def test_sgd_matches_numpy_reference(opts, dtype):
    params = make_params(dtype)
    ref = RefSGD([p.data for p in params], lr=0.05, **opts)
    opt = optim.SGD(params, lr=0.05, **opts)
    grads = grad_stream(SHAPES, 25, dtype=dtype)
    for gs in grads:
        run(opt, params, [gs])
        ref.step(gs)
        for p, r in zip(params, ref.p):
            assert p.dtype == dtype
            np.testing.assert_allclose(p.data, r, **tols(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,opts", ADAM_CASES, ids=ADAM_IDS)
def test_adam_matches_numpy_reference(cls, opts, dtype):
    params = make_params(dtype)
    decoupled = cls == "AdamW"
    ref_opts = dict(opts)
    if decoupled and "weight_decay" not in ref_opts:
        ref_opts["weight_decay"] = 1e-2
    ref = RefAdam([p.data for p in params], decoupled=decoupled, **ref_opts)
    opt = getattr(optim, cls)(params, **opts)
    grads = grad_stream(SHAPES, 25, dtype=dtype)
    for gs in grads:
        run(opt, params, [gs])
        ref.step(gs)
        for p, r in zip(params, ref.p):
            np.testing.assert_allclose(p.data, r, **tols(dtype))


BIG_SHAPES = [(317, 211), (7,), (40_001,)]  # > the one-thread threshold, odd sizes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "cls,opts",
    [
        ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
        ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
        ("AdamW", dict(lr=1e-2)),
    ],
    ids=["sgd-mom", "sgd-nesterov", "adam-ams", "adamw"],
)
def test_large_buffers_match_reference_for_any_thread_count(cls, opts, dtype):
    """Buffers large enough for the multi-threaded kernel path: same numbers as the
    NumPy reference, and bit for bit the same with 1 and 2 threads."""
    grads = grad_stream(BIG_SHAPES, 4, dtype=dtype)
    init = [p.data.copy() for p in make_params(dtype, shapes=BIG_SHAPES)]
    if cls == "SGD":
        ref = RefSGD(init, **opts)
    else:
        ref = RefAdam(init, decoupled=cls == "AdamW", **dict({"weight_decay": 1e-2}, **opts))
    for gs in grads:
        ref.step(gs)
    n = fastnn.get_num_threads()
    finals = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            params = [fastnn.Parameter(x) for x in init]
            run(getattr(optim, cls)(params, **opts), params, grads)
            finals.append([p.data.copy() for p in params])
    finally:
        fastnn.set_num_threads(n)
    for a, b, r in zip(finals[0], finals[1], ref.p):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, r, **tols(dtype))


def test_amsgrad_and_weight_decay_change_the_result():
    """The reference tests above would not notice an option that is silently ignored
    if it had no effect on the stream used; make sure it has."""
    grads = grad_stream(SHAPES, 25)
    finals = {}
    for name, kw in {"plain": {}, "ams": {"amsgrad": True}, "wd": {"weight_decay": 0.1}}.items():
        params = make_params(np.float64)
        run(optim.Adam(params, lr=1e-2, **kw), params, grads)
        finals[name] = np.concatenate([p.data.ravel() for p in params])
    assert not np.allclose(finals["plain"], finals["ams"], rtol=1e-6)
    assert not np.allclose(finals["plain"], finals["wd"], rtol=1e-6)


def test_adamw_default_weight_decay_is_decoupled():
    """AdamW(weight_decay=1e-2 default) decays the weight directly: with a zero
    gradient the update is exactly p * (1 - lr * wd)."""
    p = fastnn.Parameter(np.array([1.0, -2.0, 3.0]))
    opt = optim.AdamW([p], lr=0.1)
    assert opt.param_groups[0]["weight_decay"] == 1e-2
    opt.step()
    np.testing.assert_allclose(p.data, np.array([1.0, -2.0, 3.0]) * (1 - 0.1 * 1e-2), rtol=1e-15)
    # Adam's coupled L2 penalty instead moves by ~lr whatever the size of the weight.
    q = fastnn.Parameter(np.array([1.0, -2.0, 3.0]))
    optim.Adam([q], lr=0.1, weight_decay=1e-2).step()
    np.testing.assert_allclose(
        q.data, np.array([1.0, -2.0, 3.0]) - 0.1 * np.sign(q.data), rtol=1e-6
    )


def test_defaults_follow_torch():
    p = make_params(np.float32)
    a = optim.Adam(p).param_groups[0]
    assert (a["lr"], tuple(a["betas"]), a["eps"], a["weight_decay"], a["amsgrad"]) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0.0,
        False,
    )
    s = optim.SGD(make_params(np.float32), lr=0.1).param_groups[0]
    assert (s["momentum"], s["dampening"], s["weight_decay"], s["nesterov"]) == (
        0.0,
        0.0,
        0.0,
        False,
    )


# -- against torch.optim ----------------------------------------------------------------
def _torch_run(torch, cls_name, opts, init, grads, groups=None):
    tparams = [torch.tensor(x, dtype=torch.float64) for x in init]
    for t in tparams:
        t.requires_grad_(True)
    if groups is None:
        target = tparams
    else:
        target = [dict(g, params=[tparams[i] for i in g["params"]]) for g in groups]
    topt = getattr(torch.optim, cls_name)(target, foreach=False, **opts)
    history = []
    for gs in grads:
        for t, g in zip(tparams, gs):
            t.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        history.append([t.detach().numpy().copy() for t in tparams])
    return history


def _fastnn_run(cls_name, opts, init, grads, groups=None):
    params = [fastnn.Parameter(x) for x in init]
    if groups is None:
        target = params
    else:
        target = [dict(g, params=[params[i] for i in g["params"]]) for g in groups]
    opt = getattr(optim, cls_name)(target, **opts)
    history = []
    for gs in grads:
        run(opt, params, [gs])
        history.append([p.data.copy() for p in params])
    return history


def _assert_histories_close(fh, th, rtol=1e-12, atol=1e-14):
    assert len(fh) == len(th)
    for step, (fs, ts) in enumerate(zip(fh, th)):
        for f, t in zip(fs, ts):
            np.testing.assert_allclose(
                f, t, rtol=rtol, atol=atol, err_msg=f"diverged at step {step + 1}"
            )


@pytest.mark.parametrize("opts", SGD_CASES, ids=SGD_IDS)
def test_sgd_matches_torch_step_for_step(opts):
    torch = pytest.importorskip("torch")
    init = [p.data for p in make_params(np.float64, seed=3)]
    grads = grad_stream(SHAPES, 120, seed=4)
    th = _torch_run(torch, "SGD", dict(lr=0.01, **opts), init, grads)
    fh = _fastnn_run("SGD", dict(lr=0.01, **opts), init, grads)
    _assert_histories_close(fh, th)


@pytest.mark.parametrize("cls,opts", ADAM_CASES, ids=ADAM_IDS)
def test_adam_matches_torch_step_for_step(cls, opts):
    torch = pytest.importorskip("torch")
    init = [p.data for p in make_params(np.float64, seed=5)]
    grads = grad_stream(SHAPES, 120, seed=6)
    th = _torch_run(torch, cls, opts, init, grads)
    fh = _fastnn_run(cls, opts, init, grads)
    _assert_histories_close(fh, th)


@pytest.mark.parametrize(
    "cls,opts",
    [
        ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True)),
        ("Adam", dict(lr=1e-2, amsgrad=True)),
        ("AdamW", dict(lr=1e-2)),
    ],
)
def test_parameter_groups_match_torch(cls, opts):
    """Groups with their own lr and weight decay (e.g. no decay on biases) each follow
    their own hyper-parameters, exactly as torch's parameter groups."""
    torch = pytest.importorskip("torch")
    init = [p.data for p in make_params(np.float64, seed=7)]
    grads = grad_stream(SHAPES, 100, seed=8)
    groups = [
        dict(params=[0, 2], weight_decay=0.05),
        dict(params=[1, 3, 4], weight_decay=0.0, lr=opts["lr"] * 3),
    ]
    th = _torch_run(torch, cls, opts, init, grads, groups)
    fh = _fastnn_run(cls, opts, init, grads, groups)
    _assert_histories_close(fh, th)


# -- parameter groups, frozen parameters, lr ---------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_parameter_groups_follow_their_own_hyperparameters(dtype):
    params = make_params(dtype)
    weights, biases = [params[0], params[2]], [params[1], params[3], params[4]]
    opt = optim.SGD(
        [{"params": weights, "weight_decay": 0.1}, {"params": biases, "lr": 0.5, "momentum": 0.9}],
        lr=0.01,
    )
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[1]["weight_decay"] == 0.0
    ref_w = RefSGD([p.data for p in weights], lr=0.01, weight_decay=0.1)
    ref_b = RefSGD([p.data for p in biases], lr=0.5, momentum=0.9)
    for gs in grad_stream(SHAPES, 20, dtype=dtype):
        run(opt, params, [gs])
        ref_w.step([gs[0], gs[2]])
        ref_b.step([gs[1], gs[3], gs[4]])
    for p, r in zip(weights + biases, ref_w.p + ref_b.p):
        np.testing.assert_allclose(p.data, r, **tols(dtype))


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW"])
def test_frozen_parameters_are_not_updated(cls):
    params = make_params(np.float64)
    frozen = [params[1], params[3]]
    for p in frozen:
        p.requires_grad = False
    before = [p.data.copy() for p in frozen]
    opts = dict(lr=0.1, momentum=0.9) if cls == "SGD" else dict(lr=0.1, weight_decay=0.1)
    opt = getattr(optim, cls)(params, **opts)
    trainable = [params[0], params[2], params[4]]
    if cls == "SGD":
        ref = RefSGD([p.data for p in trainable], **opts)
    else:
        ref = RefAdam([p.data for p in trainable], decoupled=cls == "AdamW", **opts)
    for gs in grad_stream(SHAPES, 10):
        run(opt, params, [gs])  # frozen parameters get a non-zero gradient too
        ref.step([gs[0], gs[2], gs[4]])
    for p, b in zip(frozen, before):
        assert np.array_equal(p.data, b)
    for p, r in zip(trainable, ref.p):
        np.testing.assert_allclose(p.data, r, rtol=1e-10, atol=1e-12)


def test_frozen_layer_in_a_model_keeps_its_weights():
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(4, 8), fastnn.ReLU(), fastnn.Dense(8, 3))
    model[0].freeze()
    w0, b0 = model[0].weight.data.copy(), model[0].bias.data.copy()
    w2 = model[2].weight.data.copy()
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.1))
    r = np.random.default_rng(0)
    for _ in range(3):
        trainer.train_step(r.normal(size=(16, 4)).astype(np.float32), r.integers(0, 3, 16))
    assert np.array_equal(model[0].weight.data, w0)
    assert np.array_equal(model[0].bias.data, b0)
    assert not np.array_equal(model[2].weight.data, w2)


def test_lr_property_gets_and_sets_every_group():
    params = make_params(np.float64)
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1)
    assert opt.lr == 0.1
    opt.lr = 0.25
    assert opt.lr == 0.25
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    before = [p.data.copy() for p in params]
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    for p, b in zip(params, before):
        np.testing.assert_allclose(p.data, b - 0.25, rtol=1e-15)
    with pytest.raises(ValueError):
        opt.lr = -1.0
    with pytest.raises(ValueError):
        opt.lr = float("nan")
    assert opt.lr == 0.25


def test_lr_change_mid_run_is_used_by_adam():
    params = make_params(np.float64)
    opt = optim.Adam(params, lr=0.01)
    ref = RefAdam([p.data for p in params], lr=0.01)
    for i, gs in enumerate(grad_stream(SHAPES, 10)):
        if i == 5:
            opt.lr = ref.lr = 0.1
        run(opt, params, [gs])
        ref.step(gs)
    for p, r in zip(params, ref.p):
        np.testing.assert_allclose(p.data, r, rtol=1e-10)


# -- flat buffer ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_parameters_live_in_one_contiguous_buffer(dtype):
    params = make_params(dtype)
    values = [p.data.copy() for p in params]
    optim.Adam(params)
    # Values survive the move into the buffer; the arrays are adjacent slices of it.
    for p, v in zip(params, values):
        assert np.array_equal(p.data, v) and p.data.flags.c_contiguous
        assert p.grad.shape == p.data.shape
    item = np.dtype(dtype).itemsize
    start = params[0].data.__array_interface__["data"][0]
    gstart = params[0].grad.__array_interface__["data"][0]
    offset = 0
    for p in params:
        assert p.data.__array_interface__["data"][0] == start + offset * item
        assert p.grad.__array_interface__["data"][0] == gstart + offset * item
        offset += p.size


@pytest.mark.parametrize("cls", ["SGD", "Adam"])
def test_in_place_writes_to_data_and_grad_are_seen_by_the_optimizer(cls):
    params = make_params(np.float64)
    opt = getattr(optim, cls)(params, lr=0.1)
    views = [p.data for p in params]
    params[0].data[...] = 5.0  # in-place write into the view
    params[1].data = np.full(5, -2.0)  # setter copies into the view
    assert params[1].data is views[1]
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    # SGD: x - lr * 1; Adam's first step moves every element by lr (m/sqrt(v) = 1).
    np.testing.assert_allclose(params[0].data, 5.0 - 0.1, rtol=1e-7)
    np.testing.assert_allclose(params[1].data, -2.0 - 0.1, rtol=1e-7)
    for p, v in zip(params, views):
        assert p.data is v  # the update happened in the arrays the user holds


def test_zero_grad_zeroes_every_grad():
    fastnn.seed(1)
    model = fastnn.Sequential(
        fastnn.Dense(6, 5), fastnn.BatchNorm1d(5), fastnn.ReLU(), fastnn.Dense(5, 2)
    )
    opt = optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad[...] = np.random.default_rng(0).normal(size=p.shape)
    opt.zero_grad()
    for p in model.parameters():
        assert p.grad.shape == p.shape and not p.grad.any()
    # model.zero_grad reaches the same (flat) gradients
    for p in model.parameters():
        p.grad[...] = 3.0
    model.zero_grad()
    for p in model.parameters():
        assert not p.grad.any()


def test_gradients_accumulate_until_zero_grad():
    """Backward accumulates into .grad (into the flat buffer), zero_grad clears it."""
    fastnn.seed(2)
    layer = fastnn.Dense(3, 2, dtype=np.float64)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = np.random.default_rng(0).normal(size=(4, 3))
    g = np.ones((4, 2))
    layer.forward(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-14)
    opt.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


# -- state_dict -------------------------------------------------------------------------
def _model(seed):
    fastnn.seed(seed)
    return fastnn.Sequential(
        fastnn.Dense(10, 16), fastnn.BatchNorm1d(16), fastnn.ReLU(), fastnn.Dense(16, 4)
    )


def _batches(n, seed=0):
    r = np.random.default_rng(seed)
    return [(r.normal(size=(32, 10)).astype(np.float32), r.integers(0, 4, 32)) for _ in range(n)]


def _all_state(model):
    return [v.copy() for v in model.state_dict().values()]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True, weight_decay=1e-3),
        lambda ps: optim.AdamW(ps, lr=1e-2),
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    ],
    ids=["adam-ams", "adamw", "sgd-mom", "sgd-nesterov"],
)
def test_state_dict_round_trip_is_bit_exact(make_opt):
    n_first, n_more = 6, 5
    batches = _batches(n_first + n_more)
    model = _model(0)
    opt = make_opt(model.parameters())
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), opt)
    for xb, yb in batches[:n_first]:
        trainer.train_step(xb, yb)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    for xb, yb in batches[n_first:]:
        trainer.train_step(xb, yb)
    expected = _all_state(model)

    model2 = _model(123)  # different initial weights, overwritten by the load
    opt2 = make_opt(model2.parameters())
    opt2.lr = 0.5  # overwritten by the load too
    model2.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    trainer2 = fastnn.Trainer(model2, CrossEntropyLoss(), opt2)
    for xb, yb in batches[n_first:]:
        trainer2.train_step(xb, yb)
    got = _all_state(model2)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert np.array_equal(a, b)
    # the optimizer state continued identically as well
    for k, v in opt.state_dict()["state"].items():
        assert np.array_equal(opt2.state_dict()["state"][k], v)


def test_state_dict_is_a_snapshot():
    params = make_params(np.float64)
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, grad_stream(SHAPES, 2))
    sd = opt.state_dict()
    frozen = copy.deepcopy(sd)
    run(opt, params, grad_stream(SHAPES, 2, seed=9))
    for k in frozen["state"]:
        assert np.array_equal(sd["state"][k], frozen["state"][k])
    assert sd["state"]["step"].tolist() == [2] * len(params)


def test_load_state_dict_rejects_a_foreign_layout():
    opt = optim.Adam(make_params(np.float64))
    other = optim.Adam(make_params(np.float64, shapes=[(3, 3)]))
    with pytest.raises(ValueError):
        opt.load_state_dict(other.state_dict())


# -- refusing to step -------------------------------------------------------------------
def test_optimizer_refuses_to_step_after_astype():
    model = _model(0)
    opt = optim.Adam(model.parameters())
    model.astype(np.float64)
    with pytest.raises(RuntimeError):
        opt.step()
    optim.Adam(model.parameters()).step()  # a new optimizer works


def test_optimizer_state_follows_parameters_into_a_new_store():
    from fastnn.store import ParameterStore

    moved, stay = make_params(np.float64), make_params(np.float64)
    for a, b in zip(moved, stay):
        b.data = a.data
    opts = [optim.SGD(ps, lr=0.1, momentum=0.9) for ps in (moved, stay)]
    for step in range(3):
        if step == 1:  # a new store (as model.parameter_store() may build) in between
            store = ParameterStore(list(reversed(moved)))
            assert all(p._owner.store is store for p in moved)
        for ps, opt in zip((moved, stay), opts):
            for p in ps:
                p.grad = np.full(p.shape, step + 1.0)
            opt.step()
    for a, b in zip(moved, stay):
        np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(
        opts[0].state_dict()["state"]["momentum_buffer"],
        opts[1].state_dict()["state"]["momentum_buffer"],
    )


def test_mixed_dtypes_are_rejected():
    params = make_params(np.float32) + make_params(np.float64)[:1]
    with pytest.raises(ValueError):
        optim.SGD(params, lr=0.1)


# -- validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        lambda ps: optim.SGD(ps, lr=-0.1),
        lambda ps: optim.SGD(ps, lr=float("nan")),
        lambda ps: optim.Adam(ps, lr=-1e-3),
        lambda ps: optim.AdamW(ps, lr=-1e-3),
        lambda ps: optim.Adam(ps, betas=(1.0, 0.999)),
        lambda ps: optim.Adam(ps, betas=(-0.1, 0.999)),
        lambda ps: optim.Adam(ps, betas=(0.9, 1.0)),
        lambda ps: optim.Adam(ps, betas=(0.9, -0.5)),
        lambda ps: optim.AdamW(ps, betas=(0.9, 1.5)),
        lambda ps: optim.Adam(ps, eps=0.0),
        lambda ps: optim.Adam(ps, eps=-1e-8),
        lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1e-4),
        lambda ps: optim.Adam(ps, weight_decay=-1e-4),
        lambda ps: optim.AdamW(ps, weight_decay=-1e-4),
        lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5),
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
        lambda ps: optim.SGD(ps, lr=0.1, nesterov=True),
        lambda ps: optim.SGD([], lr=0.1),
        lambda ps: optim.Adam([]),
        lambda ps: optim.SGD(ps + ps[:1], lr=0.1),
        lambda ps: optim.SGD([{"params": ps[:2]}, {"params": ps[1:]}], lr=0.1),
        lambda ps: optim.SGD([{"params": ps, "momentun": 0.9}], lr=0.1),
        lambda ps: optim.Adam([{"params": ps, "beta": (0.9, 0.99)}]),
        lambda ps: optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": -1.0}]),
        lambda ps: optim.SGD([{"params": []}], lr=0.1),
    ],
    ids=[
        "sgd-neg-lr",
        "sgd-nan-lr",
        "adam-neg-lr",
        "adamw-neg-lr",
        "beta1=1",
        "beta1<0",
        "beta2=1",
        "beta2<0",
        "adamw-beta2>1",
        "eps=0",
        "eps<0",
        "sgd-neg-wd",
        "adam-neg-wd",
        "adamw-neg-wd",
        "neg-momentum",
        "nesterov-dampening",
        "nesterov-no-momentum",
        "sgd-empty",
        "adam-empty",
        "param-twice",
        "param-in-two-groups",
        "unknown-option",
        "unknown-adam-option",
        "group-neg-lr",
        "empty-group",
    ],
)
def test_invalid_construction_raises_value_error(build):
    params = make_params(np.float32)
    values = [p.data.copy() for p in params]
    with pytest.raises(ValueError):
        build(params)
    # a refused optimizer leaves the parameters alone
    for p, v in zip(params, values):
        assert np.array_equal(p.data, v)


def test_error_messages_name_the_problem():
    params = make_params(np.float32)
    with pytest.raises(ValueError, match="momentun"):
        optim.SGD([{"params": params, "momentun": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match="-0.1"):
        optim.SGD(params, lr=-0.1)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD(params + params[:1], lr=0.1)


def test_non_parameters_are_rejected():
    with pytest.raises(TypeError):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD(fastnn.Parameter(np.zeros(3)), lr=0.1)
