"""Learning-rate schedules (fastnn.schedules): every schedule against the matching
torch.optim.lr_scheduler sequence (two parameter groups with different base lrs, 60
steps), the step-decay rule written out by hand, state_dict round trips, the
Trainer's stepping (per epoch, per optimizer step, ReduceOnPlateau on a monitored
figure) and argument validation."""

import copy
import json
import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn import schedules as S
from fastnn.losses import CrossEntropyLoss

BASE_LRS = [0.1, 0.03]
STEPS = 60


# -- helpers ----------------------------------------------------------------------------
def fastnn_opt(base_lrs=BASE_LRS):
    params = [fastnn.Parameter(np.zeros(3)), fastnn.Parameter(np.zeros(2))]
    return optim.SGD([dict(params=[p], lr=lr) for p, lr in zip(params, base_lrs)], lr=1.0)


def torch_opt(torch, base_lrs=BASE_LRS):
    params = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    return torch.optim.SGD([dict(params=[p], lr=lr) for p, lr in zip(params, base_lrs)], lr=1.0)


def lr_sequence(opt, sched, steps=STEPS, metrics=None):
    """The lrs of every group at construction and after each of `steps` steps."""
    out = [[g["lr"] for g in opt.param_groups]]
    for i in range(steps):
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        out.append([g["lr"] for g in opt.param_groups])
    return np.array(out)


def torch_sequence(torch, make, steps=STEPS, metrics=None):
    opt = torch_opt(torch)
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()"
        warnings.simplefilter("ignore")
        sched = make(opt)
        return lr_sequence(opt, sched, steps, metrics)


def assert_lrs_close(got, expected):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def L(torch):
    return torch.optim.lr_scheduler


