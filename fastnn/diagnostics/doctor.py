"""`fastnn doctor`: the whole debugging checklist in one run - data
checks, the loss at initialisation, a gradient check, overfitting a tiny batch, and
activation/gradient statistics - on the user's model or on a default MLP, printed as
one report (and written, with plots, to a directory).

Command line (registered by fastnn.cli with `add_parser(subparsers)`, or with
`add_arguments(parser)` and `run(args)`):

    fastnn doctor --data FILE [--target COLUMN] [--test-data FILE]
                  [--model MODEL.safetensors] [--out DIR] [--seed N]

FILE is a CSV (header row; the target column named by --target, default the last) or
an NPZ with arrays X and y (fastnn.datasets.load_table). Exit status: 0 when every
check passes, 1 when a check fails, 2 when the input cannot be used (one line on
stderr says why)."""

import os
import sys

import numpy as np

from .. import rng
from ..datasets.tables import DataError, encode_labels, load_table
from ..layers.activations import ReLU
from ..layers.dense import Dense
from ..losses import CrossEntropyLoss, MSELoss
from ..module import Module
from ..sequential import Sequential
from ..plots import PlotsUnavailable
from ..preprocessing import Standardizer
from ._objective import preserved_rng
from ._result import Result, verdict
from .data_checks import check_data
from .gradcheck import gradient_check
from .init_loss import loss_at_init
from .layer_stats import activation_stats, gradient_stats
from .overfit import overfit_small_batch

_ORDER = (
    "data",
    "loss_at_init",
    "gradient_check",
    "overfit_small_batch",
    "gradient_stats",
    "activation_stats",
)


class DoctorReport(Result):
    """Outcome of run_doctor: `results` ({check name: its result object, or the
    exception text when a check could not run}), `passed` (every check passed),
    `skipped` ({check: why}), `model_description`, `plots` (paths written) and `text`
    (the printed report)."""

    title = "fastnn doctor"

    def __init__(self, results, skipped, model_description, notes):
        self.results = results
        self.skipped = skipped
        self.model_description = model_description
        self.notes = notes
        self.plots = []
        self.passed = all(_passed(r) for r in results.values()) and not skipped
        self.text = ""

    def summary_lines(self):
        """One line per check, in checklist order: its verdict (ERROR when it could not
        run, SKIP with the reason) and its name."""
        lines = []
        for name in _ORDER:
            if name in self.results:
                r = self.results[name]
                status = verdict(_passed(r)) if not isinstance(r, str) else "ERROR"
                lines.append(f"  {status:5s} {name}")
            elif name in self.skipped:
                lines.append(f"  SKIP  {name}: {self.skipped[name]}")
        return lines

    def _lines(self):
        return [
            f"  {verdict(self.passed)} - model: {self.model_description}"
        ] + self.summary_lines()


def _passed(result):
    if isinstance(result, str):
        return False
    return bool(getattr(result, "passed", True))


def default_model(n_features, n_outputs, hidden=(64, 64), seed=0):
    """Dense(n_features, h1) -> ReLU -> ... -> Dense(., n_outputs), built after
    fastnn.seed(seed) without disturbing fastnn's random state."""
    with preserved_rng():
        rng.seed(seed)
        layers, width = [], n_features
        for h in hidden:
            layers += [Dense(width, int(h)), ReLU()]
            width = int(h)
        layers.append(Dense(width, n_outputs))
        return Sequential(*layers)


def _targets(y, task, model_given):
    """(targets for the model checks, number of outputs needed)."""
    if task == "classification":
        if y.ndim == 2 and y.shape[1] > 1:
            y = y.argmax(axis=1)
        numeric = y.dtype.kind in "biuf" and np.all(np.mod(y.astype(np.float64), 1) == 0)
        if model_given and numeric:
            yi = y.astype(np.int64)
            return yi, int(yi.max()) + 1
        labels, classes = encode_labels(y)
        return labels, len(classes)
    t = y.astype(np.float32)
    if t.ndim == 1:
        t = t.reshape(-1, 1)
    return t, t.shape[1]


