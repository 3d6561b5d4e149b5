"""Data checks ("bugs from the data"): is the data well formed, are the
labels right and still attached to their samples after shuffling, are training and
test data preprocessed the same way and drawn from the same distribution, and does
the test set leak into the training set."""

import numpy as np

from ..batching import Batches
from ..datasets.tables import infer_task
from ._result import Issue, Result, fmt, issue_lines, verdict

_MAX_LOCATIONS = 5


class DataReport(Result):
    """Outcome of check_data: `issues` (a list of Issue, most severe first), `passed`
    (no issue of severity 'error'), and a summary: `task` ('classification' or
    'regression'), `n_train`, `n_test`, `n_features`, `class_counts` ({label: count}
    of the training labels, classification only)."""

    title = "data check"

    def __init__(self, issues, task, n_train, n_test, n_features, class_counts):
        order = {s: i for i, s in enumerate(Issue.SEVERITIES)}
        self.issues = sorted(issues, key=lambda i: order[i.severity])
        self.task = task
        self.n_train, self.n_test, self.n_features = n_train, n_test, n_features
        self.class_counts = class_counts
        self.passed = not any(i.severity == "error" for i in self.issues)

    @property
    def codes(self):
        """The set of issue codes found."""
        return {i.code for i in self.issues}

    def issue(self, code):
        """The first issue with this code, or None."""
        return next((i for i in self.issues if i.code == code), None)

    def _lines(self):
        counts = {s: sum(i.severity == s for i in self.issues) for s in Issue.SEVERITIES}
        test = f", {self.n_test} test samples" if self.n_test else ""
        lines = [
            f"  {verdict(self.passed)}: {self.n_train} training samples{test}, "
            f"{self.n_features} features, {self.task}; {counts['error']} errors, "
            f"{counts['warning']} warnings, {counts['info']} notes"
        ]
        if self.class_counts:
            items = list(self.class_counts.items())
            shown = ", ".join(f"{k}: {v}" for k, v in items[:12])
            more = f", ... ({len(items)} classes)" if len(items) > 12 else ""
            lines.append(f"  classes (train): {shown}{more}")
        return lines + issue_lines(self.issues)


# -- helpers ------------------------------------------------------------------------------
_CHUNK = 8192  # rows per chunk: row-wise checks never copy the whole data set


def _rows(X):
    """X as (samples, features) without copying (a view when X is contiguous)."""
    return X.reshape(X.shape[0], -1)


def _chunks(A):
    """(first row, float64 copy of the rows) over A in chunks."""
    for i in range(0, A.shape[0], _CHUNK):
        yield i, np.asarray(A[i : i + _CHUNK], dtype=np.float64)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z):
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def _fingerprints(A):
    """A 64-bit hash per row of A's values (as float64; -0.0 and 0.0 equal, NaNs equal):
    identical rows get identical fingerprints, different rows collide with probability
    ~2^-64 per pair. Computed in chunks, so a large X is never copied whole."""
    out = np.empty(A.shape[0], np.uint64)
    cols = None
    with np.errstate(over="ignore"):
        for i, chunk in _chunks(A):
            chunk = np.where(np.isnan(chunk), np.nan, chunk) + 0.0
            if cols is None:
                cols = _mix(np.arange(1, chunk.shape[1] + 1, dtype=np.uint64) * _GOLDEN)
            bits = np.ascontiguousarray(chunk).view(np.uint64)
            out[i : i + chunk.shape[0]] = _mix(_mix(bits ^ cols).sum(axis=1, dtype=np.uint64))
    return out


def _row_keys(A):
    """One hashable bytes key per row (-0.0 and 0.0 made equal); for small arrays."""
    A = np.ascontiguousarray(A) + 0 if A.dtype.kind == "f" else np.ascontiguousarray(A)
    return [r.tobytes() for r in A.reshape(A.shape[0], -1)]