# Each case: (id, fastnn schedule factory, torch scheduler factory).
CASES = [
    (
        "StepDecay=StepLR",
        lambda o: S.StepDecay(o, step_size=7, gamma=0.5),
        lambda o, L: L.StepLR(o, step_size=7, gamma=0.5),
    ),
    (
        "StepDecay-default-gamma",
        lambda o: S.StepDecay(o, step_size=13),
        lambda o, L: L.StepLR(o, step_size=13),
    ),
    (
        "StepDecay-warmup=Sequential(Constant,StepLR)",
        lambda o: S.StepDecay(o, step_size=7, gamma=0.5, warmup_epochs=5),
        lambda o, L: L.SequentialLR(
            o,
            [L.ConstantLR(o, factor=1.0, total_iters=5), L.StepLR(o, step_size=7, gamma=0.5)],
            milestones=[5],
        ),
    ),
    (
        "StepDecay-warmup-longer-than-step",
        lambda o: S.StepDecay(o, step_size=3, gamma=0.7, warmup_epochs=11),
        lambda o, L: L.SequentialLR(
            o,
            [L.ConstantLR(o, factor=1.0, total_iters=11), L.StepLR(o, step_size=3, gamma=0.7)],
            milestones=[11],
        ),
    ),
    (
        "MultiStep=MultiStepLR",
        lambda o: S.MultiStep(o, milestones=[5, 12, 30], gamma=0.3),
        lambda o, L: L.MultiStepLR(o, milestones=[5, 12, 30], gamma=0.3),
    ),
    (
        "MultiStep-unsorted-repeated",
        lambda o: S.MultiStep(o, milestones=[30, 5, 12, 12], gamma=0.3),
        lambda o, L: L.MultiStepLR(o, milestones=[30, 5, 12, 12], gamma=0.3),
    ),
    (
        "ExponentialDecay=ExponentialLR",
        lambda o: S.ExponentialDecay(o, gamma=0.93),
        lambda o, L: L.ExponentialLR(o, gamma=0.93),
    ),
    (
        "CosineAnnealing=CosineAnnealingLR",
        lambda o: S.CosineAnnealing(o, T_max=17),
        lambda o, L: L.CosineAnnealingLR(o, T_max=17),
    ),
    (
        "CosineAnnealing-eta_min",
        lambda o: S.CosineAnnealing(o, T_max=25, eta_min=1e-3),
        lambda o, L: L.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
    ),
    (
        "CosineAnnealing-restarts-Tmult1=WarmRestarts",
        lambda o: S.CosineAnnealing(o, T_max=7, eta_min=1e-3, restarts=True),
        lambda o, L: L.CosineAnnealingWarmRestarts(o, T_0=7, eta_min=1e-3),
    ),
    (
        "CosineAnnealing-restarts-Tmult2=WarmRestarts",
        lambda o: S.CosineAnnealing(o, T_max=5, restarts=True, T_mult=2),
        lambda o, L: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2),
    ),
    (
        "CosineAnnealing-restarts-Tmult3-eta_min",
        lambda o: S.CosineAnnealing(o, T_max=4, eta_min=2e-3, restarts=True, T_mult=3),
        lambda o, L: L.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=3, eta_min=2e-3),
    ),
    (
        "LinearWarmup=LinearLR-defaults",
        lambda o: S.LinearWarmup(o, warmup_epochs=8),
        lambda o, L: L.LinearLR(o, total_iters=8),
    ),
    (
        "LinearWarmup=LinearLR-start0.1",
        lambda o: S.LinearWarmup(o, warmup_epochs=12, start_factor=0.1),
        lambda o, L: L.LinearLR(o, start_factor=0.1, total_iters=12),
    ),
    (
        "LinearWarmup(after=Cosine)=SequentialLR",
        lambda o: S.LinearWarmup(
            o, 8, start_factor=0.1, after=S.CosineAnnealing(o, T_max=20, eta_min=1e-3)
        ),
        lambda o, L: L.SequentialLR(
            o,
            [
                L.LinearLR(o, start_factor=0.1, total_iters=8),
                L.CosineAnnealingLR(o, T_max=20, eta_min=1e-3),
            ],
            milestones=[8],
        ),
    ),
    (
        "LinearWarmup(after=Cosine-restarts)=SequentialLR",
        lambda o: S.LinearWarmup(
            o, 6, start_factor=0.25, after=S.CosineAnnealing(o, T_max=5, restarts=True, T_mult=2)
        ),
        lambda o, L: L.SequentialLR(
            o,
            [
                L.LinearLR(o, start_factor=0.25, total_iters=6),
                L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2),
            ],
            milestones=[6],
        ),
    ),
    (
        "LinearWarmup(after=StepDecay)=SequentialLR",
        lambda o: S.LinearWarmup(o, 8, start_factor=0.1, after=S.StepDecay(o, 5, 0.5)),
        lambda o, L: L.SequentialLR(
            o, [L.LinearLR(o, start_factor=0.1, total_iters=8), L.StepLR(o, 5, 0.5)], milestones=[8]
        ),
    ),
    # `after` changes the lr as it is built (a milestone at 0): the warmup still starts
    # from the optimizer's initial lrs, as SequentialLR does.
    (
        "LinearWarmup(after=MultiStep-milestone-0)=SequentialLR",
        lambda o: S.LinearWarmup(o, 8, start_factor=0.1, after=S.MultiStep(o, [0, 10], 0.5)),
        lambda o, L: L.SequentialLR(
            o,
            [L.LinearLR(o, start_factor=0.1, total_iters=8), L.MultiStepLR(o, [0, 10], 0.5)],
            milestones=[8],
        ),
    ),
]


@pytest.mark.parametrize("name,make,make_torch", CASES, ids=[c[0] for c in CASES])
def test_schedule_matches_torch(name, make, make_torch):
    torch = pytest.importorskip("torch")
    opt = fastnn_opt()
    got = lr_sequence(opt, make(opt))
    expected = torch_sequence(torch, lambda o: make_torch(o, L(torch)))
    assert_lrs_close(got, expected)
    assert len(np.unique(got[:, 0])) > 2  # the schedule did change the lr
    assert not np.allclose(got[:, 0], got[:, 1])  # each group from its own base lr


def _metric_stream(seed=0):
    """Falls, then plateaus with noise far below the default threshold, then falls
    again and bumps up and down: improvements, bad epochs and reductions all occur."""
    r = np.random.default_rng(seed)
    return np.concatenate(
        [
            np.linspace(1.0, 0.5, 10),
            0.5 + 1e-6 * r.normal(size=15),
            np.linspace(0.49, 0.3, 5),
            0.3 + 0.02 * r.normal(size=30),
        ]
    )


