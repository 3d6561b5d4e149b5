"""Adagrad, RMSprop, Adadelta, Adamax and NAdam (fastnn.optim) and gradient clipping.

Each optimizer against a NumPy reference written from the formula in its docstring
(float32 and float64), against torch.optim step for step in float64 with every option,
parameter groups and a parameter frozen for a while (torch skips a parameter whose
.grad is None; fastnn one with requires_grad=False, and both count steps per
parameter), on 1 and 2 threads above the threading threshold, through state_dict round
trips, with the lr setter and input validation. Then clip_grad_norm_ /
clip_grad_value_ against torch.nn.utils, and the Trainer's clip_grad_norm."""

import copy
import functools
import itertools
import math

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.losses import CrossEntropyLoss
from helpers import grad_stream, make_params as _make_params, tols

SHAPES = [(7, 5), (5,), (3, 7), (3,), (1,)]
DTYPES = [np.float32, np.float64]
NAMES = ["Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam"]


# -- helpers ----------------------------------------------------------------------------
make_params = functools.partial(_make_params, shapes=SHAPES)


def run(opt, params, grads, frozen=None):
    """Step `opt` through `grads`; frozen(step, i) -> True makes parameter i frozen at
    that step (it still gets a non-zero gradient, which must be ignored)."""
    for k, gs in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad[...] = g
            if frozen is not None:
                p.requires_grad = not frozen(k, i)
        opt.step()


# -- NumPy references of the docstring formulas -----------------------------------------
# Each rule updates one parameter array p with gradient g at its own step count t
# (1-based), keeping its state in the dict st; hyper-parameters as keyword arguments.
# The arithmetic runs in p's dtype (Python floats are "weak" scalars in NumPy 2).
def rule_adagrad(
    p, g, st, t, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10
):
    s = st.setdefault("sum", np.full_like(p, initial_accumulator_value))
    clr = lr / (1 + (t - 1) * lr_decay)
    g = g + weight_decay * p
    st["sum"] = s = s + g * g
    return p - clr * g / (np.sqrt(s) + eps)


def rule_rmsprop(
    p, g, st, t, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False
):
    g = g + weight_decay * p
    v = st["v"] = alpha * st.get("v", np.zeros_like(p)) + (1 - alpha) * g * g
    if centered:
        gbar = st["gbar"] = alpha * st.get("gbar", np.zeros_like(p)) + (1 - alpha) * g
        d = np.sqrt(v - gbar * gbar) + eps
    else:
        d = np.sqrt(v) + eps
    if momentum > 0:
        b = st["b"] = momentum * st.get("b", np.zeros_like(p)) + g / d
        return p - lr * b
    return p - lr * g / d