def _finite_stats(A):
    """Per-column mean and std over the finite values (NaN where a column has none),
    accumulated in float64 chunk by chunk."""
    d = A.shape[1]
    count, total, sq = np.zeros(d), np.zeros(d), np.zeros(d)
    shift = None
    for _, chunk in _chunks(A):
        ok = np.isfinite(chunk)
        if shift is None:  # shifting by a typical value keeps the variance accurate
            first = np.where(ok, chunk, 0.0)
            shift = first.sum(axis=0) / np.maximum(ok.sum(axis=0), 1)
        c = np.where(ok, chunk - shift, 0.0)
        count += ok.sum(axis=0)
        total += c.sum(axis=0)
        sq += (c * c).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        var = np.maximum(sq / count - mean * mean, 0.0)
        # values equal up to round-off count as constant
        var[var <= (1e-12 * np.abs(mean + shift)) ** 2] = 0.0
    return mean + shift, np.sqrt(var)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def _listing(indices, limit=8):
    indices = list(indices)
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


# -- the checks -----------------------------------------------------------------------------
def _check_finite(A, name, issues):
    if A.dtype.kind != "f":
        return
    n_nan = n_inf = rows = 0
    where = []
    for i, chunk in _chunks(A):
        nan, inf = np.isnan(chunk), np.isinf(chunk)
        bad = nan | inf
        if bad.any():
            n_nan += int(nan.sum())
            n_inf += int(inf.sum())
            rows += int(bad.any(axis=1).sum())
            if len(where) < _MAX_LOCATIONS:
                where += [(int(r) + i, int(c)) for r, c in np.argwhere(bad)[:_MAX_LOCATIONS]]
    if n_nan or n_inf:
        where = where[:_MAX_LOCATIONS]
        issues.append(
            Issue(
                "nonfinite",
                "error",
                f"{name} has {n_nan} NaN and {n_inf} infinite values in {rows} rows; first at "
                f"(row, column) {', '.join(map(str, where))}",
                "impute or drop those rows/columns before training (a single NaN turns every "
                "weight into NaN after one step)",
                where=where,
            )
        )


def _check_features(Xtr, issues):
    mean, std = _finite_stats(Xtr)
    const = np.flatnonzero(~(std > 0))
    if const.size:
        issues.append(
            Issue(
                "constant_feature",
                "warning",
                f"{const.size} of {Xtr.shape[1]} features are constant in the training data "
                f"(columns {_listing(const)})",
                "they carry no information: drop them (after standardising they are all 0)",
                where=const.tolist(),
            )
        )
    live = np.flatnonzero(std > 0)
    if live.size >= 2:
        s = std[live]
        ratio = float(s.max() / s.min())
        if ratio > 100:
            issues.append(
                Issue(
                    "scale_spread",
                    "warning",
                    f"feature scales differ by a factor {fmt(ratio)} (std from {fmt(s.min())} in "
                    f"column {live[s.argmin()]} to {fmt(s.max())} in column {live[s.argmax()]})",
                    "standardise the inputs: fastnn.preprocessing.Standardizer fitted on the "
                    "training data and applied unchanged to the test data",
                    where=[int(live[s.argmin()]), int(live[s.argmax()])],
                )
            )
    if live.size:
        big = live[(std[live] > 100) | (np.abs(mean[live]) > 100)]
        if big.size:
            issues.append(
                Issue(
                    "large_scale",
                    "warning",
                    f"{big.size} features have large values (|mean| or std > 100; columns "
                    f"{_listing(big)})",
                    "large inputs saturate sigmoid/tanh units and make the first layer's "
                    "gradients huge: standardise the inputs (Standardizer)",
                    where=big.tolist(),
                )
            )
    return mean, std


def _standardised(mean, std):
    live = std > 0
    if not live.any():
        return False
    return bool(np.median(np.abs(mean[live])) < 0.05 and np.median(np.abs(std[live] - 1)) < 0.05)