PLATEAU_CASES = [
    dict(),
    dict(patience=3),
    dict(patience=2, factor=0.5),
    dict(patience=2, cooldown=3),
    dict(patience=1, cooldown=2, min_lr=0.004),
    dict(patience=1, min_lr=[0.02, 0.001]),
    dict(patience=1, threshold=0.05),
    dict(patience=1, threshold=0.01, threshold_mode="abs"),
    dict(mode="max", patience=2),
    dict(mode="max", patience=1, threshold=0.01, threshold_mode="abs", factor=0.5),
    dict(mode="max", patience=0, cooldown=1, threshold=0.05),
    dict(patience=0, eps=0.005),
]


@pytest.mark.parametrize("kw", PLATEAU_CASES, ids=[str(k) for k in PLATEAU_CASES])
def test_reduce_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    metrics = _metric_stream()
    if kw.get("mode") == "max":
        metrics = -metrics
    opt = fastnn_opt()
    got = lr_sequence(opt, S.ReduceOnPlateau(opt, **kw), metrics=metrics)
    expected = torch_sequence(torch, lambda o: L(torch).ReduceLROnPlateau(o, **kw), metrics=metrics)
    assert_lrs_close(got, expected)
    assert (np.diff(got[:, 0]) < 0).any()  # it did reduce


@pytest.mark.parametrize("min_delta", [0.01, 0.05])
def test_reduce_on_plateau_min_delta_is_an_absolute_threshold(min_delta):
    """A loss falling by 0.005 per epoch: steady progress for the default relative
    threshold (1e-4), too slow for min_delta."""
    torch = pytest.importorskip("torch")
    metrics = 1.0 - 0.005 * np.arange(STEPS)
    opt = fastnn_opt()
    got = lr_sequence(opt, S.ReduceOnPlateau(opt, patience=1, min_delta=min_delta), metrics=metrics)
    expected = torch_sequence(
        torch,
        lambda o: L(torch).ReduceLROnPlateau(
            o, patience=1, threshold=min_delta, threshold_mode="abs"
        ),
        metrics=metrics,
    )
    assert_lrs_close(got, expected)
    # and it differs from the default relative threshold on this stream
    opt = fastnn_opt()
    rel = lr_sequence(opt, S.ReduceOnPlateau(opt, patience=1), metrics=metrics)
    assert (rel == BASE_LRS).all()
    assert got[-1, 0] < BASE_LRS[0]


def test_reduce_on_plateau_by_hand():
    """patience=2: the third epoch in a row without improvement reduces; then the
    counters start over."""
    opt = fastnn_opt([1.0, 0.5])
    s = S.ReduceOnPlateau(opt, factor=0.5, patience=2)
    lrs = []
    for value in [3.0, 2.0, 2.0, 2.0, 2.5, 1.0, 1.0, 1.0, 1.0, 1.0]:
        s.step(value)
        lrs.append(opt.lr)
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert opt.param_groups[1]["lr"] == 0.125
    assert s.best == 1.0


# -- the step-decay rule ----------------------------------------------------------------
def seed_000_rule(a, X, Y, b, epochs):
    """ "The first X epochs at learning rate a, then every Y epochs divide it by b":
    the lr used in each epoch, in plain Python (the first division comes once Y epochs
    have passed after the first X)."""
    lrs, lr = [], a
    for epoch in range(epochs):
        if epoch > X and (epoch - X) % Y == 0:
            lr = lr / b
        lrs.append(lr)
    return lrs


@pytest.mark.parametrize(
    "a,X,Y,b", [(0.1, 5, 3, 10), (0.5, 0, 4, 2), (1.0, 9, 1, 3), (0.01, 2, 7, 5)]
)
def test_step_decay_is_seed_000_rule(a, X, Y, b):
    expected = seed_000_rule(a, X, Y, b, 40)
    opt = fastnn_opt([a, a / 2])
    s = S.StepDecay(opt, step_size=Y, gamma=1 / b, warmup_epochs=X)
    got = lr_sequence(opt, s, steps=39)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], np.array(expected) / 2, rtol=1e-12)
    assert got[X, 0] == a and (X + Y >= 40 or got[X + Y, 0] < a)


def test_seed_000_rule_through_the_trainer():
    """History['lr'] lists the lr each epoch trained with."""
    X, y = _data(40)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    trainer = fastnn.Trainer(
        model,
        CrossEntropyLoss(),
        opt,
        scheduler=S.StepDecay(opt, step_size=3, gamma=0.1, warmup_epochs=4),
    )
    hist = trainer.fit(X, y, epochs=12, batch_size=20, verbose=0)
    np.testing.assert_allclose(hist["lr"], seed_000_rule(0.1, 4, 3, 10, 12), rtol=1e-12)


