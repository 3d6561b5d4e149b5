"""fastnn against the pure-NumPy MLP-BN baseline (fastnn.bench.numpy_baseline), used as
an oracle: same weights, same batches, same dropout masks, three training steps, then
losses, gradients, parameters, running statistics and Adam state must agree to round-off.

One exception is exact, not numerical: the bias of a Dense layer followed by BatchNorm
has a true gradient of zero (BN subtracts the batch mean, which absorbs any bias). Both
implementations compute round-off noise for it, and Adam divides that noise by its own
running RMS, so the two biases take different O(lr) steps (when the noise is above
Adam's eps, as in float32). For those two tensors the test checks that the gradient is
round-off sized, and bounds what follows from it: the biases (at most 2 lr apart per
step) and the running means of the BN after them (momentum times the bias gap)."""

import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import BatchNorm1d, Dense, Dropout, ReLU, Sequential, Trainer
from fastnn.bench.numpy_baseline import NumpyMLPBN
from fastnn.losses import CrossEntropyLoss
from fastnn.optim import Adam

STEPS = 3
LR = 1e-3
MOMENTUM = 0.1
PRE_BN_BIASES = ("0.bias", "4.bias")
DROPOUT_LAYERS = (3, 7)
# Relative (Frobenius-norm) agreement expected from float round-off.
RTOL = {np.float32: 1e-4, np.float64: 1e-10}


def mlp_bn(dtype):
    return Sequential(
        Dense(784, 512, dtype=dtype),
        BatchNorm1d(512, dtype=dtype),
        ReLU(),
        Dropout(0.5),
        Dense(512, 512, dtype=dtype),
        BatchNorm1d(512, dtype=dtype),
        ReLU(),
        Dropout(0.5),
        Dense(512, 10, dtype=dtype),
    )


def rel_err(actual, expected):
    """||actual - expected|| / ||expected|| in float64 (0 when both are 0)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    den = np.linalg.norm(e)
    num = np.linalg.norm(a - e)
    return num / den if den > 0 else num


def run_both(dtype, batch=64, seed=3):
    """Three steps of fastnn and of the baseline from the same weights, on the same
    batches with fastnn's dropout masks; returns what the assertions need."""
    fastnn.seed(seed)
    model = mlp_bn(dtype)
    opt = Adam(model.parameters(), lr=LR)
    trainer = Trainer(model, CrossEntropyLoss(), opt, metrics=())
    base = NumpyMLPBN(dtype=dtype, lr=LR, momentum=MOMENTUM)
    base.load_state_dict(model.state_dict())
    initial = model.state_dict()

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((STEPS * batch, 784)).astype(dtype)
    y = rng.integers(0, 10, STEPS * batch)
    steps = []
    for s in range(STEPS):
        xb, yb = X[s * batch : (s + 1) * batch], y[s * batch : (s + 1) * batch]
        # the pre-BN biases this step's forward uses, on each side
        biases = {k: (model.state_dict()[k], base.params[k].copy()) for k in PRE_BN_BIASES}
        loss_f = trainer.train_step(xb, yb)
        # The masks fastnn drew in this forward (kept by the fused BN-ReLU-Dropout
        # steps in the contexts of the trainer's call).
        masks = [
            trainer._ctx.child(k).mask.copy()
            for k, step in enumerate(model.steps)
            if step.layers[-1] in [model[i] for i in DROPOUT_LAYERS]
        ]
        assert len(masks) == len(DROPOUT_LAYERS)
        loss_b = base.train_step(xb, yb, masks=masks)
        grads_f = {k: p.grad.copy() for k, p in model.named_parameters()}
        grads_b = {k: g.copy() for k, g in base.grads.items()}
        steps.append((loss_f, loss_b, grads_f, grads_b, masks, biases))
    return model, opt, base, initial, steps, (X, y)


@pytest.fixture(scope="module", params=[np.float64, np.float32], ids=["float64", "float32"])
def runs(request):
    return request.param, run_both(request.param)


def test_masks_are_real_dropout_masks(runs):
    dtype, (model, opt, base, initial, steps, _) = runs
    for *_, masks, _ in steps:
        for mask in masks:
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            assert 0.4 < mask.mean() < 0.6
    # successive steps draw fresh masks
    assert not np.array_equal(steps[0][4][0], steps[1][4][0])


def test_losses_agree(runs):
    dtype, (model, opt, base, initial, steps, _) = runs
    tol = 10 * RTOL[dtype] if dtype == np.float32 else RTOL[dtype]
    for loss_f, loss_b, *_ in steps:
        assert np.isfinite(loss_f)
        assert loss_b == pytest.approx(loss_f, rel=tol / 10)


def test_gradients_agree(runs):
    dtype, (model, opt, base, initial, steps, _) = runs
    for s, (_, _, grads_f, grads_b, *_) in enumerate(steps):
        assert grads_f.keys() == grads_b.keys()
        for key in grads_f:
            if key in PRE_BN_BIASES:
                continue
            assert rel_err(grads_b[key], grads_f[key]) < RTOL[dtype], (s, key)