def _check_preprocessing(mtr, str_, Xte, issues):
    mte, ste = _finite_stats(Xte)
    live = (str_ > 0) & np.isfinite(ste)
    if not live.any():
        return
    ratio = float(np.median(ste[live] / str_[live]))
    offset = float(np.median(np.abs(mte[live] - mtr[live]) / str_[live]))
    train_std, test_std = _standardised(mtr, str_), _standardised(mte, ste)
    if (
        (train_std != test_std and (ratio > 2 or ratio < 0.5 or offset > 1))
        or ratio > 5
        or ratio < 0.2
    ):
        which = (
            "the training data is standardised but the test data is not"
            if train_std and not test_std
            else "the test data is standardised but the training data is not"
            if test_std and not train_std
            else "training and test data have very different scales"
        )
        issues.append(
            Issue(
                "preprocessing_mismatch",
                "error",
                f"{which} (median test/train std ratio {fmt(ratio)}, median mean offset "
                f"{fmt(offset)} training stds)",
                "apply the same preprocessing to both: fit the Standardizer on the training "
                "data, then transform training and test data with it",
            )
        )


def _check_shift(Xtr, Xte, str_, issues, max_rows, gen):
    from scipy import stats

    def sample(A):
        if A.shape[0] > max_rows:
            A = A[np.sort(gen.choice(A.shape[0], max_rows, replace=False))]
        return np.asarray(A, dtype=np.float64)

    A, B = sample(Xtr), sample(Xte)
    live = np.flatnonzero(str_ > 0)
    if live.size == 0 or A.shape[0] < 5 or B.shape[0] < 5:
        return
    A, B = A[:, live], B[:, live]
    ok_a, ok_b = np.isfinite(A).all(axis=1), np.isfinite(B).all(axis=1)
    A, B = A[ok_a], B[ok_b]
    if A.shape[0] < 5 or B.shape[0] < 5:
        return
    ma, mb = A.mean(axis=0), B.mean(axis=0)
    pooled = np.sqrt((A.var(axis=0) + B.var(axis=0)) / 2)
    smd = np.where(pooled > 0, (mb - ma) / np.where(pooled > 0, pooled, 1), 0.0)
    ks = stats.ks_2samp(A, B, axis=0, method="asymp")
    alpha = 1e-3 / live.size  # Bonferroni over the features
    shifted = np.flatnonzero((ks.pvalue < alpha) & ((np.abs(smd) > 0.25) | (ks.statistic > 0.2)))
    if shifted.size:
        worst = shifted[np.argsort(-np.abs(smd[shifted]))]
        rows = [
            (int(live[j]), float(smd[j]), float(ks.statistic[j]), float(ks.pvalue[j]))
            for j in worst[:5]
        ]
        desc = "; ".join(
            f"column {c}: SMD {fmt(s)}, KS {fmt(k)} (p={fmt(p)})" for c, s, k, p in rows
        )
        issues.append(
            Issue(
                "distribution_shift",
                "warning",
                f"{shifted.size} features are distributed differently in training and test "
                f"data ({desc})",
                "a train/test mismatch: check that both splits come from the "
                "same source and preprocessing; a shifted test set cannot be fixed by more "
                "training data",
                where=[int(live[j]) for j in worst],
            )
        )