# -- state_dict round trips ----------------------------------------------------------------
ROUND_TRIP = [(c[0], c[1]) for c in CASES] + [
    (
        "ReduceOnPlateau-cooldown",
        lambda o: S.ReduceOnPlateau(o, patience=1, cooldown=2, factor=0.5, min_lr=1e-3),
    ),
    (
        "ReduceOnPlateau-max-abs",
        lambda o: S.ReduceOnPlateau(o, mode="max", patience=1, min_delta=0.01),
    ),
]


@pytest.mark.parametrize("split", [4, 23])
@pytest.mark.parametrize("name,make", ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_state_dict_round_trip_continues_identically(name, make, split):
    """Save the optimizer's and the schedule's state (through JSON, as a checkpoint
    does) after `split` steps; a new optimizer and schedule loaded with it produce the
    same lrs as the original from there on."""
    metrics = _metric_stream(2)
    if "max" in name:
        metrics = -metrics
    plateau = name.startswith("ReduceOnPlateau")

    def advance(s, i):
        s.step(metrics[i]) if plateau else s.step()

    opt = fastnn_opt()
    sched = make(opt)
    for i in range(split):
        advance(sched, i)
    saved_sched = json.loads(json.dumps(sched.state_dict()))
    saved_groups = copy.deepcopy(opt.state_dict()["param_groups"])
    expected = []
    for i in range(split, STEPS):
        advance(sched, i)
        expected.append(sched.get_last_lr())

    opt2 = fastnn_opt([0.7, 0.2])  # other base lrs: overwritten by the load
    sched2 = make(opt2)
    for i in range(3):
        advance(sched2, i)
    opt2.load_state_dict(dict(opt2.state_dict(), param_groups=saved_groups))
    sched2.load_state_dict(saved_sched)
    got = []
    for i in range(split, STEPS):
        advance(sched2, i)
        got.append(sched2.get_last_lr())
    assert got == expected


def test_state_dict_holds_the_nested_schedule():
    opt = fastnn_opt()
    s = S.LinearWarmup(opt, 3, after=S.CosineAnnealing(opt, 10, restarts=True))
    for _ in range(7):
        s.step()
    state = s.state_dict()
    assert state["last_epoch"] == 7 and state["after"]["T_max"] == 10
    json.dumps(state)  # checkpoint metadata is JSON


# -- Trainer integration -----------------------------------------------------------------
def _data(n=64, seed=0):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, 6)).astype(np.float32), r.integers(0, 3, n)


def _model(seed=0):
    fastnn.seed(seed)
    return fastnn.Sequential(fastnn.Dense(6, 8), fastnn.ReLU(), fastnn.Dense(8, 3))


def test_epoch_schedule_is_stepped_once_per_epoch():
    X, y = _data()
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.2)
    sched = S.ExponentialDecay(opt, gamma=0.5)
    seen = []  # the lr in force at every batch
    cb = fastnn.callbacks.LambdaCallback(on_batch_begin=lambda t, i: seen.append(opt.lr))
    hist = fastnn.Trainer(model, CrossEntropyLoss(), opt, scheduler=sched, callbacks=[cb]).fit(
        X, y, epochs=5, batch_size=16, verbose=0
    )
    assert sched.last_epoch == 5
    np.testing.assert_allclose(hist["lr"], [0.2 * 0.5**e for e in range(5)], rtol=1e-15)
    np.testing.assert_allclose(seen, np.repeat([0.2 * 0.5**e for e in range(5)], 4), rtol=1e-15)