def run_doctor(
    X,
    y,
    model=None,
    loss=None,
    out=None,
    X_test=None,
    y_test=None,
    task=None,
    hidden=(64, 64),
    standardize=None,
    seed=0,
    print_fn=print,
):
    """Run the checklist and print a readable report; returns a DoctorReport.

    X, y: the training data (y: class labels or regression targets). model: a fastnn
    Module taking X's features; None builds a default MLP (Dense-ReLU layers of
    `hidden` units) for the task. loss: default CrossEntropyLoss for classification,
    MSELoss for regression. X_test, y_test: optional held-out data for the leakage and
    shift checks. standardize: standardise X before the model checks (default: only
    for the default model; your own model sees X as given). out: a directory for
    report.txt and the plots (activations.png, gradients.png, overfit.png) when
    matplotlib is available. print_fn=None prints nothing.

    Runs: check_data; then, unless the data has non-finite values or unusable shapes,
    on a shuffled sample: loss_at_init, gradient_check (8 samples, a few entries per
    parameter), overfit_small_batch, gradient_stats and activation_stats. A check that
    raises is reported as an error and the others still run."""
    X = np.asarray(X)
    y = np.asarray(y)
    results, skipped, notes = {}, {}, []
    n_out = None
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"run_doctor: model must be a fastnn Module, got {type(model).__name__}")
    data = check_data(X, y, X_test, y_test, task=task, seed=seed)
    results["data"] = data
    blocking = {
        "nonfinite",
        "shape",
        "length_mismatch",
        "feature_dtype",
        "label_dtype",
        "label_shape",
        "target_dtype",
        "single_class",
    }
    blockers = [i.code for i in data.issues if i.code in blocking and i.severity == "error"]
    model_desc = "none"
    if blockers:
        why = f"fix the data first ({', '.join(sorted(set(blockers)))})"
        for name in _ORDER[1:]:
            skipped[name] = why
    else:
        task = data.task
        targets, n_out = _targets(y, task, model is not None)
        if loss is None:
            loss = CrossEntropyLoss() if task == "classification" else MSELoss()
        if standardize is None:
            standardize = model is None
        Xm = X.reshape(X.shape[0], -1) if standardize or model is None else X
        if standardize:
            Xm = Standardizer().fit_transform(Xm)
            notes.append("inputs standardised (Standardizer fitted on X) for the model checks")
        if model is None:
            model = default_model(Xm.shape[1], n_out, hidden, seed)
            model_desc = (
                f"default MLP {Xm.shape[1]} -> "
                f"{' -> '.join(str(h) for h in hidden)} -> {n_out} (ReLU)"
            )
        else:
            model_desc = (
                f"{type(model).__name__} with "
                f"{sum(p.size for p in model.parameters()):,} parameters"
            )
        order = np.random.default_rng(seed).permutation(Xm.shape[0])
        Xs, ys = Xm[order[:1024]], targets[order[:1024]]
        checks = {
            "loss_at_init": lambda: loss_at_init(model, loss, Xs, ys),
            "gradient_check": lambda: gradient_check(model, loss, Xs[:8], ys[:8], max_entries=16),
            "overfit_small_batch": lambda: overfit_small_batch(model, loss, Xs, ys),
            "gradient_stats": lambda: gradient_stats(model, loss, Xs, ys),
            "activation_stats": lambda: activation_stats(model, Xs),
        }
        for name, fn in checks.items():
            try:
                results[name] = fn()
            except Exception as e:  # one broken check must not hide the others
                results[name] = f"{type(e).__name__}: {e}"
    report = DoctorReport(results, skipped, model_desc, notes)
    if out is not None:
        os.makedirs(out, exist_ok=True)
        _plots(report, out)
    report.text = _render(report)
    if out is not None:
        with open(os.path.join(out, "report.txt"), "w") as f:
            f.write(report.text + "\n")
    if print_fn is not None:
        print_fn(report.text)
    return report


def _plots(report, out):
    names = {
        "activation_stats": "activations.png",
        "gradient_stats": "gradients.png",
        "overfit_small_batch": "overfit.png",
    }
    for check, filename in names.items():
        r = report.results.get(check)
        if r is None or isinstance(r, str):
            continue
        path = os.path.join(out, filename)
        try:
            r.plot(path)
        except PlotsUnavailable:
            report.notes.append("plots skipped: matplotlib is not installed")
            return
        report.plots.append(path)


