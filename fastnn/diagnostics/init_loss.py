"""Loss sanity at initialisation (feature D7): before any training, a classifier
should be unsure (softmax cross-entropy ~ ln K) and a regressor should predict small
values (MSE ~ the mean squared target). A much larger loss means the last layer
starts over-confident or the targets are on a scale the outputs cannot reach."""

import copy
import math

import numpy as np

from ..losses import CrossEntropyLoss, L1Loss, MSELoss
from ._objective import as_float, as_target, check_model, preserved_rng, working_copy
from ._result import Result, fmt, table, verdict


class InitLossResult(Result):
    """Outcome of loss_at_init: `loss` (measured), `expected` (what a well-initialised
    model gives), `baselines` ({description: loss}), `ratio` = loss / expected,
    `passed`, `advice` (list of strings) and `output_std` (std of the model's outputs)."""

    title = "loss at initialisation"

    def __init__(
        self,
        loss_name,
        loss,
        expected,
        expected_desc,
        baselines,
        output_std,
        passed,
        advice,
        tolerance,
    ):
        self.loss_name = loss_name
        self.loss = loss
        self.expected = expected
        self.expected_desc = expected_desc
        self.baselines = baselines
        self.output_std = output_std
        finite = math.isfinite(loss)
        self.ratio = loss / expected if finite and expected else math.inf
        self.passed = passed
        self.advice = advice
        self.tolerance = tolerance

    def _lines(self):
        lines = [
            f"  {verdict(self.passed)}: {self.loss_name} at init {fmt(self.loss)}, "
            f"expected about {fmt(self.expected)} ({self.expected_desc})"
        ]
        rows = [("measured", self.loss)] + [(k, v) for k, v in self.baselines.items()]
        lines.append(table(("", "loss"), rows))
        if self.output_std is not None:
            lines.append(f"  std of the model's outputs: {fmt(self.output_std)}")
        lines += [f"  -> {a}" for a in self.advice]
        return lines


def loss_at_init(model, loss, X, y, max_samples=1024, tolerance=0.5):
    """Compare the loss of the (untrained) model on X, y with the value expected at
    initialisation.

    CrossEntropyLoss with K outputs: ln K (a uniform prediction); also shown, the
    entropy of the label distribution (the best constant prediction).
    BCEWithLogitsLoss: ln 2. MSELoss: the
    loss of predicting zero, mean(y^2) (what small initial outputs give), and of
    predicting the mean, var(y). L1Loss: mean|y| and mean|y - median|. Other losses
    are reported without a verdict. Passed when the measured loss is at most
    (1 + tolerance) times the expected value; a cross-entropy far below ln K passes
    with a note (right for a trained model, suspicious for a fresh one). The model runs on a copy in training mode with dropout off, on the first
    `max_samples` samples.

    A failed check explains the likely cause: an over-confident last layer (logits
    with a large std: initialise it smaller, e.g. scaled by 0.01, or zero), labels
    outside 0..K-1 (1-based labels, too few outputs), a single-output cross-entropy,
    or targets on a large scale (standardise them)."""
    check_model(model, "loss_at_init")
    loss_name = type(loss).__name__
    with preserved_rng():
        work = working_copy(model, train=True, dropout=False)
        dtype = work.dtype or np.float32
        X = as_float(np.asarray(X)[:max_samples], dtype, "loss_at_init")
        y = as_target(np.asarray(y)[:max_samples], dtype)
        out = np.asarray(work.forward(X), dtype=np.float64)
    loss = copy.deepcopy(loss)
    out_std = float(out.std()) if out.size else None
    advice = []
    if isinstance(loss, CrossEntropyLoss):
        return _cross_entropy(loss, out, y, out_std, tolerance)
    if isinstance(loss, (MSELoss, L1Loss)):
        return _regression(loss, out, y, out_std, tolerance, isinstance(loss, MSELoss))
    if loss_name == "BCEWithLogitsLoss":  # sigmoid cross-entropy: ln 2 for logits ~ 0
        value = float(loss(out, y))
        expected = math.log(2.0)
        passed = math.isfinite(value) and value <= (1 + tolerance) * expected
        if not passed:
            advice.append(
                f"the initial loss is {fmt(value / expected)}x ln 2: the last layer "
                "is over-confident; initialise it smaller"
            )
        return InitLossResult(
            loss_name,
            value,
            expected,
            "logits ~ 0: ln 2",
            {"logit 0, ln 2": expected},
            out_std,
            passed,
            advice,
            tolerance,
        )
    value = float(loss(out, y))
    return InitLossResult(
        loss_name,
        value,
        value,
        "no reference for this loss",
        {},
        out_std,
        math.isfinite(value),
        advice if math.isfinite(value) else ["the loss is not finite at initialisation"],
        tolerance,
    )


