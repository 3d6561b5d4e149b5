"""Reading a user's data set from a CSV, Parquet or NPZ file into (X, y).

With pandas installed (`pip install "fastnn[tables]"`, which also brings pyarrow for
Parquet), CSV files are parsed by pandas' C engine; without it, by Python's csv module
(the same results, about 15 times slower). When pandas finds anything wrong with a
file (a ragged row, a non-numeric or empty cell, NaN or infinity), the csv module
reads it again to name the offending line and column.
"""

from __future__ import annotations

import csv
import os
import warnings
import zipfile
import zlib

import numpy as np


class DataError(ValueError):
    """A data file that cannot be used as given; the message says why."""


def load_table(path, target: str | None = None):
    """Read features and target from a file: returns (X, y, feature_names, target_name).

    CSV (.csv, .txt): a header row, then one sample per row; every feature column must
    be numeric; the target column (name `target`, default the last column) may hold
    numbers or class names. Parquet (.parquet, .pq; needs pyarrow): the same layout as
    columns. NPZ: arrays `X` (samples, features) and `y` (`target` is ignored).

    X is float64 (n_samples, n_features); y is (n_samples,): int64 for a column of
    integers, float64 for other numbers, strings for class names. Empty cells and
    NaN/inf values are refused with the line and column named.

    Example:
        >>> X, y, names, target = load_table("iris.csv", target="species")
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        return _load_npz(path)
    if ext in (".csv", ".txt"):
        return _load_csv(path, target)
    if ext in (".parquet", ".pq"):
        return _load_parquet(path, target)
    raise DataError(f"{path}: unsupported file type {ext!r}; use .csv, .parquet or .npz")


def read_npz(path, names, error=DataError):
    """The arrays `names` of an NPZ file (never unpickled); `error` for a file that is
    not a readable NPZ (corrupt zip, damaged array, object arrays) or lacks an array."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in names if k not in npz.files]
            if missing:
                raise error(
                    f"{path}: the NPZ file needs arrays "
                    f"{' and '.join(repr(k) for k in names)}; it has "
                    f"{sorted(npz.files)}"
                )
            return [npz[k] for k in names]
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
    ) as e:
        if isinstance(e, error):
            raise
        raise error(f"{path}: not a readable NPZ file ({type(e).__name__}: {e})") from None


def _load_npz(path):
    X, y = read_npz(path, ["X", "y"])
    if X.ndim not in (2, 3, 4):
        raise DataError(
            f"{path}: X must be 2-D (samples, features) or images (samples, "
            f"[channels,] height, width), got shape {X.shape}"
        )
    if y.shape[:1] != X.shape[:1]:
        raise DataError(f"{path}: X has {X.shape[0]} samples but y has {y.shape[0]}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        i = int(np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).any(axis=1))[0])
        raise DataError(f"{path}: NaN or infinite target in row {i} of y")
    names = [f"x{i}" for i in range(int(np.prod(X.shape[1:])))]
    _check_finite(X.reshape(len(X), -1).astype(np.float64), path, names, lambda i: f"row {i} of X")
    return X, y, names, "y"


def _load_csv(path, target):
    try:
        import pandas as pd
    except ImportError:
        return _read_csv_python(path, target)
    try:
        with warnings.catch_warnings():  # a row longer than the header is an error
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark, which
            # would otherwise become part of the first column's name. Only empty cells are
            # missing values; the words 'NA', 'null', ... are not numbers.
            frame = pd.read_csv(
                path,
                encoding="utf-8-sig",
                skipinitialspace=True,
                keep_default_na=False,
                na_values=[""],
                low_memory=False,
                index_col=False,
            )
    except (
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
        ValueError,
    ):
        return _read_csv_python(path, target)  # raises, naming the line and column
    try:
        return _from_frame(frame, path, target)
    except DataError:
        return _read_csv_python(path, target)  # raises, naming the line and column


def _load_parquet(path, target):
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pandas and pyarrow: pip install 'fastnn[tables]'"
        ) from None
    except Exception as e:  # pyarrow's errors for corrupt files have no common base
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    return _from_frame(frame, path, target, rows=lambda i: f"row {i}")