def _classification_labels(y, name, issues, n_classes):
    """Labels as an int64 array (or None when they cannot be read as classes)."""
    if y.dtype.kind in "USO":
        issues.append(
            Issue(
                "string_labels",
                "info",
                f"{name} labels are class names ({y.dtype})",
                "encode them as 0..K-1: fastnn.datasets.encode_labels(y)",
            )
        )
        return None
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        finite = y[np.isfinite(y)]
        if finite.size and np.any(np.mod(finite, 1) != 0):
            issues.append(
                Issue(
                    "label_dtype",
                    "error",
                    f"{name} labels are non-integer floats",
                    "class labels must be integers 0..K-1; for regression use MSELoss",
                )
            )
            return None
        issues.append(
            Issue(
                "label_dtype",
                "info",
                f"{name} labels are floats holding integers",
                "CrossEntropyLoss takes integer labels: y.astype(np.int64)",
            )
        )
        y = np.where(np.isfinite(y), y, -1).astype(np.int64)
    y = y.astype(np.int64, copy=False)
    if y.size == 0:
        return y
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        bad = np.flatnonzero(y < 0)
        issues.append(
            Issue(
                "label_range",
                "error",
                f"{name} has {bad.size} negative labels (min {lo}; rows {_listing(bad)})",
                "class labels must be 0..K-1",
                where=bad[:_MAX_LOCATIONS].tolist(),
            )
        )
    if n_classes is not None and hi >= n_classes:
        bad = np.flatnonzero(y >= n_classes)
        issues.append(
            Issue(
                "label_range",
                "error",
                f"{name} has {bad.size} labels >= n_classes={n_classes} (max {hi}; rows "
                f"{_listing(bad)})",
                f"labels must be 0..{n_classes - 1}: re-encode them "
                "(fastnn.datasets.encode_labels) or give the model more outputs",
                where=bad[:_MAX_LOCATIONS].tolist(),
            )
        )
    return y


def _check_label_set(ytr, issues, n_classes):
    values, counts = np.unique(ytr[ytr >= 0], return_counts=True)
    if values.size == 0:
        return {}
    k = int(values.max()) + 1 if n_classes is None else n_classes
    missing = sorted(set(range(k)) - set(values.tolist()))
    if missing:
        one_based = values.min() == 1 and (n_classes is None or values.max() == n_classes)
        advice = (
            "labels look 1-based: subtract 1 (CrossEntropyLoss wants 0..K-1)"
            if one_based
            else "re-encode the labels to 0..K-1 (fastnn.datasets.encode_labels), or check "
            "that no class was lost when splitting"
        )
        issues.append(
            Issue(
                "label_gaps",
                "warning",
                f"the training labels do not cover 0..{k - 1}: classes {_listing(missing)} have "
                "no samples",
                advice,
                where=missing,
            )
        )
    if values.size >= 2:
        ratio = counts.max() / counts.min()
        if ratio > 10:
            issues.append(
                Issue(
                    "class_imbalance",
                    "warning",
                    f"classes are imbalanced: the largest has {counts.max()} samples, the "
                    f"smallest {counts.min()} (ratio {fmt(ratio)})",
                    "watch per-class metrics, not only accuracy; consider a stratified split, "
                    "class weights or resampling",
                )
            )
    if values.size == 1:
        issues.append(
            Issue(
                "single_class",
                "error",
                f"every training label is {values[0]}",
                "a classifier needs at least two classes; check how the labels were read",
            )
        )
    return {int(v): int(c) for v, c in zip(values, counts)}


def _check_test_labels(ytr, yte, issues):
    unseen = sorted(set(np.unique(yte).tolist()) - set(np.unique(ytr).tolist()))
    if unseen:
        issues.append(
            Issue(
                "unseen_test_labels",
                "warning",
                f"the test labels contain classes never seen in training: {_listing(unseen)}",
                "split with stratification (train_test_split(..., stratify=y))",
                where=unseen,
            )
        )
    from scipy import stats

    classes = np.union1d(ytr, yte)
    if classes.size >= 2 and min(ytr.size, yte.size) >= 20:
        ctr = np.array([(ytr == c).sum() for c in classes])
        cte = np.array([(yte == c).sum() for c in classes])
        tv = 0.5 * np.abs(ctr / ctr.sum() - cte / cte.sum()).sum()
        keep = (ctr + cte) > 0
        p = stats.chi2_contingency(np.stack([ctr[keep], cte[keep]]))[1]
        if tv > 0.1 and p < 1e-3:
            issues.append(
                Issue(
                    "label_shift",
                    "warning",
                    f"class proportions differ between training and test data (total variation "
                    f"{fmt(tv)}, chi-square p={fmt(p)})",
                    "split with stratification, or check that both splits come from the same "
                    "population",
                )
            )