def _cross_entropy(loss, out, y, out_std, tolerance):
    K = out.shape[1] if out.ndim == 2 else 1
    advice = []
    expected = math.log(K) if K > 1 else 0.0
    baselines = {f"uniform prediction, ln {K}": expected}

    def refused(why):  # labels the loss cannot be computed on
        return InitLossResult(
            "CrossEntropyLoss",
            math.nan,
            expected,
            f"ln {K}",
            baselines,
            out_std,
            False,
            [why],
            tolerance,
        )

    if y.dtype.kind not in "iu":
        yi = y.astype(np.int64) if np.all(np.mod(y, 1) == 0) else None
        if yi is None:
            return refused("class labels must be integers 0..K-1")
        advice.append("labels are floats: pass integer labels (y.astype(np.int64))")
        y = yi
    lo, hi = int(y.min()), int(y.max())
    counts = np.bincount(y[y >= 0], minlength=K).astype(np.float64) if lo >= 0 else None
    if counts is not None:
        p = counts[counts > 0] / counts.sum()
        baselines["best constant prediction (label entropy)"] = float(-(p * np.log(p)).sum())
    if K == 1:
        return InitLossResult(
            "CrossEntropyLoss",
            0.0,
            expected,
            "a single output",
            baselines,
            out_std,
            False,
            [
                "the model has a single output: softmax cross-entropy over one class is always "
                "0 and nothing is learnt; give the last layer K outputs (one per class)"
            ],
            tolerance,
        )
    if lo < 0 or hi >= K:
        one_based = lo == 1 and hi == K
        why = (
            f"labels run 1..{K} (1-based) but CrossEntropyLoss wants 0..{K - 1}: subtract 1"
            if one_based
            else f"labels span {lo}..{hi} but the model has {K} outputs: labels must be "
            f"0..{K - 1} - re-encode them or give the last layer {hi + 1} outputs"
        )
        return refused(why)
    value = float(loss(out, y))
    z = out - out.mean(axis=1, keepdims=True)
    logit_std = float(z.std())
    passed = math.isfinite(value) and value <= (1 + tolerance) * expected
    if not math.isfinite(value):
        advice.append("the loss is not finite: check the inputs for NaN/inf (check_data)")
    elif value > (1 + tolerance) * expected:
        advice.append(
            f"the initial loss is {fmt(value / expected)}x ln {K}: the last layer is "
            f"over-confident (logits vary with std {fmt(logit_std)}; ~1 or less is healthy). "
            "Initialise the last layer smaller (e.g. scale its weights by 0.01, or zero "
            "them), check the input scale (standardise), and that no layer multiplies its "
            "output by a large factor"
        )
    elif value < (1 - tolerance) * expected:
        advice.append(
            f"note: the loss is well below ln {K}: the model is already confident and right "
            "- fine for a trained model; for a fresh one, suspect labels derived from the "
            "inputs (leakage) or nearly all labels in one class"
        )
    return InitLossResult(
        "CrossEntropyLoss",
        value,
        expected,
        f"uniform prediction over {K} classes",
        baselines,
        logit_std,
        passed,
        advice,
        tolerance,
    )


def _regression(loss, out, y, out_std, tolerance, squared):
    name = "MSELoss" if squared else "L1Loss"
    t = y.astype(np.float64)
    if t.shape != out.shape and out.ndim == 2 and out.shape[1] == 1 and t.ndim == 1:
        t = t.reshape(-1, 1)
    value = float(loss(out, t))
    if squared:
        zero = float(np.mean(t**2))
        mean = float(np.mean((t - t.mean(axis=0)) ** 2))
        baselines = {"predict 0: mean(y^2)": zero, "predict the mean: var(y)": mean}
    else:
        zero = float(np.mean(np.abs(t)))
        mean = float(np.mean(np.abs(t - np.median(t, axis=0))))
        baselines = {"predict 0: mean|y|": zero, "predict the median": mean}
    expected = zero
    # Outputs at init are not exactly 0: allow for an output spread of std ~1 on top
    # (E (out - y)^2 = E y^2 + var(out) for outputs independent of the targets).
    allowance = 1.0 if squared else 0.8
    limit = (1 + tolerance) * expected + allowance
    passed = math.isfinite(value) and value <= limit
    advice = []
    if not math.isfinite(value):
        advice.append("the loss is not finite: check the inputs and targets for NaN/inf")
    elif not passed:
        advice.append(
            f"the initial loss {fmt(value)} is far above that of predicting 0 "
            f"({fmt(zero)}): the outputs start too large (std {fmt(out_std)}). Initialise "
            "the last layer smaller and standardise the inputs"
        )
    ystd = float(t.std())
    if math.isfinite(value) and (ystd > 10 or abs(float(t.mean())) > 10):
        advice.append(
            f"the targets are on a large scale (mean {fmt(float(t.mean()))}, std "
            f"{fmt(ystd)}): standardise them so the outputs start in range"
        )
    return InitLossResult(
        name,
        value,
        expected,
        "small initial outputs: predicting 0",
        baselines,
        out_std,
        passed,
        advice,
        tolerance,
    )