def _render(report):
    bar = "=" * 78
    lines = [bar, f"fastnn doctor: {verdict(report.passed)}", f"model: {report.model_description}"]
    lines += [f"note: {n}" for n in report.notes]
    lines += report.summary_lines()
    for name in _ORDER:
        if name not in report.results:
            continue
        r = report.results[name]
        lines += ["", "-" * 78, f"{name}"]
        lines.append(f"  could not run: {r}" if isinstance(r, str) else repr(r))
    if report.plots:
        lines += ["", "plots: " + ", ".join(report.plots)]
    lines.append(bar)
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------
HELP = "run the debugging checklist on a data set (and a model)"
DESCRIPTION = (
    "Check a data set and a model before training: NaN/inf, constant and badly "
    "scaled features, label range and balance, duplicates and train/test leakage, "
    "shuffling; then the loss at initialisation, a gradient check, overfitting a "
    "tiny batch, and per-layer activation and gradient statistics (on a default "
    "MLP unless --model is given). Exit status: 0 all checks pass, 1 a check "
    "fails, 2 unusable input."
)


def add_arguments(parser):
    """Declare the options of `fastnn doctor` on an argparse parser."""
    parser.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="training data: a CSV with a header row, or an NPZ with arrays X, y",
    )
    parser.add_argument(
        "--target", metavar="COLUMN", help="CSV target column (default: the last column)"
    )
    parser.add_argument(
        "--test-data",
        metavar="FILE",
        help="held-out data in the same format, for leakage and shift checks",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL.safetensors",
        help="a model saved with fastnn.save (default: a small MLP)",
    )
    parser.add_argument("--out", metavar="DIR", help="write report.txt and plots to DIR")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for sampling and the default model"
    )


def add_parser(subparsers):
    """Register `fastnn doctor` on an argparse sub-parsers object; returns the parser.
    Its `func` default is `run`, which returns the exit status."""
    p = subparsers.add_parser("doctor", help=HELP, description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run, command="doctor")
    return p


def _fail(message):
    """One line on stderr; exit status 2."""
    print(f"fastnn doctor: error: {message}", file=sys.stderr)
    return 2


def _accepts(model, X):
    """None if an eval-mode copy of model takes two rows of X, else the error text."""
    from ._objective import working_copy

    try:
        work = working_copy(model, train=False)
        work.forward(np.ascontiguousarray(X[:2], dtype=work.dtype or np.float32))
    except (ValueError, TypeError) as e:
        return str(e).splitlines()[0]
    return None


def run(args):
    """Run `fastnn doctor` for parsed arguments; returns the exit status (0 every check
    passed, 1 a check failed, 2 unusable input - with one line on stderr)."""
    from ..io import load

    try:
        X, y, _, _ = load_table(args.data, getattr(args, "target", None))
        X_test = y_test = None
        if getattr(args, "test_data", None):
            X_test, y_test, _, _ = load_table(args.test_data, getattr(args, "target", None))
            if X_test.shape[1] != X.shape[1]:
                return _fail(
                    f"{args.test_data} has {X_test.shape[1]} features, {args.data} has {X.shape[1]}"
                )
    except DataError as e:
        return _fail(str(e).splitlines()[0])
    model = None
    if getattr(args, "model", None):
        try:
            model = load(args.model)
        except (ValueError, OSError) as e:
            return _fail(str(e).splitlines()[0])
        problem = _accepts(model, X)
        if problem is not None:
            return _fail(
                f"the model in {args.model} does not accept the {X.shape[1]} "
                f"features of {args.data}: {problem}"
            )
    out = getattr(args, "out", None)
    try:
        report = run_doctor(
            X, y, model=model, out=out, X_test=X_test, y_test=y_test, seed=getattr(args, "seed", 0)
        )
    except OSError as e:  # e.g. --out not writable
        return _fail(str(e).splitlines()[0])
    return 0 if report.passed else 1