def _from_frame(frame, path, target, rows=None):
    """(X, y, feature names, target name) of a DataFrame whose cells are all usable,
    else DataError. rows(i) names sample i in messages (CSV: the diagnosis does)."""
    header = [str(h).strip() for h in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{path}: needs a header row and at least one data row")
    t = _target_index(header, target, path)
    features = [j for j in range(len(header)) if j != t]
    for j in features:
        if frame.dtypes.iloc[j].kind not in "biuf":
            raise DataError(f"{path}: column {header[j]!r} is not numeric")
    X = frame.iloc[:, features].to_numpy(dtype=np.float64)
    names = [header[j] for j in features]
    _check_finite(X, path, names, rows or (lambda i: f"data row {i + 1}"))
    col = frame.iloc[:, t]
    if col.dtype.kind in "biu":
        y = col.to_numpy(dtype=np.int64)
    elif col.dtype.kind == "f":
        y = col.to_numpy(dtype=np.float64)
        if not np.isfinite(y).all():
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            where = rows(i) if rows else f"data row {i + 1}"
            raise DataError(
                f"{path}: NaN, empty or infinite target in column {header[t]!r}, {where}"
            )
    else:
        try:  # numbers, some spelt 'nan' or 'inf' (which pandas leaves as text)
            [float(v) for v in col.tolist()]
        except (ValueError, TypeError):
            pass  # class names
        else:
            raise DataError(f"{path}: NaN or infinite target in column {header[t]!r}")
        if col.isna().any():
            i = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise DataError(
                f"{path}: empty target value in column {header[t]!r}, "
                f"{rows(i) if rows else f'data row {i + 1}'}"
            )
        y = np.array([str(v).strip() for v in col.tolist()])
    return X, y, names, header[t]


def _read_csv_python(path, target):
    """The CSV table read with the csv module, or the DataError naming the first bad
    line and column (used without pandas, and to explain what pandas refused)."""
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
    t = _target_index(header, target, path)
    cols = list(zip(*rows[1:]))
    features = [j for j in range(width) if j != t]
    X = np.empty((len(rows) - 1, len(features)), np.float64)
    for out, j in enumerate(features):
        X[:, out] = _numeric(cols[j], header[j], path, lines)
    _check_finite(X, path, [header[j] for j in features], lambda i: f"line {lines[i]}")
    y = _target(cols[t], header[t], path, lines)
    return X, y, [header[j] for j in features], header[t]


def _target_index(header, target, path):
    """The target column's index (default the last), or DataError."""
    if target is None:
        t = len(header) - 1
    elif target in header:
        t = header.index(target)
    else:
        shown = ", ".join(header[:8]) + (
            f", ... ({len(header)} columns)" if len(header) > 8 else ""
        )
        raise DataError(f"{path}: target column {target!r} not found; columns are {shown}")
    if len(header) < 2:
        raise DataError(f"{path}: needs at least one feature column besides the target")
    return t


def _numeric(values, name, path, lines):
    out = np.empty(len(values))
    for i, v in enumerate(values):
        v = v.strip()
        if not v:
            raise DataError(f"{path}: empty value in column {name!r}, line {lines[i]}")
        try:
            out[i] = float(v)
        except ValueError:
            raise DataError(
                f"{path}: column {name!r} is not numeric (line {lines[i]}: {v!r})"
            ) from None
    return out


def _target(values, name, path, lines):
    """Integers as int64, other numbers as float64, otherwise the class names as
    strings; DataError for an empty, NaN or infinite value."""
    values = [v.strip() for v in values]
    if any(not v for v in values):
        i = next(i for i, v in enumerate(values) if not v)
        raise DataError(f"{path}: empty target value in column {name!r}, line {lines[i]}")
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except (ValueError, OverflowError):
        pass
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
        raise DataError(
            f"{path}: NaN or infinite value in column {names[j]!r}, {row_name(i)} "
            f"({int(bad.sum())} such values in all); clean or impute the data first"
        )


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
    """(labels 0..K-1 as int64, class values) for class names or integer labels
    (integer-valued floats give integer classes, so that they print as 3, not 3.0)."""
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    classes, labels = np.unique(y, return_inverse=True)
    return labels.astype(np.int64), classes
