"""Overfit a tiny batch ("check that the model can fit a very small
training set completely"). A model that cannot drive the loss of 16-32 samples to
about zero has a bug, too little capacity, a bad learning rate or bad labels."""

import copy
import math

import numpy as np

from ..losses import CrossEntropyLoss
from ..optim import Adam
from ._objective import as_float, as_target, check_model, preserved_rng, trainable, working_copy
from ._plot import pyplot, save
from ._result import Result, fmt, verdict


class OverfitResult(Result):
    """Outcome of overfit_small_batch: `losses` (the loss before every step, then the
    final one), `initial_loss`, `final_loss`, `passed`, `advice` (a list of strings,
    empty when passed), `accuracy` on the batch for classification (else None)."""

    title = "overfit a small batch"

    def __init__(self, losses, n_samples, steps, lr, threshold, relative, accuracy, advice, passed):
        self.losses = np.asarray(losses, dtype=np.float64)
        self.initial_loss = float(self.losses[0])
        self.final_loss = float(self.losses[-1])
        self.n_samples, self.steps, self.lr = n_samples, steps, lr
        self.threshold, self.relative = threshold, relative
        self.accuracy = accuracy
        self.advice = advice
        self.passed = passed

    def _lines(self):
        goal = f"< {fmt(self.threshold)} or < {fmt(self.relative * 100)}% of the initial loss"
        lines = [
            f"  {verdict(self.passed)}: loss {fmt(self.initial_loss)} -> "
            f"{fmt(self.final_loss)} in {len(self.losses) - 1} steps on {self.n_samples} "
            f"samples (goal {goal})"
        ]
        marks = sorted(
            {
                0,
                len(self.losses) // 4,
                len(self.losses) // 2,
                3 * len(self.losses) // 4,
                len(self.losses) - 1,
            }
        )
        lines.append("  curve: " + ", ".join(f"step {i}: {fmt(self.losses[i])}" for i in marks))
        if self.accuracy is not None:
            lines.append(f"  accuracy on the batch: {self.accuracy:.1%}")
        lines += [f"  -> {a}" for a in self.advice]
        return lines

    def plot(self, path):
        """The loss curve (log scale) saved as an image at path."""
        plt = pyplot("OverfitResult")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(len(self.losses)), self.losses)
        if np.all(self.losses[np.isfinite(self.losses)] > 0):
            ax.set_yscale("log")
        goal = max(self.threshold, self.relative * self.initial_loss)
        ax.axhline(goal, color="gray", linestyle=":", label="goal")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss on the batch")
        ax.set_title(f"Overfit {self.n_samples} samples: {verdict(self.passed)}")
        ax.legend()
        return save(fig, path)


def _conflicting_rows(X, y):
    """Number of samples whose exact input also appears with another label."""
    if y.ndim != 1:
        return 0
    rows = np.ascontiguousarray(X.reshape(X.shape[0], -1)) + 0.0
    _, inverse = np.unique(rows, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    bad = 0
    for g in np.unique(inverse):
        labels = y[inverse == g]
        if len(labels) > 1 and np.unique(labels).size > 1:
            bad += len(labels)
    return bad


def overfit_small_batch(
    model,
    loss,
    X,
    y,
    steps=200,
    n_samples=16,
    lr=1e-2,
    optimizer=None,
    threshold=1e-2,
    relative=1e-2,
):
    """Train a copy of the model on its first `n_samples` samples for `steps` Adam steps
    and check that the training loss goes to about zero.

    The copy has dropout and weight penalties disabled (they exist to stop exactly this
    kind of memorisation); BatchNorm stays in training mode. `optimizer` optionally
    replaces Adam(lr=lr): a callable taking the list of parameters. Passed when the
    final loss is below `threshold` or below `relative` times the initial loss. The
    model itself is not changed, and fastnn's random state is left as it was.

    When it fails, `advice` says what the curve suggests: a loss that does not move
    (learning rate zero or far too small, frozen parameters, a backward that returns
    no gradient - run gradient_check), a loss that explodes (learning rate too high),
    identical inputs with different labels in the batch, or a plateau (too little
    capacity, too few steps, a bug in a custom layer, wrong labels)."""
    check_model(model, "overfit_small_batch")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"overfit_small_batch: steps must be >= 1, got {steps}")
    n = int(n_samples)
    if n < 1:
        raise ValueError(f"overfit_small_batch: n_samples must be >= 1, got {n_samples}")
    with preserved_rng():
        work = working_copy(model, train=True, dropout=False, penalties=False)
        loss = copy.deepcopy(loss)
        dtype = work.dtype or np.float32
        Xb = as_float(np.asarray(X)[:n], dtype, "overfit_small_batch")
        yb = as_target(np.asarray(y)[:n], dtype)
        params = [p for _, p in trainable(work)]
        if not params:
            raise ValueError("overfit_small_batch: the model has no trainable parameters")
        opt = optimizer(params) if optimizer is not None else Adam(params, lr=lr)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            value = float(loss(work.forward(Xb), yb))
            losses.append(value)
            if not math.isfinite(value):
                break
            work.backward(loss.backward())
            opt.step()
        out = None
        if math.isfinite(losses[-1]):
            out = work.forward(Xb)
            losses.append(float(loss(out, yb)))
    classification = isinstance(loss, CrossEntropyLoss)
    accuracy = (
        float(np.mean(out.argmax(axis=1) == yb)) if classification and out is not None else None
    )
    initial, final = losses[0], losses[-1]
    passed = bool(math.isfinite(final) and (final < threshold or final < relative * initial))
    advice = [] if passed else _advice(losses, Xb, yb, opt, classification, params)
    return OverfitResult(
        losses,
        Xb.shape[0],
        steps,
        getattr(opt, "lr", lr),
        threshold,
        relative,
        accuracy,
        advice,
        passed,
    )


def _advice(losses, Xb, yb, opt, classification, params):
    initial, final = losses[0], losses[-1]
    advice = []
    lr = getattr(opt, "lr", None)
    if not math.isfinite(final) or final > 1.5 * initial:
        advice.append(
            f"the loss diverged ({fmt(initial)} -> {fmt(final)}): lower the "
            f"learning rate (now {lr}) by 10x, clip gradients, check the input "
            "scale (check_data)"
        )
    elif final > 0.99 * initial:
        if lr == 0:
            advice.append("the learning rate is 0: nothing can change")
        advice.append(
            f"the loss did not move ({fmt(initial)} -> {fmt(final)}): the "
            f"learning rate (now {lr}) is zero or far too small, the parameters "
            "are frozen, or backward does not deliver gradients to them - run "
            "gradient_check and gradient_stats"
        )
        if all(not np.any(p.grad) for p in params):
            advice.append(
                "every parameter gradient is exactly zero: no gradient reaches "
                "the parameters (dead ReLUs, a detached custom layer)"
            )
    else:
        advice.append(
            f"the loss fell ({fmt(initial)} -> {fmt(final)}) but not to ~0: try "
            "more steps or a larger learning rate; if it plateaus, the model lacks "
            "capacity (more units or layers) or a custom layer's backward is wrong "
            "(run gradient_check)"
        )
    conflicts = _conflicting_rows(Xb, yb) if classification else 0
    if conflicts:
        advice.append(
            f"{conflicts} samples of the batch share an identical input with a "
            "different label: the loss cannot reach 0; check the labels "
            "(check_data)"
        )
    elif classification:
        advice.append(
            "check that the labels belong to their samples (shuffled together, "
            "0-based); check_data tests this"
        )
    return advice