def rule_adadelta(p, g, st, t, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    g = g + weight_decay * p
    v = st["v"] = rho * st.get("v", np.zeros_like(p)) + (1 - rho) * g * g
    u = st.get("u", np.zeros_like(p))
    delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
    st["u"] = rho * u + (1 - rho) * delta * delta
    return p - lr * delta


def rule_adamax(p, g, st, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    g = g + weight_decay * p
    m = st["m"] = b1 * st.get("m", np.zeros_like(p)) + (1 - b1) * g
    u = st["u"] = np.maximum(b2 * st.get("u", np.zeros_like(p)), np.abs(g) + eps)
    return p - lr / (1 - b1**t) * m / u


def rule_nadam(
    p,
    g,
    st,
    t,
    lr=2e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    momentum_decay=4e-3,
    decoupled_weight_decay=False,
):
    b1, b2 = betas

    def mu(k):
        return b1 * (1 - 0.5 * 0.96 ** (k * momentum_decay))

    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    prod = st["prod"] = st.get("prod", 1.0) * mu(t)  # Pi_t, a Python float
    prod_next = prod * mu(t + 1)
    m = st["m"] = b1 * st.get("m", np.zeros_like(p)) + (1 - b1) * g
    v = st["v"] = b2 * st.get("v", np.zeros_like(p)) + (1 - b2) * g * g
    d = np.sqrt(v / (1 - b2**t)) + eps
    return p - lr * (1 - mu(t)) / (1 - prod) * g / d - lr * mu(t + 1) / (1 - prod_next) * m / d


RULES = {
    "Adagrad": rule_adagrad,
    "RMSprop": rule_rmsprop,
    "Adadelta": rule_adadelta,
    "Adamax": rule_adamax,
    "NAdam": rule_nadam,
}
DEFAULT_LR = {"Adagrad": 1e-2, "RMSprop": 1e-2, "Adadelta": 1.0, "Adamax": 2e-3, "NAdam": 2e-3}


class Reference:
    """Parameters updated by a rule, each with its own hyper-parameters, state and
    step count; frozen parameters are skipped (their count does not advance)."""

    def __init__(self, name, init, hparams):
        self.rule = RULES[name]
        self.p = [np.array(x, copy=True) for x in init]
        self.hp = [dict(h) for h in hparams]
        self.st = [{} for _ in init]
        self.t = [0] * len(init)

    def step(self, grads, frozen=()):
        for i, g in enumerate(grads):
            if i in frozen:
                continue
            self.t[i] += 1
            self.p[i] = self.rule(self.p[i], g, self.st[i], self.t[i], **self.hp[i])


def group_hparams(name, opts, groups, n):
    """Per-parameter hyper-parameters: the optimizer's defaults, then opts, then the
    overrides of each parameter's group."""
    base = dict(dict(lr=DEFAULT_LR[name]), **opts)
    hp = [dict(base) for _ in range(n)]
    for g in groups or ():
        for i in g["params"]:
            hp[i].update({k: v for k, v in g.items() if k != "params"})
    return hp


# -- option sets --------------------------------------------------------------------------
CASES = {
    "Adagrad": [
        dict(lr=0.05),
        dict(lr=0.05, lr_decay=0.05),
        dict(lr=0.05, initial_accumulator_value=0.5),
        dict(lr=0.05, weight_decay=0.05),
        dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.3, weight_decay=0.05, eps=1e-6),
    ],
    "RMSprop": [
        dict(lr=0.01, alpha=a, centered=c, momentum=m, weight_decay=w)
        for a, c, m, w in itertools.product([0.99, 0.8], [False, True], [0.0, 0.9], [0.0, 0.05])
    ],
    "Adadelta": [
        dict(),
        dict(rho=0.5),
        dict(weight_decay=0.05),
        dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.05),
    ],
    "Adamax": [
        dict(),
        dict(lr=0.01, betas=(0.8, 0.95)),
        dict(lr=0.01, weight_decay=0.05),
        dict(lr=0.01, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.05),
    ],
    "NAdam": [
        dict(),
        dict(lr=0.01, momentum_decay=0.02),
        dict(lr=0.01, weight_decay=0.05),
        dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True),
        dict(
            lr=0.01,
            betas=(0.8, 0.95),
            eps=1e-4,
            weight_decay=0.05,
            momentum_decay=0.01,
            decoupled_weight_decay=True,
        ),
    ],
}
ALL_CASES = [(name, opts) for name in NAMES for opts in CASES[name]]
ALL_IDS = [
    f"{n}-" + ("-".join(f"{k}={v}" for k, v in o.items()) or "defaults") for n, o in ALL_CASES
]
# One option set per optimizer that switches everything on.
FULL = {
    "Adagrad": CASES["Adagrad"][-1],
    "RMSprop": dict(lr=0.01, alpha=0.9, centered=True, momentum=0.9, weight_decay=0.05),
    "Adadelta": CASES["Adadelta"][-1],
    "Adamax": CASES["Adamax"][-1],
    "NAdam": CASES["NAdam"][-1],
}


def test_every_option_changes_the_result():
    """The reference tests would not notice an option that is silently ignored if it
    made no difference on the gradient stream used; make sure each one does."""
    grads = grad_stream(SHAPES, 25)
    for name, opts in ALL_CASES:
        opts = dict(dict(lr=DEFAULT_LR[name]), **opts)
        base = dict(CASES[name][0], lr=opts["lr"])  # the first case: default options
        if opts == dict(dict(lr=DEFAULT_LR[name]), **base):
            continue
        finals = []
        for kw in (base, opts):
            params = make_params(np.float64)
            run(getattr(optim, name)(params, **kw), params, grads)
            finals.append(np.concatenate([p.data.ravel() for p in params]))
        assert not np.allclose(finals[0], finals[1], rtol=1e-6), (name, opts)


# -- against the NumPy reference --------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,opts", ALL_CASES, ids=ALL_IDS)
def test_matches_numpy_reference_of_the_docstring(name, opts, dtype):
    params = make_params(dtype)
    ref = Reference(name, [p.data for p in params], group_hparams(name, opts, None, 5))
    opt = getattr(optim, name)(params, **opts)
    for k, gs in enumerate(grad_stream(SHAPES, 25, dtype=dtype)):
        run(opt, params, [gs])
        ref.step(gs)
        for p, r in zip(params, ref.p):
            assert p.dtype == dtype
            np.testing.assert_allclose(
                p.data, r, **tols(dtype), err_msg=f"{name} diverged at step {k + 1}"
            )


