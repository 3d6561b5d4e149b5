"""Reading a user's data set from a CSV or NPZ file into (X, y)."""
import csv
import os

import numpy as np


class DataError(ValueError):
    """A data file that cannot be used as given; the message says why."""


def load_table(path, target=None):
    """Read features and target from a file: returns (X, y, feature_names, target_name).

    CSV: a header row, then one sample per row; every feature column must be numeric;
    the target column (name `target`, default the last column) may hold numbers or
    class names. NPZ: arrays `X` (samples, features) and `y` (`target` is ignored).
    Empty cells and NaN/inf values are refused with the row and column named."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        return _load_npz(path)
    if ext in (".csv", ".txt"):
        return _load_csv(path, target)
    raise DataError(f"{path}: unsupported file type {ext!r}; use .csv or .npz")


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("X", "y") if k not in npz.files]
            if missing:
                raise DataError(f"{path}: the NPZ file needs arrays 'X' and 'y'; it has "
                                f"{sorted(npz.files)}")
            X, y = npz["X"], npz["y"]
    except (ValueError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable NPZ file ({e})") from None
    if X.ndim not in (2, 3, 4):
        raise DataError(f"{path}: X must be 2-D (samples, features) or images (samples, "
                        f"[channels,] height, width), got shape {X.shape}")
    if y.shape[:1] != X.shape[:1]:
        raise DataError(f"{path}: X has {X.shape[0]} samples but y has {y.shape[0]}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    names = [f"x{i}" for i in range(int(np.prod(X.shape[1:])))]
    _check_finite(X.reshape(len(X), -1).astype(np.float64), path, names,
                  lambda i: f"row {i} of X")
    return X, y, names, "y"


def _load_csv(path, target):
    # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark, which would
    # otherwise become part of the first column's name.
    rows, lines = [], []  # lines: each kept row's line number in the file (blank rows skipped)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for r in reader:
                if r and any(c.strip() for c in r):
                    rows.append(r)
                    lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV text file ({e})") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    width = len(header)
    for r, line in zip(rows[1:], lines[1:]):
        if len(r) != width:
            raise DataError(f"{path}: line {line} has {len(r)} fields, the header has {width}")
    lines = lines[1:]
    if target is None:
        t = width - 1
    elif target in header:
        t = header.index(target)
    else:
        shown = ", ".join(header[:8]) + (f", ... ({len(header)} columns)" if len(header) > 8 else "")
        raise DataError(f"{path}: target column {target!r} not found; columns are {shown}")
    if width < 2:
        raise DataError(f"{path}: needs at least one feature column besides the target")
    cols = list(zip(*rows[1:]))
    features = [j for j in range(width) if j != t]
    X = np.empty((len(rows) - 1, len(features)), np.float64)
    for out, j in enumerate(features):
        X[:, out] = _numeric(cols[j], header[j], path, lines)
    _check_finite(X, path, [header[j] for j in features], lambda i: f"line {lines[i]}")
    y = _target(cols[t], header[t], path, lines)
    return X, y, [header[j] for j in features], header[t]


def _numeric(values, name, path, lines):
    out = np.empty(len(values))
    for i, v in enumerate(values):
        v = v.strip()
        if not v:
            raise DataError(f"{path}: empty value in column {name!r}, line {lines[i]}")
        try:
            out[i] = float(v)
        except ValueError:
            raise DataError(f"{path}: column {name!r} is not numeric (line {lines[i]}: {v!r})") \
                from None
    return out


def _target(values, name, path, lines):
    """Numbers as floats, otherwise the class names as strings."""
    values = [v.strip() for v in values]
    if any(not v for v in values):
        i = next(i for i, v in enumerate(values) if not v)
        raise DataError(f"{path}: empty target value in column {name!r}, line {lines[i]}")
    try:
        y = np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)
    if not np.isfinite(y).all():
        i = int(np.flatnonzero(~np.isfinite(y))[0])
        raise DataError(f"{path}: NaN or infinite target in column {name!r}, line {lines[i]}")
    return y


def _check_finite(X, path, names, row_name):
    """row_name(i): how a message names sample i ('line 7' for CSV, 'row 5 of X' for NPZ)."""
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{path}: NaN or infinite value in column {names[j]!r}, {row_name(i)} "
                        f"({int(bad.sum())} such values in all); clean or impute the data first")


def infer_task(y):
    """'classification' for class names or few distinct integer values, else
    'regression'."""
    if y.dtype.kind in "USO":
        return "classification"
    values = np.unique(y)
    integral = np.all(np.mod(values, 1) == 0)
    few = len(values) <= max(2, min(50, int(0.05 * len(y)) + 2))
    return "classification" if integral and few else "regression"


def encode_labels(y):
    """(labels 0..K-1 as int64, class values) for class names or integer labels."""
    classes, labels = np.unique(y, return_inverse=True)
    return labels.astype(np.int64), classes