def _check_duplicates(Xtr, ytr, Xte, task, issues):
    fp = _fingerprints(Xtr)
    n = fp.size
    uniq, ids, counts = np.unique(fp, return_inverse=True, return_counts=True)
    dup_rows = n - uniq.size
    if dup_rows:
        issues.append(
            Issue(
                "duplicate_rows",
                "warning" if dup_rows > 0.01 * n else "info",
                f"{dup_rows} training rows repeat an earlier row ({fmt(100 * dup_rows / n)}%)",
                "duplicates weigh those samples more and inflate validation scores when they "
                "land on both sides of a split; drop them unless they are real repeats",
            )
        )
        if task == "classification" and ytr is not None and ytr.ndim == 1:
            # distinct (row group, label) pairs; a group with two labels conflicts
            pairs = np.unique(np.stack([ids, ytr.astype(np.int64)]), axis=1)
            groups, per_group = np.unique(pairs[0], return_counts=True)
            conflict_groups = groups[per_group > 1]
            if conflict_groups.size:
                rows = np.flatnonzero(np.isin(ids, conflict_groups))
                issues.append(
                    Issue(
                        "conflicting_labels",
                        "warning",
                        f"{conflict_groups.size} groups of identical inputs have different "
                        f"labels ({rows.size} rows, e.g. rows {_listing(rows, 6)})",
                        "no model can fit both; check the labelling, and whether labels were "
                        "shuffled separately from the samples",
                        where=rows[:20].tolist(),
                    )
                )
    if Xte is not None and Xte.shape[1] == Xtr.shape[1]:
        hits = np.flatnonzero(np.isin(_fingerprints(Xte), uniq)).tolist()
        if hits:
            issues.append(
                Issue(
                    "train_test_duplicates",
                    "error",
                    f"{len(hits)} test rows ({fmt(100 * len(hits) / Xte.shape[0])}% of the test "
                    f"set) also appear in the training data (test rows {_listing(hits)})",
                    "leakage: the test score overstates generalisation; remove them from the "
                    "test set (or de-duplicate before splitting)",
                    where=hits[:20],
                )
            )


