"""Whole training runs against PyTorch: the same MLP (Linear, BatchNorm1d, ReLU,
Dropout(p=0), Linear), torch's initial weights copied into fastnn, the same batches and
optimizer; per-step losses, final parameters and running statistics must agree to
round-off (1e-10 / 1e-9 in float64, ~1e-4 in float32).

A bias right before BatchNorm has an analytically zero gradient; what both libraries
compute for it is round-off noise, and Adam rescales that noise into real steps, so
such biases cannot be compared across libraries. The Adam runs therefore use
Linear(bias=False) before BN (the usual practice); the "bn-bias" architecture keeps
the bias and is run with SGD, which does not amplify the noise."""

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.losses import CrossEntropyLoss

torch = pytest.importorskip("torch")
nn = torch.nn

N_IN, HIDDEN, N_OUT, BATCH, STEPS = 784, 64, 10, 32, 10


@pytest.fixture(autouse=True, scope="module")
def _torch_on_one_thread():
    """torch is the reference here, not under test: keep it off the second core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


OPTIMIZERS = {
    "adam": ("Adam", dict(lr=1e-2)),
    "adamw-amsgrad": ("AdamW", dict(lr=1e-2, weight_decay=0.05, amsgrad=True)),
    "sgd-nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)),
}


def torch_net(arch):
    torch.manual_seed(0)
    if arch in ("bn", "bn-bias"):
        bias = arch == "bn-bias"
        return nn.Sequential(
            nn.Linear(N_IN, HIDDEN, bias=bias),
            nn.BatchNorm1d(HIDDEN),
            nn.ReLU(),
            nn.Dropout(0.0),
            nn.Linear(HIDDEN, HIDDEN, bias=bias),
            nn.BatchNorm1d(HIDDEN),
            nn.ReLU(),
            nn.Dropout(0.0),
            nn.Linear(HIDDEN, N_OUT),
        )
    # plain: Dense + ReLU, which fastnn fuses into one epilogue
    return nn.Sequential(
        nn.Linear(N_IN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Tanh(),
        nn.Linear(HIDDEN, N_OUT),
    )


def fastnn_net(arch):
    if arch in ("bn", "bn-bias"):
        bias = arch == "bn-bias"
        return fastnn.Sequential(
            fastnn.Dense(N_IN, HIDDEN, bias=bias),
            fastnn.BatchNorm1d(HIDDEN),
            fastnn.ReLU(),
            fastnn.Dropout(0.0),
            fastnn.Dense(HIDDEN, HIDDEN, bias=bias),
            fastnn.BatchNorm1d(HIDDEN),
            fastnn.ReLU(),
            fastnn.Dropout(0.0),
            fastnn.Dense(HIDDEN, N_OUT),
        )
    return fastnn.Sequential(
        fastnn.Dense(N_IN, HIDDEN),
        fastnn.ReLU(),
        fastnn.Dense(HIDDEN, HIDDEN),
        fastnn.Tanh(),
        fastnn.Dense(HIDDEN, N_OUT),
    )


def batches(dtype):
    r = np.random.default_rng(0)
    return [
        (r.normal(size=(BATCH, N_IN)).astype(dtype), r.integers(0, N_OUT, BATCH))
        for _ in range(STEPS)
    ]


def run_both(arch, opt_key, dtype):
    cls, opts = OPTIMIZERS[opt_key]
    tnet = torch_net(arch)
    if dtype == np.float64:
        tnet = tnet.double()
    fnet = fastnn_net(arch).astype(dtype)
    fnet.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    topt = getattr(torch.optim, cls)(tnet.parameters(), foreach=False, **opts)
    trainer = fastnn.Trainer(
        fnet, CrossEntropyLoss(), getattr(optim, cls)(fnet.parameters(), **opts)
    )
    init = fnet.state_dict()
    tnet.train()
    t_losses, f_losses = [], []
    for xb, yb in batches(dtype):
        topt.zero_grad()
        loss = nn.functional.cross_entropy(tnet(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        topt.step()
        t_losses.append(loss.item())
        f_losses.append(trainer.train_step(xb, yb))
    tsd = {k: v.numpy() for k, v in tnet.state_dict().items()}
    fsd = fnet.state_dict()
    frozen_by_bn = ("0.bias", "4.bias") if arch == "bn-bias" else ()  # zero gradient
    for k, v in init.items():  # the run really trained every parameter and statistic
        if not k.endswith("num_batches_tracked") and k not in frozen_by_bn:
            assert np.abs(fsd[k] - v).max() > 1e-3, k
    return np.array(f_losses), np.array(t_losses), fsd, tsd


CASES = [(arch, opt) for arch in ("bn", "plain") for opt in OPTIMIZERS] + [
    ("bn-bias", "sgd-nesterov")
]


@pytest.mark.parametrize("arch,opt_key", CASES)
def test_training_run_matches_torch_float64(arch, opt_key):
    f_losses, t_losses, fsd, tsd = run_both(arch, opt_key, np.float64)
    np.testing.assert_allclose(f_losses, t_losses, rtol=1e-10)
    assert list(fsd) == list(tsd)
    for k, v in tsd.items():
        assert fsd[k].dtype == v.dtype, k
        if k.endswith("num_batches_tracked"):
            assert fsd[k] == v == STEPS
        else:
            np.testing.assert_allclose(fsd[k], v, rtol=1e-9, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("arch,opt_key", CASES)
def test_training_run_matches_torch_float32(arch, opt_key):
    """float32: losses to 1e-4 relative; every tensor to 1e-4 relative in norm. Element
    by element Adam may differ by up to ~lr where a gradient is at round-off level (its
    sign decides a step of size lr), so elements are held to 1e-3 (SGD: 1e-5)."""
    f_losses, t_losses, fsd, tsd = run_both(arch, opt_key, np.float32)
    np.testing.assert_allclose(f_losses, t_losses, rtol=1e-4)
    elem_atol = 1e-5 if opt_key.startswith("sgd") else 1e-3
    for k, v in tsd.items():
        assert fsd[k].dtype == v.dtype, k
        if k.endswith("num_batches_tracked"):
            assert fsd[k] == v == STEPS
            continue
        rel = np.linalg.norm((fsd[k] - v).ravel()) / np.linalg.norm(v.ravel())
        assert rel < 1e-4, (k, rel)
        np.testing.assert_allclose(fsd[k], v, rtol=1e-4, atol=elem_atol, err_msg=k)


def test_eval_predictions_after_training_match_torch():
    """After a float64 run with BN, eval-mode outputs (running statistics) agree."""
    cls, opts = OPTIMIZERS["adam"]
    tnet = torch_net("bn").double()
    fnet = fastnn_net("bn").astype(np.float64)
    fnet.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    topt = torch.optim.Adam(tnet.parameters(), foreach=False, **opts)
    trainer = fastnn.Trainer(fnet, CrossEntropyLoss(), optim.Adam(fnet.parameters(), **opts))
    X = np.concatenate([xb for xb, _ in batches(np.float64)])
    y = np.concatenate([yb for _, yb in batches(np.float64)])
    trainer.fit(X, y, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    for _ in range(2):
        for xb, yb in batches(np.float64):
            topt.zero_grad()
            nn.functional.cross_entropy(tnet(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            topt.step()
    tnet.eval()
    with torch.no_grad():
        expected = tnet(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(fnet.predict(X, batch_size=50), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("opt_key", ["sgd-nesterov", "adam"])
def test_gradient_clipping_matches_torch(opt_key):
    """Trainer(clip_grad_norm=c) == torch.nn.utils.clip_grad_norm_(params, c) before
    every step (the clip is active: the gradient norms here are well above c)."""
    cls, opts = OPTIMIZERS[opt_key]
    max_norm = 0.1
    tnet = torch_net("plain").double()
    fnet = fastnn_net("plain").astype(np.float64)
    fnet.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    topt = getattr(torch.optim, cls)(tnet.parameters(), foreach=False, **opts)
    trainer = fastnn.Trainer(
        fnet,
        CrossEntropyLoss(),
        getattr(optim, cls)(fnet.parameters(), **opts),
        clip_grad_norm=max_norm,
    )
    norms = []
    for xb, yb in batches(np.float64):
        topt.zero_grad()
        loss = nn.functional.cross_entropy(tnet(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(tnet.parameters(), max_norm)))
        topt.step()
        assert trainer.train_step(xb, yb) == pytest.approx(loss.item(), rel=1e-10)
    assert min(norms) > 3 * max_norm
    tsd = tnet.state_dict()
    for k, v in fnet.state_dict().items():
        np.testing.assert_allclose(v, tsd[k].numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