def groups_for(name, opts):
    """Two groups: different weight decay, and the second a 3x larger lr."""
    lr = opts.get("lr", DEFAULT_LR[name])
    return [
        dict(params=[0, 2], weight_decay=0.02),
        dict(params=[1, 3, 4], weight_decay=0.0, lr=3 * lr),
    ]


def frozen_schedule(k, i):
    """Parameter 2 (end of group 0) frozen for steps 10..39, parameter 3 (inside group
    1) frozen for its first 15 steps: steps counts differ and the flat buffer splits
    into several runs."""
    return (i == 2 and 10 <= k < 40) or (i == 3 and k < 15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_groups_and_frozen_parameters_match_numpy_reference(name, dtype):
    opts = FULL[name]
    groups = groups_for(name, opts)
    params = make_params(dtype)
    hp = group_hparams(name, opts, groups, 5)
    if name == "Adagrad":  # a per-group initial accumulator (torch ignores that one)
        groups[1]["initial_accumulator_value"] = 1.5
        for i in groups[1]["params"]:
            hp[i]["initial_accumulator_value"] = 1.5
    ref = Reference(name, [p.data for p in params], hp)
    opt = getattr(optim, name)(
        [dict(g, params=[params[i] for i in g["params"]]) for g in groups], **opts
    )
    before = None
    for k, gs in enumerate(grad_stream(SHAPES, 50, dtype=dtype)):
        if k == 10:
            before = params[2].data.copy()
        if k == 40:
            assert np.array_equal(params[2].data, before)  # untouched while frozen
        run(opt, params, [gs], frozen=lambda _, i, k=k: frozen_schedule(k, i))
        ref.step(gs, frozen={i for i in range(5) if frozen_schedule(k, i)})
    for p, r in zip(params, ref.p):
        np.testing.assert_allclose(p.data, r, **tols(dtype))
    assert steps_by_parameter(opt, params) == ref.t == [50, 50, 20, 35, 50]


# -- against torch.optim ----------------------------------------------------------------
@pytest.fixture
def torch64():
    """torch with float64 as its default dtype while the test runs: torch keeps NAdam's
    momentum product (and every optimizer's step count) in the default dtype, so with
    float32 it would lose ~1e-7 against fastnn's float64 product."""
    torch = pytest.importorskip("torch")
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch
    finally:
        torch.set_default_dtype(prev)


def _torch_run(torch, name, opts, init, grads, groups=None, frozen=None):
    tparams = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in init]
    target = (
        tparams
        if groups is None
        else [dict(g, params=[tparams[i] for i in g["params"]]) for g in groups]
    )
    topt = getattr(torch.optim, name)(target, foreach=False, **opts)
    history = []
    for k, gs in enumerate(grads):
        for i, (t, g) in enumerate(zip(tparams, gs)):
            skip = frozen is not None and frozen(k, i)
            t.grad = None if skip else torch.tensor(g, dtype=torch.float64)
        topt.step()
        history.append([t.detach().numpy().copy() for t in tparams])
    steps = [int(topt.state[t]["step"]) if t in topt.state else 0 for t in tparams]
    return history, steps


def _fastnn_run(name, opts, init, grads, groups=None, frozen=None):
    params = [fastnn.Parameter(x) for x in init]
    target = (
        params
        if groups is None
        else [dict(g, params=[params[i] for i in g["params"]]) for g in groups]
    )
    opt = getattr(optim, name)(target, **opts)
    history = []
    for k, gs in enumerate(grads):
        run(opt, params, [gs], frozen=None if frozen is None else (lambda _, i, k=k: frozen(k, i)))
        history.append([p.data.copy() for p in params])
    return history, steps_by_parameter(opt, params)


def steps_by_parameter(opt, params):
    """The per-parameter step counts of state_dict()['state']['step'] (kept in the
    optimizer's order: group by group), listed in the order of `params`."""
    order = [p for g in opt.param_groups for p in g["params"]]
    steps = opt.state_dict()["state"]["step"].tolist()
    return [steps[next(j for j, q in enumerate(order) if q is p)] for p in params]


def _assert_histories_close(fh, th, rtol=1e-12, atol=1e-14):
    assert len(fh) == len(th)
    for step, (fs, ts) in enumerate(zip(fh, th)):
        for i, (f, t) in enumerate(zip(fs, ts)):
            np.testing.assert_allclose(
                f, t, rtol=rtol, atol=atol, err_msg=f"parameter {i} diverged at step {step + 1}"
            )