def test_pre_bn_bias_gradient_is_round_off(runs):
    """The exact gradient is 0; both sides must be tiny next to the BN beta gradient
    (which is what the bias gradient would be without the normalisation)."""
    dtype, (model, opt, base, initial, steps, _) = runs
    eps = np.finfo(dtype).eps
    for _, _, grads_f, grads_b, *_ in steps:
        for key in PRE_BN_BIASES:
            beta = f"{int(key.split('.')[0]) + 1}.bias"
            scale = np.abs(grads_f[beta]).max()
            assert scale > 0
            for grads in (grads_f, grads_b):
                assert np.abs(grads[key]).max() < 1e4 * eps * scale, key


def test_parameters_agree(runs):
    dtype, (model, opt, base, initial, steps, _) = runs
    sd_f, sd_b = model.state_dict(), base.state_dict()
    for key, _value in model.named_parameters():
        if key in PRE_BN_BIASES:
            # Noise-driven Adam steps: each side moves at most ~lr per step.
            assert np.abs(sd_b[key] - sd_f[key]).max() <= 2 * STEPS * LR, key
            assert np.abs(sd_f[key] - initial[key]).max() <= 1.01 * STEPS * LR, key
            continue
        assert rel_err(sd_b[key], sd_f[key]) < RTOL[dtype], key
        # and training did move them, well beyond the tolerance
        assert rel_err(sd_f[key], initial[key]) > 10 * RTOL[dtype], key


def test_running_statistics_agree(runs):
    dtype, (model, opt, base, initial, steps, _) = runs
    sd_f, sd_b = model.state_dict(), base.state_dict()
    for dense, bn in ((0, 1), (4, 5)):
        assert int(sd_f[f"{bn}.num_batches_tracked"]) == STEPS
        assert int(sd_b[f"{bn}.num_batches_tracked"]) == STEPS
        assert rel_err(sd_b[f"{bn}.running_var"], sd_f[f"{bn}.running_var"]) < RTOL[dtype]
        # Batch means include the preceding Dense bias, whose two copies differ by
        # Adam-amplified noise; running_mean = sum_s momentum (1 - momentum)^(T - s)
        # mean_s carries that gap, which is removed exactly before comparing.
        gap = sum(
            MOMENTUM * (1 - MOMENTUM) ** (STEPS - 1 - s) * (b_f.astype(np.float64) - b_b)
            for s, (*_, biases) in enumerate(steps)
            for b_f, b_b in [biases[f"{dense}.bias"]]
        )
        key = f"{bn}.running_mean"
        assert rel_err(sd_b[key] + gap, sd_f[key]) < RTOL[dtype], key


def test_adam_state_agrees(runs):
    dtype, (model, opt, base, initial, steps, _) = runs
    eps = np.finfo(dtype).eps
    assert (opt.steps == STEPS).all() and base.step_count == STEPS
    state = base.optimizer_state()
    names = [k for k, _ in model.named_parameters()]
    assert opt._data.size == base.n_params
    for (lo, hi), key in zip(opt._offsets, names):
        for moment in ("exp_avg", "exp_avg_sq"):
            f, b = opt.state[moment][lo:hi], state[moment][lo:hi]
            if key in PRE_BN_BIASES:
                # averages of round-off gradients: round-off sized on both sides
                beta = f"{int(key.split('.')[0]) + 1}.bias"
                scale = max(np.abs(grads_f[beta]).max() for _, _, grads_f, *_ in steps)
                bound = 1e4 * eps * scale
                assert np.abs(f).max() < (bound if moment == "exp_avg" else bound**2)
                assert np.abs(b).max() < (bound if moment == "exp_avg" else bound**2)
                continue
            assert rel_err(b, f) < RTOL[dtype], (key, moment)


def test_eval_predictions_agree(runs):
    dtype, (model, opt, base, initial, steps, (X, _)) = runs
    # Rebase the baseline on fastnn's trained state so that the comparison is of the
    # eval-mode forward alone.
    base.load_state_dict(model.state_dict())
    pf, pb = model.predict(X[:100]), base.predict(X[:100])
    assert rel_err(pb, pf) < RTOL[dtype]


def test_baseline_trains_with_its_own_masks():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 784)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)  # learnable
    net = NumpyMLPBN(seed=0)
    losses = [net.train_step(X[:128], y[:128]) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]
    keep = net.last_keep[0]
    assert 0.4 < keep.mean() < 0.6


def test_baseline_steady_state_step_allocates_no_arrays():
    """After the first step at a batch size, a step allocates no arrays. NumPy's ufunc
    iterator still takes ~34 KB of transient buffers for a broadcast operation, so the
    check is on the peak against the smallest array the step could allocate: at batch
    4096 the logits are 160 KB and every hidden-layer array 8 MB."""
    m = 4096
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, 784)).astype(np.float32)
    y = rng.integers(0, 10, m)
    net = NumpyMLPBN(seed=0)
    net.train_step(X, y)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2):
            net.train_step(X, y)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 128 * 1024


def test_load_state_dict_rejects_mismatch():
    net = NumpyMLPBN()
    sd = net.state_dict()
    sd.pop("0.weight")
    with pytest.raises(KeyError, match="0.weight"):
        net.load_state_dict(sd)
    sd = net.state_dict()
    sd["8.weight"] = np.zeros((10, 511), np.float32)
    with pytest.raises(ValueError, match="8.weight"):
        net.load_state_dict(sd)