def _label_signal(Xtr, ytr, task, gen, max_rows=2000, k=5, permutations=200):
    """(observed statistic, permutation mean, permutation std, statistic name) of a k-NN
    predictor of y from X, or None when it cannot be computed.

    Classification: leave-one-out balanced accuracy of a k-NN vote (1/K by chance, for
    any predictor unrelated to the labels). Regression: correlation of the k-NN mean
    with the target. The null distribution comes from permuting the labels over the
    same neighbours."""
    idx = np.arange(Xtr.shape[0])
    if idx.size > 2 * max_rows:  # sample first: never scan a large X whole
        idx = np.sort(gen.choice(idx, 2 * max_rows, replace=False))
    ok = np.isfinite(np.asarray(Xtr[idx], dtype=np.float64)).all(axis=1)
    if task == "classification":
        ok &= ytr[idx] >= 0
    idx = idx[ok]
    if idx.size > max_rows:
        idx = np.sort(gen.choice(idx, max_rows, replace=False))
    if idx.size < 4 * k:
        return None
    A = np.asarray(Xtr[idx], dtype=np.float64)
    std = A.std(axis=0)
    A = (A[:, std > 0] - A[:, std > 0].mean(axis=0)) / std[std > 0]
    if A.shape[1] == 0:
        return None
    sq = np.einsum("ij,ij->i", A, A)
    d = sq[:, None] + sq[None, :] - 2 * A @ A.T
    np.fill_diagonal(d, np.inf)
    nbrs = np.argpartition(d, k, axis=1)[:, :k]
    y = ytr[idx]
    if task == "classification":
        classes, yi = np.unique(y, return_inverse=True)
        K = classes.size
        if K < 2:
            return None

        def stat(labels):
            votes = np.zeros((labels.size, K))
            np.add.at(votes, (np.repeat(np.arange(labels.size), k), labels[nbrs].ravel()), 1)
            pred = votes.argmax(axis=1)
            return np.mean([np.mean(pred[labels == c] == c) for c in range(K)])

        observed = stat(yi)
        null = [stat(gen.permutation(yi)) for _ in range(permutations)]
        return observed, float(np.mean(null)), float(np.std(null)), "balanced accuracy"
    y = y.reshape(y.shape[0], -1).astype(np.float64)
    if not np.isfinite(y).all() or np.all(y.std(axis=0) == 0):
        return None

    def stat(targets):
        pred = targets[nbrs].mean(axis=1)
        c = [
            np.corrcoef(pred[:, j], targets[:, j])[0, 1]
            for j in range(targets.shape[1])
            if targets[:, j].std() > 0
        ]
        return float(np.nanmean(c))

    observed = stat(y)
    null = [stat(y[gen.permutation(y.shape[0])]) for _ in range(permutations // 4)]
    return observed, float(np.mean(null)), float(np.std(null)), "k-NN correlation"


def _check_label_signal(Xtr, ytr, task, gen, issues):
    res = _label_signal(Xtr, ytr, task, gen)
    if res is None:
        return
    observed, mu, sd, name = res
    z = (observed - mu) / max(sd, 1e-12)
    if z < 3:
        issues.append(
            Issue(
                "labels_unrelated",
                "warning",
                f"the labels look unrelated to the features: a 5-nearest-neighbour predictor "
                f"scores {name} {fmt(observed)}, the same as with randomly permuted labels "
                f"({fmt(mu)} +- {fmt(sd)})",
                "check that X and y were shuffled with ONE permutation (X[p], y[p]) and that "
                "the label column is the right one; if the signal is genuinely weak, ignore this",
            )
        )


def _check_batching(X, y, issues, batch_size, batches, gen, max_rows):
    """Draw one epoch of mini-batches - fastnn's Batches with a permutation, or the
    user's `batches(X, y)` - and check that every batch label is the label of its
    sample."""
    m = min(X.shape[0], max_rows)
    Xs, ys = X[:m], y[:m]
    if batches is None:
        x_dtype = np.float64 if X.dtype == np.float64 else np.float32
        loader = Batches(
            np.ascontiguousarray(Xs), np.ascontiguousarray(ys), batch_size, x_dtype, ys.dtype
        )
        order = gen.permutation(m)
        seen = np.zeros(m, np.int64)
        bad = 0
        start = 0
        for xb, yb, _ in loader.epoch(order):
            idx = order[start : start + xb.shape[0]]
            start += xb.shape[0]
            seen[idx] += 1
            a = xb.reshape(xb.shape[0], -1)
            b = Xs[idx].astype(x_dtype).reshape(xb.shape[0], -1)
            same_x = np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
            same_y = np.all(yb.reshape(yb.shape[0], -1) == ys[idx].reshape(yb.shape[0], -1), axis=1)
            bad += int(np.sum(~(same_x & same_y)))
        if bad or np.any(seen != 1):
            issues.append(
                Issue(
                    "batching_misaligned",
                    "error",
                    f"fastnn's mini-batching returned {bad} samples whose input or label is not "
                    f"the one at its index ({int(np.sum(seen != 1))} samples not seen exactly "
                    "once per epoch)",
                    "this is a bug in fastnn.batching; please report it",
                )
            )
        return
    lookup = {}
    x_dtype = None
    bad = unknown = total = 0
    for xb, yb in batches(Xs, ys):
        xb, yb = np.asarray(xb), np.asarray(yb)
        if x_dtype is None:
            x_dtype = xb.dtype
            for key, label in zip(
                _row_keys(Xs.astype(x_dtype)), _row_keys(np.asarray(ys).reshape(m, -1))
            ):
                lookup.setdefault(key, set()).add(label)
        ykeys = _row_keys(yb.astype(ys.dtype).reshape(yb.shape[0], -1))
        for key, label in zip(_row_keys(xb.astype(x_dtype)), ykeys):
            total += 1
            labels = lookup.get(key)
            if labels is None:
                unknown += 1
            elif label not in labels:
                bad += 1
    if total == 0:
        issues.append(
            Issue(
                "batching_empty",
                "error",
                "the batch iterator yielded no samples",
                "check the data loader",
            )
        )
        return
    if bad:
        issues.append(
            Issue(
                "batching_misaligned",
                "error",
                f"{bad} of {total} samples from the batch iterator carry a label that is not "
                "their own: inputs and labels were shuffled separately",
                "index X and y with the same permutation: p = rng.permutation(n); X[p], y[p]",
            )
        )
    if unknown:
        issues.append(
            Issue(
                "batching_unknown_rows",
                "info",
                f"{unknown} of {total} batch inputs are not rows of X (augmented or "
                "preprocessed inside the loader?); their labels could not be checked",
            )
        )


def check_data(
    X,
    y,
    X_test=None,
    y_test=None,
    n_classes=None,
    task=None,
    batches=None,
    batch_size=32,
    max_rows=20000,
    seed=0,
):
    """Check a data set for the common data bugs before training on it.

    X: (samples, features...) numeric; y: labels (classification) or targets
    (regression); X_test/y_test: the held-out split, for leakage, preprocessing and
    distribution-shift checks. n_classes: the number of model outputs, to check the
    label range. task: 'classification' or 'regression' (default: inferred from y).
    batches: optionally your own loader, a callable batches(X, y) yielding (x_batch,
    y_batch) pairs; every batch label is checked against its sample's label. Without
    it fastnn's own mini-batching (fastnn.batching.Batches over a permutation, as the
    Trainer uses) is checked. The row-wise checks of the loader use the first
    `max_rows` samples; the k-NN label check a sample of 2000.

    Finds: NaN/inf (counts and first locations); constant features; feature scales
    differing by more than 100x or large values (standardise); labels that are not
    integers, negative, >= n_classes, not covering 0..K-1 (1-based labels), imbalanced;
    duplicated rows, identical rows with conflicting labels, test rows that also occur
    in training (leakage); per-feature train/test shift (standardised mean difference
    and a two-sample Kolmogorov-Smirnov test, Bonferroni-corrected); train/test
    preprocessing mismatch; class-proportion shift; labels with no relation to the
    features (a k-NN predictor no better than on permuted labels - the signature of X
    and y shuffled separately); a batch loader that separates labels from samples.

    Returns a DataReport (.issues, .passed, .codes)."""
    issues = []
    gen = np.random.default_rng(seed)
    X = np.asarray(X)
    y = np.asarray(y)
    n = X.shape[0] if X.ndim else 0
    if X.dtype.kind not in "biuf":
        issues.append(
            Issue(
                "feature_dtype",
                "error",
                f"X is not numeric (dtype {X.dtype})",
                "convert or encode the features as numbers",
            )
        )
        return DataReport(issues, task or "unknown", n, 0, 0, {})
    if X.ndim < 2 or n == 0:
        issues.append(
            Issue(
                "shape",
                "error",
                f"X must be a non-empty array (samples, features), got shape {X.shape}",
                "reshape a single feature as X.reshape(-1, 1)",
            )
        )
        return DataReport(issues, task or "unknown", n, 0, 0, {})
    if y.shape[:1] != (n,):
        issues.append(
            Issue(
                "length_mismatch",
                "error",
                f"X has {n} samples but y has {y.shape[0] if y.ndim else 0}",
                "X and y must have one row per sample, in the same order",
            )
        )
        return DataReport(issues, task or "unknown", n, 0, int(np.prod(X.shape[1:])), {})
    Xtr = _rows(X)
    Xte = None
    if X_test is not None:
        X_test = np.asarray(X_test)
        if X_test.dtype.kind not in "biuf" or X_test.ndim < 2 or X_test.shape[1:] != X.shape[1:]:
            issues.append(
                Issue(
                    "test_shape",
                    "error",
                    f"X_test has shape {X_test.shape} (dtype {X_test.dtype}), X has {X.shape}",
                    "the test data must have the training data's features, in the same order",
                )
            )
        else:
            Xte = _rows(X_test)
    y_test = None if y_test is None or Xte is None else np.asarray(y_test)
    if y_test is not None and y_test.shape[:1] != (Xte.shape[0],):
        issues.append(
            Issue(
                "length_mismatch",
                "error",
                f"X_test has {Xte.shape[0]} samples but y_test has "
                f"{y_test.shape[0] if y_test.ndim else 0}",
                "X_test and y_test must have one row per sample",
            )
        )
        y_test = None

    # task and labels
    one_hot = (
        y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and np.all(y.sum(axis=1) == 1)
    )
    if task is None:
        if one_hot or y.dtype.kind in "USOb":
            task = "classification"
        elif y.ndim == 1 and y.dtype.kind in "iu":
            task = "classification"
        elif y.ndim == 1 and np.isfinite(y).all():
            task = infer_task(y)
        else:
            task = "regression"
    if task not in ("classification", "regression"):
        raise ValueError(f"check_data: task must be 'classification' or 'regression', got {task!r}")

    _check_finite(Xtr, "X", issues)
    if Xte is not None:
        _check_finite(Xte, "X_test", issues)
    if y.dtype.kind == "f":
        _check_finite(y.reshape(n, -1), "y", issues)
    if y_test is not None and y_test.dtype.kind == "f":
        _check_finite(y_test.reshape(y_test.shape[0], -1), "y_test", issues)

    class_counts = {}
    ylab = yte_lab = None
    if task == "classification":
        if one_hot:
            issues.append(
                Issue(
                    "one_hot_labels",
                    "info",
                    "y holds one-hot rows",
                    "CrossEntropyLoss takes integer labels: y.argmax(axis=1)",
                )
            )
            ylab = y.argmax(axis=1).astype(np.int64)
        elif y.ndim != 1:
            issues.append(
                Issue(
                    "label_shape",
                    "error",
                    f"class labels must be a vector, got shape {y.shape}",
                    "pass y as (samples,) integers 0..K-1",
                )
            )
        else:
            ylab = _classification_labels(y, "y", issues, n_classes)
        if y_test is not None and y_test.ndim == 1 and ylab is not None:
            yte_lab = _classification_labels(y_test, "y_test", issues, n_classes)
        if ylab is not None:
            class_counts = _check_label_set(ylab, issues, n_classes)
            if yte_lab is not None:
                _check_test_labels(ylab, yte_lab, issues)
    else:
        yr = y.reshape(n, -1).astype(np.float64) if y.dtype.kind in "biuf" else None
        if yr is None:
            issues.append(
                Issue(
                    "target_dtype",
                    "error",
                    f"regression targets are not numeric ({y.dtype})",
                    "pass numeric targets",
                )
            )
        else:
            m, s = _finite_stats(yr)
            if np.nanmax(s) > 100 or np.nanmax(np.abs(m)) > 10 * max(np.nanmax(s), 1e-12):
                issues.append(
                    Issue(
                        "target_scale",
                        "warning",
                        f"targets have mean {fmt(float(np.nanmean(m)))} and std "
                        f"{fmt(float(np.nanmean(s)))}",
                        "standardise the targets (and un-scale predictions) so the last layer "
                        "starts near the right range and the MSE gradients are not huge",
                    )
                )
            ylab = yr

    mean, std = _check_features(Xtr, issues)
    if Xte is not None:
        _check_preprocessing(mean, std, Xte, issues)
        _check_shift(Xtr, Xte, std, issues, 5000, gen)
    _check_duplicates(Xtr, ylab if task == "classification" else None, Xte, task, issues)
    if ylab is not None:
        _check_label_signal(Xtr, ylab, task, gen, issues)
    if y.ndim >= 1 and (task != "classification" or ylab is not None):
        ycheck = y if y.dtype.kind in "biuf" else ylab
        if ycheck is not None:
            _check_batching(X, ycheck, issues, int(batch_size), batches, gen, max_rows)
    return DataReport(
        issues, task, n, 0 if Xte is None else Xte.shape[0], Xtr.shape[1], class_counts
    )
