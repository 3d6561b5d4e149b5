"""Finite-difference gradient check of a whole model ("if you wrote
special layers or operations by hand, they may be wrong")."""

import numpy as np

from ._objective import Objective, preserved_rng
from ._result import Result, fmt, table, verdict

# Round-off of one loss evaluation in float64, relative to max(1, |L|): measured at
# ~1e-16 for small models; deep models and large batches lose a few hundred ulps more.
_LOSS_ROUNDOFF = 1e-14


class GradientCheckResult(Result):
    """Outcome of gradient_check.

    per_parameter: {name: relative error} for every trainable parameter (on the
    checked entries); input_rel_error: the same for dL/dX; max_rel_error: the largest
    of all; passed: max_rel_error <= tolerance. max_abs_error holds the largest
    absolute difference per parameter and n_checked the number of entries compared."""

    title = "gradient check"

    def __init__(
        self,
        per_parameter,
        max_abs_error,
        n_checked,
        n_entries,
        input_rel_error,
        input_abs_error,
        tolerance,
        eps,
        loss_value,
        floor,
    ):
        self.per_parameter = per_parameter
        self.max_abs_error = max_abs_error
        self.n_checked = n_checked
        self.n_entries = n_entries
        self.input_rel_error = input_rel_error
        self.input_abs_error = input_abs_error
        self.tolerance = tolerance
        self.eps = eps
        self.loss = loss_value
        self.floor = floor
        errors = list(per_parameter.values())
        if input_rel_error is not None:
            errors.append(input_rel_error)
        self.max_rel_error = max(errors) if errors else 0.0
        self.passed = bool(self.max_rel_error <= tolerance)

    @property
    def failures(self):
        """Names (and 'input') whose error exceeds the tolerance."""
        bad = [n for n, e in self.per_parameter.items() if e > self.tolerance]
        if self.input_rel_error is not None and self.input_rel_error > self.tolerance:
            bad.append("input")
        return bad

    def _lines(self):
        rows = [
            (
                n,
                self.n_checked[n],
                self.n_entries[n],
                e,
                self.max_abs_error[n],
                "ok" if e <= self.tolerance else "WRONG",
            )
            for n, e in self.per_parameter.items()
        ]
        if self.input_rel_error is not None:
            rows.append(
                (
                    "input (dL/dX)",
                    self.n_checked["input"],
                    self.n_entries["input"],
                    self.input_rel_error,
                    self.input_abs_error,
                    "ok" if self.input_rel_error <= self.tolerance else "WRONG",
                )
            )
        lines = [
            table(("gradient of", "checked", "entries", "rel. error", "max abs err", ""), rows)
        ]
        lines.append(
            f"  central differences in float64, eps={self.eps:g}; tolerance {self.tolerance:g}"
        )
        head = f"  {verdict(self.passed)}: max relative error {fmt(self.max_rel_error)}"
        if not self.passed:
            head += (
                f" - the analytic gradient of {', '.join(self.failures)} disagrees with "
                "the numerical one; check that layer's backward (a missing factor, "
                "a transposed product, a gradient not accumulated with +=)."
            )
        return [head] + lines


def _rel_error(analytic, numeric, floor):
    """||a - n|| / max(||a|| + ||n||, floor): scale-free for ordinary gradients; the
    floor keeps gradients that are zero up to round-off (a bias before BatchNorm) from
    turning noise into a large relative error."""
    diff = float(np.linalg.norm(analytic - numeric))
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return diff / max(scale, floor), float(np.max(np.abs(analytic - numeric), initial=0.0))


def _entries(size, max_entries, gen):
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(gen.choice(size, max_entries, replace=False))


