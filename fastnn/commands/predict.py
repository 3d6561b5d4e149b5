"""`fastnn predict MODEL --data FILE`: predictions of a model written by `fastnn train`
(or fastnn.save) for the samples of a CSV or NPZ file, as CSV."""

import csv
import os
import sys

import numpy as np

from .common import CommandError


def add_arguments(p):
    """Add fastnn predict's options to the argparse parser p."""
    p.add_argument("model", metavar="MODEL", help="a model file written by fastnn train --out")
    p.add_argument(
        "--data",
        metavar="FILE",
        required=True,
        help="CSV with a header (the model's feature columns; other columns, "
        "such as the target, are ignored) or NPZ with an array X",
    )
    p.add_argument(
        "--output",
        metavar="FILE.csv",
        help="where to write the predictions (default: standard output)",
    )
    p.add_argument(
        "--proba", action="store_true", help="for classifiers, also write each class's probability"
    )


def run(args):
    """Run fastnn predict with parsed arguments; returns the exit status."""
    import fastnn

    try:
        model = fastnn.load(args.model)
        meta = fastnn.io.read_metadata(args.model)
    except (ValueError, OSError, MemoryError) as e:
        raise CommandError(str(e)) from None
    n_in = _input_features(model)
    X = _features(args.data, meta, n_in)
    if X.ndim > 2:  # images: flattened for an MLP, with a channel axis for a CNN
        X = X.reshape(len(X), -1) if n_in is not None else (X[:, None] if X.ndim == 3 else X)
    if n_in is not None and X.shape[1] != n_in:
        raise CommandError(f"{args.data}: {X.shape[1]} feature columns, the model takes {n_in}")
    try:
        out = model.predict(X)
    except (ValueError, MemoryError) as e:
        raise CommandError(f"{args.data}: {e}") from None
    classes = meta.get("classes")
    if meta.get("task") == "classification" and classes:
        header, rows = _classification_rows(out, classes, args.proba)
    else:
        names = (
            ["prediction"]
            if out.shape[1] == 1
            else [f"prediction_{j}" for j in range(out.shape[1])]
        )
        header, rows = names, out.tolist()
    try:
        f = open(args.output, "w", newline="") if args.output else sys.stdout
    except OSError as e:
        raise CommandError(f"--output {args.output}: {e.strerror or e}") from None
    try:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    finally:
        if args.output:
            f.close()
    if args.output:
        print(f"Wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    return 0


def _input_features(model):
    """The number of input features of a saved model, or None if it does not say."""
    first = model.layers[0] if hasattr(model, "layers") and len(model.layers) else model
    return getattr(first, "num_features", None) or getattr(first, "in_features", None)


def _features(path, meta, n_in):
    """The feature matrix of the data file, columns in the model's order."""
    if not os.path.isfile(path):
        raise CommandError(f"no such file: {path}")
    if path.lower().endswith(".npz"):
        from ..datasets.tables import read_npz

        (X,) = read_npz(path, ["X"], CommandError)
    else:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        except (UnicodeDecodeError, csv.Error) as e:
            raise CommandError(f"{path}: not a readable CSV text file ({e})") from None
        if len(rows) < 2:
            raise CommandError(f"{path}: needs a header row and at least one data row")
        header = [h.strip() for h in rows[0]]
        names = meta.get("feature_names") or header[:n_in]
        missing = [n for n in names if n not in header]
        if missing:
            raise CommandError(
                f"{path}: missing feature columns {missing[:5]}"
                + (" ..." if len(missing) > 5 else "")
            )
        idx = [header.index(n) for n in names]
        X = np.empty((len(rows) - 1, len(idx)))
        for i, r in enumerate(rows[1:]):
            for j, c in enumerate(idx):
                try:
                    X[i, j] = float(r[c])
                except (ValueError, IndexError):
                    raise CommandError(
                        f"{path}: line {i + 2}, column {names[j]!r}: not a number"
                    ) from None
    if X.ndim not in (2, 3, 4) or X.dtype.kind not in "biuf":
        raise CommandError(
            f"{path}: expected a 2-D numeric array or images (N, [C,] H, W), "
            f"got {X.dtype} {X.shape}"
        )
    if not np.isfinite(X).all():
        raise CommandError(f"{path}: NaN or infinite values in the features")
    return X


def _classification_rows(logits, classes, proba):
    pred = logits.argmax(axis=1)
    header = ["prediction"]
    rows = [[classes[k]] for k in pred]
    if proba:
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        header += [f"p_{c}" for c in classes]
        rows = [r + [f"{v:.6g}" for v in pr] for r, pr in zip(rows, p)]
    return header, rows