def test_step_interval_schedule_is_stepped_once_per_optimizer_step():
    """A warmup over 6 optimizer steps, then a cosine over 10 steps, both with
    interval='step', across 3 epochs of 4 batches: the lr changes at every batch."""
    X, y = _data(64)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = S.LinearWarmup(
        opt,
        6,
        start_factor=0.1,
        interval="step",
        after=S.CosineAnnealing(opt, T_max=10, interval="step"),
    )
    assert sched.interval == "step"
    seen = []
    cb = fastnn.callbacks.LambdaCallback(on_batch_begin=lambda t, i: seen.append(opt.lr))
    hist = fastnn.Trainer(model, CrossEntropyLoss(), opt, scheduler=sched, callbacks=[cb]).fit(
        X, y, epochs=3, batch_size=16, verbose=0
    )
    assert sched.last_epoch == 12  # 3 epochs x 4 batches
    expected = [sched.lr_at(t, 0.01) for t in range(13)]
    np.testing.assert_allclose(seen, expected[:12], rtol=1e-15)
    # the warmup is linear from 0.1 * lr and reaches lr after 6 steps
    np.testing.assert_allclose(seen[:7], 0.01 * (0.1 + 0.9 * np.arange(7) / 6), rtol=1e-12)
    # History['lr'] is the lr at the end of each epoch
    np.testing.assert_allclose(hist["lr"], [expected[4], expected[8], expected[12]], rtol=1e-15)


def test_step_interval_warmup_within_the_first_epoch():
    X, y = _data(80)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.05)
    sched = S.LinearWarmup(opt, 4, start_factor=0.25, interval="step")
    seen = []
    cb = fastnn.callbacks.LambdaCallback(on_batch_begin=lambda t, i: seen.append(opt.lr))
    hist = fastnn.Trainer(model, CrossEntropyLoss(), opt, scheduler=sched, callbacks=[cb]).fit(
        X, y, epochs=2, batch_size=8, verbose=0
    )
    np.testing.assert_allclose(seen[:5], [0.0125, 0.021875, 0.03125, 0.040625, 0.05], rtol=1e-12)
    assert seen[4:] == [0.05] * 16 and hist["lr"] == [0.05, 0.05]
    assert sched.last_epoch == 20


def test_reduce_on_plateau_monitors_val_loss_in_the_trainer():
    """With a tiny lr the validation loss barely moves (a plateau under the relative
    threshold), so the lr is cut after `patience` + 1 epochs without improvement; the
    History's lr follows torch's ReduceLROnPlateau fed the same val_loss values."""
    X, y = _data(96)
    Xv, yv = _data(32, seed=1)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=1e-7)
    sched = S.ReduceOnPlateau(opt, monitor="val_loss", factor=0.5, patience=2)
    hist = fastnn.Trainer(model, CrossEntropyLoss(), opt, scheduler=sched).fit(
        X, y, epochs=9, batch_size=32, validation_data=(Xv, yv), verbose=0
    )
    lrs = hist["lr"]
    assert lrs[:4] == [1e-7] * 4 and lrs[4] == 5e-8 and min(lrs) < 5e-8
    # the same as torch fed the logged val_loss values
    torch = pytest.importorskip("torch")
    t_opt = torch_opt(torch, [1e-7])
    t_sched = L(torch).ReduceLROnPlateau(t_opt, factor=0.5, patience=2)
    expected = []
    for v in hist["val_loss"]:
        expected.append(t_opt.param_groups[0]["lr"])
        t_sched.step(v)
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)


def test_reduce_on_plateau_on_a_training_metric_in_max_mode():
    X, y = _data(64)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=1e-6)
    sched = S.ReduceOnPlateau(
        opt, monitor="accuracy", mode="max", factor=0.1, patience=0, eps=1e-12
    )
    hist = fastnn.Trainer(model, CrossEntropyLoss(), opt, scheduler=sched).fit(
        X, y, epochs=4, batch_size=64, shuffle=False, verbose=0
    )
    assert len(set(hist["accuracy"])) == 1  # no change: every epoch after the first is bad
    np.testing.assert_allclose(hist["lr"], [1e-6, 1e-6, 1e-7, 1e-8], rtol=1e-12)


@pytest.mark.parametrize(
    "monitor,validation",
    [("val_loss", False), ("val_accuracy", False), ("vall_loss", True), ("loss_", False)],
)
def test_unknown_monitor_raises_at_fit_start(monitor, validation):
    X, y = _data()
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    opt = optim.SGD(model.parameters(), lr=0.1)
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), opt, scheduler=S.ReduceOnPlateau(opt, monitor=monitor)
    )
    with pytest.raises(ValueError, match=monitor):
        trainer.fit(
            X, y, epochs=2, verbose=0, validation_data=_data(16, seed=1) if validation else None
        )
    assert len(trainer.history) == 0
    for p, b in zip(model.parameters(), before):
        assert np.array_equal(p.data, b)