def gradient_check(
    model,
    loss,
    X,
    y,
    eps=1e-6,
    max_entries=64,
    tolerance=1e-6,
    check_input=True,
    train=True,
    seed=0,
):
    """Compare the model's backward with central finite differences of its loss.

    Works on a deep copy converted to float64 (model.astype(np.float64)), in training
    mode (train=False: eval mode, e.g. BatchNorm with running statistics), so the model
    itself is untouched. For every trainable parameter, up to
    `max_entries` entries (all of them for small parameters; a sample drawn with `seed`
    otherwise) are perturbed by +-eps and dL/dw ~ (L(w + eps) - L(w - eps)) / (2 eps)
    is compared with what backward accumulated into .grad; the same for the input X
    (check_input) against the gradient backward returns. Dropout stays active with the
    masks held fixed: fastnn's random state is restored before every forward pass (and
    at the end, so the check consumes no randomness). Weight penalties are part of the
    loss. Only the public Module API is used, so user-written modules are checked too.

    The relative error of a parameter is ||a - n|| / max(||a|| + ||n||, floor), over its
    checked entries (a = analytic, n = numerical); floor = sqrt(entries) * 1e-14 *
    max(1, |L|) / eps / tolerance, the level at which finite-difference round-off alone
    would reach the tolerance. Truncation error is O(eps^2) and round-off O(1e-16 / eps),
    so a correct gradient gives errors around 1e-9..1e-7; a wrong one 1e-3 or more.
    A finite difference that straddles a kink (ReLU at 0, max pooling ties) can fail
    spuriously; rerun with another batch if a single parameter fails marginally.

    Returns a GradientCheckResult (.passed, .max_rel_error, .per_parameter,
    .input_rel_error, .tolerance)."""
    if not eps > 0:
        raise ValueError(f"gradient_check: eps must be positive, got {eps}")
    if not tolerance > 0:
        raise ValueError(f"gradient_check: tolerance must be positive, got {tolerance}")
    if max_entries is not None and int(max_entries) < 1:
        raise ValueError(f"gradient_check: max_entries must be >= 1 or None, got {max_entries}")
    with preserved_rng():
        obj = Objective(
            model, loss, X, y, np.float64, dropout="fixed", train=train, where="gradient_check"
        )
        value, gx, grad = obj.value_and_grads()
        if not np.isfinite(value):
            raise ValueError(
                f"gradient_check: the loss is not finite ({value}); run "
                "check_data and loss_at_init first"
            )
        gen = np.random.default_rng(seed)
        floor_unit = _LOSS_ROUNDOFF * max(1.0, abs(value)) / eps / tolerance
        per, abs_err, checked, entries = {}, {}, {}, {}
        for (name, p), lo in zip(obj.params, obj.offsets[:-1]):
            flat = p.data.reshape(-1)
            idx = _entries(flat.size, max_entries, gen)
            numeric = np.empty(idx.size)
            for j, i in enumerate(idx):
                old = flat[i]
                flat[i] = old + eps
                fp = obj.value()
                flat[i] = old - eps
                fm = obj.value()
                flat[i] = old
                numeric[j] = (fp - fm) / (2 * eps)
            analytic = grad[lo + idx]
            per[name], abs_err[name] = _rel_error(analytic, numeric, np.sqrt(idx.size) * floor_unit)
            checked[name], entries[name] = int(idx.size), int(flat.size)
        in_rel = in_abs = None
        if gx is not None and gx.shape != obj.X.shape:
            raise ValueError(
                f"gradient_check: the model's backward returned a gradient of "
                f"shape {gx.shape} for an input of shape {obj.X.shape}"
            )
        if check_input and gx is not None:
            Xw = obj.X.copy()
            flat = Xw.reshape(-1)
            idx = _entries(flat.size, max_entries, gen)
            numeric = np.empty(idx.size)
            for j, i in enumerate(idx):
                old = flat[i]
                flat[i] = old + eps
                fp = obj.value(Xw)
                flat[i] = old - eps
                fm = obj.value(Xw)
                flat[i] = old
                numeric[j] = (fp - fm) / (2 * eps)
            analytic = np.asarray(gx, np.float64).reshape(-1)[idx]
            in_rel, in_abs = _rel_error(analytic, numeric, np.sqrt(idx.size) * floor_unit)
            checked["input"], entries["input"] = int(idx.size), int(flat.size)
    return GradientCheckResult(
        per, abs_err, checked, entries, in_rel, in_abs, tolerance, eps, value, floor_unit
    )