@pytest.mark.parametrize("name,opts", ALL_CASES, ids=ALL_IDS)
def test_matches_torch_step_for_step(torch64, name, opts):
    init = [p.data for p in make_params(np.float64, seed=3)]
    grads = grad_stream(SHAPES, 120, seed=4)
    th, tsteps = _torch_run(torch64, name, opts, init, grads)
    fh, fsteps = _fastnn_run(name, opts, init, grads)
    _assert_histories_close(fh, th)
    assert fsteps == tsteps == [120] * 5


@pytest.mark.parametrize("name", NAMES)
def test_groups_and_frozen_then_unfrozen_match_torch(torch64, name):
    """Groups with their own lr and weight decay; parameter 2 frozen for steps 10..39
    and parameter 3 for its first 15 steps (torch: .grad None, so no state and no step
    count; fastnn: requires_grad=False). Each continues from its own step count."""
    opts = FULL[name]
    groups = groups_for(name, opts)
    init = [p.data for p in make_params(np.float64, seed=5)]
    grads = grad_stream(SHAPES, 110, seed=6)
    th, tsteps = _torch_run(torch64, name, opts, init, grads, groups, frozen_schedule)
    fh, fsteps = _fastnn_run(name, opts, init, grads, groups, frozen_schedule)
    _assert_histories_close(fh, th)
    assert fsteps == tsteps == [110, 110, 80, 95, 110]


@pytest.mark.parametrize("name", ["RMSprop", "NAdam"])
def test_boolean_options_per_group_match_torch(torch64, name):
    """centered / momentum (RMSprop) and decoupled_weight_decay / momentum_decay
    (NAdam) set in one group only."""
    if name == "RMSprop":
        opts = dict(lr=0.01)
        groups = [
            dict(params=[0, 2], centered=True, momentum=0.5),
            dict(params=[1, 3, 4], alpha=0.9, weight_decay=0.1),
        ]
    else:
        opts = dict(lr=0.01, weight_decay=0.1)
        groups = [
            dict(params=[0, 2], momentum_decay=0.02, decoupled_weight_decay=True),
            dict(params=[1, 3, 4], betas=(0.7, 0.9)),
        ]
    init = [p.data for p in make_params(np.float64, seed=7)]
    grads = grad_stream(SHAPES, 100, seed=8)
    th, _ = _torch_run(torch64, name, opts, init, grads, groups, frozen_schedule)
    fh, _ = _fastnn_run(name, opts, init, grads, groups, frozen_schedule)
    _assert_histories_close(fh, th)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_follow_torch(name):
    torch = pytest.importorskip("torch")
    ours = getattr(optim, name)(make_params(np.float32)).param_groups[0]
    theirs = getattr(torch.optim, name)([torch.zeros(3, requires_grad=True)]).defaults
    for key, value in ours.items():
        if key == "params":
            continue
        expected = theirs[key]
        assert (tuple(value) if isinstance(value, (list, tuple)) else value) == (
            tuple(expected) if isinstance(expected, (list, tuple)) else expected
        ), key


# -- threads ------------------------------------------------------------------------------
BIG_SHAPES = [(317, 211), (7,), (40_001,)]  # above the one-thread threshold, odd sizes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_large_buffers_match_reference_for_any_thread_count(name, dtype, use_threads):
    """Large enough for the multi-threaded kernel path: bit for bit the same on 1 and
    2 threads, and the same numbers as the NumPy reference."""
    opts = FULL[name]
    grads = grad_stream(BIG_SHAPES, 4, dtype=dtype)
    init = [p.data.copy() for p in make_params(dtype, shapes=BIG_SHAPES)]
    ref = Reference(name, init, group_hparams(name, opts, None, len(init)))
    for gs in grads:
        ref.step(gs)
    finals = []
    for n in (1, 2):
        with use_threads(n):
            params = [fastnn.Parameter(x) for x in init]
            run(getattr(optim, name)(params, **opts), params, grads)
            finals.append([p.data.copy() for p in params])
    for a, b, r in zip(finals[0], finals[1], ref.p):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, r, **tols(dtype))