# -- validation -----------------------------------------------------------------------------
def _other_opt():
    return fastnn_opt()


BAD = [
    ("step_size=0", lambda o: S.StepDecay(o, step_size=0)),
    ("step_size<0", lambda o: S.StepDecay(o, step_size=-2)),
    ("StepDecay gamma=0", lambda o: S.StepDecay(o, 3, gamma=0.0)),
    ("StepDecay gamma<0", lambda o: S.StepDecay(o, 3, gamma=-0.5)),
    ("StepDecay gamma=nan", lambda o: S.StepDecay(o, 3, gamma=float("nan"))),
    ("warmup_epochs<0", lambda o: S.StepDecay(o, 3, warmup_epochs=-1)),
    ("MultiStep gamma<0", lambda o: S.MultiStep(o, [3], gamma=-0.1)),
    ("MultiStep milestone<0", lambda o: S.MultiStep(o, [-3, 5])),
    ("Exponential gamma=0", lambda o: S.ExponentialDecay(o, 0.0)),
    ("Exponential gamma=inf", lambda o: S.ExponentialDecay(o, float("inf"))),
    ("T_max=0", lambda o: S.CosineAnnealing(o, 0)),
    ("T_mult=0", lambda o: S.CosineAnnealing(o, 5, restarts=True, T_mult=0)),
    ("eta_min<0", lambda o: S.CosineAnnealing(o, 5, eta_min=-1e-3)),
    ("LinearWarmup warmup_epochs=0", lambda o: S.LinearWarmup(o, 0)),
    ("start_factor=0", lambda o: S.LinearWarmup(o, 3, start_factor=0.0)),
    ("start_factor>1", lambda o: S.LinearWarmup(o, 3, start_factor=1.5)),
    (
        "after of another optimizer",
        lambda o: S.LinearWarmup(o, 3, after=S.StepDecay(_other_opt(), 3)),
    ),
    (
        "warmup interval != after's",
        lambda o: S.LinearWarmup(o, 3, interval="step", after=S.CosineAnnealing(o, 10)),
    ),
    ("interval", lambda o: S.StepDecay(o, 3, interval="batch")),
    ("plateau factor=1", lambda o: S.ReduceOnPlateau(o, factor=1.0)),
    ("plateau factor=0", lambda o: S.ReduceOnPlateau(o, factor=0.0)),
    ("plateau factor>1", lambda o: S.ReduceOnPlateau(o, factor=2.0)),
    ("plateau mode", lambda o: S.ReduceOnPlateau(o, mode="minimum")),
    ("plateau threshold_mode", lambda o: S.ReduceOnPlateau(o, threshold_mode="relative")),
    ("plateau empty monitor", lambda o: S.ReduceOnPlateau(o, monitor="")),
    ("plateau patience<0", lambda o: S.ReduceOnPlateau(o, patience=-1)),
    ("plateau cooldown<0", lambda o: S.ReduceOnPlateau(o, cooldown=-2)),
    ("plateau threshold<0", lambda o: S.ReduceOnPlateau(o, threshold=-1e-4)),
    ("plateau min_lr<0", lambda o: S.ReduceOnPlateau(o, min_lr=-1e-5)),
    ("plateau min_lr per group, wrong count", lambda o: S.ReduceOnPlateau(o, min_lr=[0.0])),
]


@pytest.mark.parametrize("why,build", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise_value_error(why, build):
    opt = fastnn_opt()
    with pytest.raises(ValueError):
        build(opt)


def test_non_integer_counts_are_refused():
    opt = fastnn_opt()
    for build in (
        lambda: S.StepDecay(opt, step_size=2.5),
        lambda: S.CosineAnnealing(opt, T_max=7.5),
        lambda: S.LinearWarmup(opt, warmup_epochs=True),
    ):
        with pytest.raises((TypeError, ValueError)):
            build()


def test_schedules_never_produce_a_negative_lr():
    """Every valid schedule keeps lr >= 0 (the optimizers refuse negative lrs)."""
    for _, make, _ in CASES:
        opt = fastnn_opt()
        seq = lr_sequence(opt, make(opt), steps=200)
        assert (seq >= 0).all() and np.isfinite(seq).all()
    assert math.isfinite(S.CosineAnnealing(fastnn_opt(), 3).lr_at(10**6, 0.1))