# -- state_dict ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bit_for_bit(name, dtype):
    """Save after 12 steps (parameter 3 frozen for steps 4..8, so step counts and
    NAdam's momentum products differ between parameters), continue 10 more; a fresh
    optimizer over other weights, loaded with the saved weights and state, ends
    identical."""
    opts = FULL[name]
    grads = grad_stream(SHAPES, 22, dtype=dtype)

    def frozen(k, i):
        return i == 3 and 4 <= k < 9

    params = make_params(dtype)
    opt = getattr(optim, name)(params, **opts)
    run(opt, params, grads[:12], frozen)
    saved_w = [p.data.copy() for p in params]
    saved = copy.deepcopy(opt.state_dict())
    run(opt, params, grads[12:])
    expected = [p.data.copy() for p in params]

    params2 = make_params(dtype, seed=99)
    opt2 = getattr(optim, name)(params2, **opts)
    opt2.lr = 0.123  # overwritten by the load
    run(opt2, params2, grads[:3])  # state overwritten by the load too
    for p, w in zip(params2, saved_w):
        p.data = w
    opt2.load_state_dict(saved)
    assert opt2.lr == opt.param_groups[0]["lr"]
    run(opt2, params2, grads[12:])
    for a, b in zip(params2, expected):
        assert np.array_equal(a.data, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert set(s1) == set(s2)
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), k


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_through_a_trainer_checkpoint(name, tmp_path):
    """The same through Trainer.save_checkpoint / load_checkpoint (a safetensors file:
    the int64 step counts and NAdam's float64 products in a float32 model)."""
    X = np.random.default_rng(0).normal(size=(48, 6)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 48)

    def build(seed):
        fastnn.seed(seed)
        model = fastnn.Sequential(fastnn.Dense(6, 8), fastnn.ReLU(), fastnn.Dense(8, 3))
        opt = getattr(optim, name)(model.parameters(), **FULL[name])
        return model, fastnn.Trainer(model, CrossEntropyLoss(), opt, metrics=())

    model, trainer = build(0)
    trainer.fit(X, y, epochs=2, batch_size=16, verbose=0)
    trainer.save_checkpoint(tmp_path / "ckpt.safetensors")
    trainer.fit(X, y, epochs=4, batch_size=16, verbose=0)
    expected = [p.data.copy() for p in model.parameters()]

    model2, trainer2 = build(1)
    trainer2.load_checkpoint(tmp_path / "ckpt.safetensors")
    trainer2.fit(X, y, epochs=4, batch_size=16, verbose=0)
    for p, e in zip(model2.parameters(), expected):
        assert np.array_equal(p.data, e)


def test_load_state_dict_rejects_state_of_another_configuration():
    centered = optim.RMSprop(make_params(np.float64), centered=True)
    plain = optim.RMSprop(make_params(np.float64))
    with pytest.raises(ValueError):
        plain.load_state_dict(centered.state_dict())  # it has no grad_avg buffer
    with pytest.raises(ValueError):
        optim.Adamax(make_params(np.float64)).load_state_dict(
            optim.NAdam(make_params(np.float64)).state_dict()
        )


# -- lr setter ------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_lr_setter_sets_every_group_and_is_used_from_the_next_step(name):
    opts = FULL[name]
    groups = groups_for(name, opts)
    params = make_params(np.float64)
    opt = getattr(optim, name)(
        [dict(g, params=[params[i] for i in g["params"]]) for g in groups], **opts
    )
    ref = Reference(name, [p.data for p in params], group_hparams(name, opts, groups, 5))
    for k, gs in enumerate(grad_stream(SHAPES, 12)):
        if k == 6:
            opt.lr = 0.0125
            assert opt.lr == 0.0125
            assert [g["lr"] for g in opt.param_groups] == [0.0125, 0.0125]
            for h in ref.hp:
                h["lr"] = 0.0125
        run(opt, params, [gs])
        ref.step(gs)
    for p, r in zip(params, ref.p):
        np.testing.assert_allclose(p.data, r, rtol=1e-10, atol=1e-12)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            opt.lr = bad
    assert opt.lr == 0.0125
    opt.lr = 0  # zero is allowed: the weights then stay put
    before = [p.data.copy() for p in params]
    run(opt, params, grad_stream(SHAPES, 1, seed=5))
    for p, b in zip(params, before):
        assert np.array_equal(p.data, b)


# -- validation ---------------------------------------------------------------------------
BAD = {
    "negative lr": [lambda ps, n=n: getattr(optim, n)(ps, lr=-1e-3) for n in NAMES],
    "nan lr": [lambda ps, n=n: getattr(optim, n)(ps, lr=float("nan")) for n in NAMES],
    "eps = 0": [lambda ps, n=n: getattr(optim, n)(ps, eps=0.0) for n in NAMES],
    "eps < 0": [lambda ps, n=n: getattr(optim, n)(ps, eps=-1e-8) for n in NAMES],
    "negative weight_decay": [
        lambda ps, n=n: getattr(optim, n)(ps, weight_decay=-1e-4) for n in NAMES
    ],
    "nan weight_decay": [
        lambda ps, n=n: getattr(optim, n)(ps, weight_decay=float("nan")) for n in NAMES
    ],
    "unknown group option": [
        lambda ps, n=n: getattr(optim, n)([{"params": ps, "momentun": 0.9}]) for n in NAMES
    ],
    "bad value in the second group": [
        lambda ps, n=n: getattr(optim, n)([{"params": ps[:2]}, {"params": ps[2:], "lr": -1}])
        for n in NAMES
    ],
    "betas": [
        lambda ps, n=n, b=b: getattr(optim, n)(ps, betas=b)
        for n in ("Adamax", "NAdam")
        for b in [(1.0, 0.999), (-0.1, 0.999), (0.9, 1.0), (0.9, -0.5), (0.9, 1.5)]
    ],
    "negative lr_decay": [lambda ps: optim.Adagrad(ps, lr_decay=-0.1)],
    "negative initial_accumulator_value": [
        lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1.0)
    ],
    "negative momentum": [lambda ps: optim.RMSprop(ps, momentum=-0.5)],
    "alpha outside [0, 1]": [
        lambda ps, a=a: optim.RMSprop(ps, alpha=a) for a in (-0.1, 1.01, float("nan"))
    ],
    "rho outside [0, 1]": [
        lambda ps, r=r: optim.Adadelta(ps, rho=r) for r in (-0.1, 1.5, float("nan"))
    ],
    "negative momentum_decay": [lambda ps: optim.NAdam(ps, momentum_decay=-4e-3)],
    "group option of another optimizer": [
        lambda ps: optim.Adagrad([{"params": ps, "momentum": 0.9}]),
        lambda ps: optim.RMSprop([{"params": ps, "betas": (0.9, 0.99)}]),
        lambda ps: optim.Adadelta([{"params": ps, "alpha": 0.9}]),
        lambda ps: optim.Adamax([{"params": ps, "amsgrad": True}]),
        lambda ps: optim.NAdam([{"params": ps, "decoupled": True}]),
    ],
}
BAD_CASES = [(why, i, fn) for why, fns in BAD.items() for i, fn in enumerate(fns)]


@pytest.mark.parametrize("why,i,build", BAD_CASES, ids=[f"{why}-{i}" for why, i, _ in BAD_CASES])
def test_invalid_construction_raises_value_error(why, i, build):
    params = make_params(np.float32)
    values = [p.data.copy() for p in params]
    with pytest.raises(ValueError):
        build(params)
    for p, v in zip(params, values):  # a refused optimizer leaves the parameters alone
        assert np.array_equal(p.data, v)
        assert p._owner is None


def test_boundary_values_are_accepted():
    """The edges of the valid ranges (as torch accepts them)."""
    ps = make_params(np.float32)
    optim.RMSprop(ps, alpha=0.0)
    optim.RMSprop(ps, alpha=1.0, momentum=0.0)
    optim.Adadelta(ps, rho=0.0)
    optim.Adadelta(ps, rho=1.0)
    optim.Adamax(ps, betas=(0.0, 0.0))
    optim.NAdam(ps, betas=(0.0, 0.0), momentum_decay=0.0)
    optim.Adagrad(ps, lr=0.0, lr_decay=0.0, initial_accumulator_value=0.0)


def test_adagrad_zero_gradient_stays_finite():
    """A gradient entry that is exactly 0 from the start (a dead unit) with a zero
    accumulator: eps keeps the update 0/(0 + eps) = 0 rather than NaN."""
    p = fastnn.Parameter(np.array([1.0, 2.0], np.float32))
    opt = optim.Adagrad([p], lr=0.1)
    p.grad[...] = [0.0, 1.0]
    for _ in range(3):
        opt.step()
    assert np.isfinite(p.data).all() and p.data[0] == 1.0


# -- clip_grad_norm_ / clip_grad_value_ ---------------------------------------------------
def _grads(seed=11, shapes=SHAPES, scale=3.0):
    r = np.random.default_rng(seed)
    return [scale * r.normal(size=s) for s in shapes]


def _fastnn_with_grads(grads, dtype=np.float64, in_optimizer=True):
    params = [fastnn.Parameter(np.zeros(g.shape, dtype)) for g in grads]
    if in_optimizer:
        optim.SGD(params, lr=0.1)
    for p, g in zip(params, grads):
        p.grad[...] = g
    return params


@pytest.mark.parametrize("in_optimizer", [True, False], ids=["flat", "separate"])
@pytest.mark.parametrize("fraction", [0.1, 0.8, 2.0], ids=["clip-x0.1", "clip-x0.8", "no-clip"])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 3.0, 1.0], ids=["l2", "inf", "l3", "l1"])
def test_clip_grad_norm_matches_torch(norm_type, fraction, in_optimizer):
    """max_norm a fraction of the gradients' norm (0.8: a scale factor close to 1)."""
    torch = pytest.importorskip("torch")
    grads = _grads()
    flat = np.concatenate([g.ravel() for g in grads])
    expected = (
        np.abs(flat).max()
        if norm_type == math.inf
        else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    )
    max_norm = fraction * expected
    params = _fastnn_with_grads(grads, in_optimizer=in_optimizer)
    total = optim.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tparams, grads):
        t.grad = torch.tensor(g)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(float(ttotal), rel=1e-13)
    assert total == pytest.approx(expected, rel=1e-12)  # the pre-clip norm
    for p, t, g in zip(params, tparams, grads):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-13, atol=0)
        if max_norm > total:
            assert np.array_equal(p.grad, g)  # nothing to clip: gradients untouched
        else:
            np.testing.assert_allclose(p.grad, g * max_norm / (total + 1e-6), rtol=1e-13)


def test_clip_grad_norm_float32_accumulates_in_double():
    grads = [g.astype(np.float32) for g in _grads(shapes=[(1000, 300), (7,)], scale=1e-3)]
    params = _fastnn_with_grads(grads, np.float32)
    total = optim.clip_grad_norm_(params, 1e-3)
    exact = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert total == pytest.approx(exact, rel=1e-12)
    after = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in params))
    assert after == pytest.approx(1e-3 * exact / (exact + 1e-6), rel=1e-6)
    assert all(p.grad.dtype == np.float32 for p in params)


class _CountingKernels:
    """Stands in for fastnn._kernels in fastnn.optim and records sumsq calls."""

    def __init__(self, real):
        self._real, self.sumsq_calls = real, []

    def sumsq(self, x):
        self.sumsq_calls.append(x)
        return self._real.sumsq(x)

    def __getattr__(self, name):
        return getattr(self._real, name)


class _NumpyAbsSpy:
    """fastnn.optim's `np` with `abs` recording its argument (the inf- and p-norm paths
    take np.abs of each gradient array once)."""

    def __init__(self, real):
        self._real, self.calls = real, []

    def abs(self, x, *a, **k):
        self.calls.append(x)
        return self._real.abs(x, *a, **k)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 3.0], ids=["l2", "inf", "l3"])
def test_clip_grad_norm_is_one_flat_reduction_over_an_optimizers_parameters(monkeypatch, norm_type):
    grads = _grads(shapes=[(40, 30), (30,), (10, 40), (10,)])
    params = _fastnn_with_grads(grads)
    expected = optim.clip_grad_norm_(
        _fastnn_with_grads(grads, in_optimizer=False), 0.1, norm_type=norm_type
    )
    if norm_type == 2.0:
        spy = _CountingKernels(optim._kernels)
        monkeypatch.setattr(optim, "_kernels", spy)
        seen = spy.sumsq_calls
    else:
        spy = _NumpyAbsSpy(np)
        monkeypatch.setattr(optim, "np", spy)
        seen = spy.calls
    total = optim.clip_grad_norm_(params, 0.1, norm_type=norm_type)
    assert total == pytest.approx(expected, rel=1e-13)
    assert len(seen) == 1 and seen[0].size == sum(g.size for g in grads)
    if norm_type != 3.0:  # (the p-norm path reduces a float64 copy)
        assert np.shares_memory(seen[0], params[0].grad)
        assert np.shares_memory(seen[0], params[-1].grad)
    # a subset of an optimizer's parameters: one reduction per array
    seen.clear()
    optim.clip_grad_norm_(params[:3], 1e9, norm_type=norm_type)
    assert len(seen) == 3


def test_clip_grad_norm_excludes_frozen_parameters():
    grads = _grads()
    params = _fastnn_with_grads(grads)
    params[1].requires_grad = False
    params[3].requires_grad = False
    total = optim.clip_grad_norm_(params, 0.5)
    trainable = [g for i, g in enumerate(grads) if i not in (1, 3)]
    exact = math.sqrt(sum(float((g**2).sum()) for g in trainable))
    assert total == pytest.approx(exact, rel=1e-13)
    coef = 0.5 / (exact + 1e-6)
    for i, (p, g) in enumerate(zip(params, grads)):
        if i in (1, 3):
            assert np.array_equal(p.grad, g)  # frozen: neither counted nor scaled
        else:
            np.testing.assert_allclose(p.grad, g * coef, rtol=1e-14)
    # the same with the model-level call on a single parameter
    single = optim.clip_grad_norm_(params[0], 1e9)
    assert single == pytest.approx(np.sqrt((params[0].grad ** 2).sum()), rel=1e-13)


def test_clip_grad_norm_validation_and_nonfinite():
    params = _fastnn_with_grads(_grads())
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            optim.clip_grad_norm_(params, bad)
    with pytest.raises(ValueError):
        optim.clip_grad_norm_(params, 1.0, norm_type=0.5)
    params[0].grad[0, 0] = np.inf
    with pytest.raises(RuntimeError):
        optim.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert optim.clip_grad_norm_(params, 1.0) == math.inf


@pytest.mark.parametrize("in_optimizer", [True, False], ids=["flat", "separate"])
def test_clip_grad_value_matches_torch(in_optimizer):
    torch = pytest.importorskip("torch")
    grads = _grads()
    params = _fastnn_with_grads(grads, in_optimizer=in_optimizer)
    params[2].requires_grad = False
    optim.clip_grad_value_(params, 0.7)
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tparams, grads):
        t.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_([t for i, t in enumerate(tparams) if i != 2], 0.7)
    for i, (p, t, g) in enumerate(zip(params, tparams, grads)):
        assert np.array_equal(p.grad, t.grad.numpy())
        if i == 2:
            assert np.array_equal(p.grad, g)
    assert np.abs(np.concatenate([p.grad.ravel() for p in params])).max() > 0.7
    for bad in (0.0, -0.5):
        with pytest.raises(ValueError):
            optim.clip_grad_value_(params, bad)


# -- Trainer(clip_grad_norm=...) ------------------------------------------------------
def _clip_model(seed=0):
    fastnn.seed(seed)
    return fastnn.Sequential(
        fastnn.Dense(5, 7, dtype=np.float64), fastnn.Tanh(), fastnn.Dense(7, 3, dtype=np.float64)
    )


def _grad_at(model, X, y):
    """The loss gradients of a copy of `model` on (X, y)."""
    twin = copy.deepcopy(model)
    loss = CrossEntropyLoss()
    loss(twin(X), y)
    twin.backward(loss.backward())
    return [p.grad.copy() for p in twin.parameters()]


def _norm(grads):
    return math.sqrt(sum(float((a**2).sum()) for a in grads))


def test_trainer_clips_with_the_pre_clip_grad_norm():
    """One full batch per epoch with SGD: the logged 'grad_norm' is the norm of the
    gradient at the initial weights, and the update is that gradient scaled by
    max_norm / (norm + 1e-6)."""
    r = np.random.default_rng(0)
    X, y = 3 * r.normal(size=(40, 5)), r.integers(0, 3, 40)
    model = _clip_model()
    g = _grad_at(model, X, y)
    norm = _norm(g)
    max_norm = norm / 4
    w0 = [p.data.copy() for p in model.parameters()]
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5), clip_grad_norm=max_norm
    )
    hist = trainer.fit(X, y, epochs=1, batch_size=40, shuffle=False, verbose=0)
    assert hist["grad_norm"] == [pytest.approx(norm, rel=1e-12)]
    coef = max_norm / (norm + 1e-6)
    for p, w, a in zip(model.parameters(), w0, g):
        np.testing.assert_allclose(p.data, w - 0.5 * coef * a, rtol=1e-12, atol=1e-14)


def test_trainer_logs_the_epoch_mean_of_the_grad_norms():
    """lr = 0 keeps the weights, so each batch's gradient norm can be computed aside:
    'grad_norm' is their mean over the epoch's batches."""
    r = np.random.default_rng(1)
    X, y = 3 * r.normal(size=(30, 5)), r.integers(0, 3, 30)
    model = _clip_model()
    norms = [_norm(_grad_at(model, X[i : i + 10], y[i : i + 10])) for i in (0, 10, 20)]
    assert max(norms) > 1.05 * min(norms)
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.0), clip_grad_norm=0.01
    )
    hist = trainer.fit(X, y, epochs=2, batch_size=10, shuffle=False, verbose=0)
    assert hist["grad_norm"] == [pytest.approx(np.mean(norms), rel=1e-12)] * 2


def test_trainer_logs_no_grad_norm_without_clipping_and_rejects_bad_values():
    r = np.random.default_rng(0)
    X, y = r.normal(size=(20, 5)), r.integers(0, 3, 20)
    model = _clip_model()
    hist = fastnn.Trainer(model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1)).fit(
        X, y, epochs=2, verbose=0
    )
    assert "grad_norm" not in hist.history and len(hist["lr"]) == 2
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            fastnn.Trainer(
                model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), clip_grad_norm=bad
            )
