"""Splitting and scaling data the way a careful experiment does: split first, fit the
standardisation on the training part only, apply the same transform everywhere."""

import numpy as np

from . import rng
from .validation import as_array


def train_test_split(X, y, test_size=0.25, shuffle=True, stratify=None, seed=None):
    """Split X and y into (X_train, X_test, y_train, y_test).

    test_size: a fraction in (0, 1) or a number of samples. shuffle=False keeps the
    order: the first samples train, the last ones test (the classic "first 9000 /
    last 1000"). stratify: labels whose class proportions both parts keep. seed: an
    integer for a split independent of fastnn.seed; None draws from fastnn's generator.
    """
    X = as_array(X, "train_test_split X")
    y = as_array(y, "train_test_split y")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"train_test_split: X has {n} samples but y has {y.shape[0]}")
    n_test = _test_count(test_size, n)
    gen = np.random.default_rng(seed) if seed is not None else rng.generator()
    if stratify is not None:
        if not shuffle:
            raise ValueError("train_test_split: stratify needs shuffle=True")
        test_idx = _stratified_test(as_array(stratify, "stratify"), n, n_test, gen)
        mask = np.zeros(n, bool)
        mask[test_idx] = True
        train_idx = gen.permutation(np.flatnonzero(~mask))
        test_idx = gen.permutation(test_idx)
    elif shuffle:
        order = gen.permutation(n)
        train_idx, test_idx = order[: n - n_test], order[n - n_test :]
    else:
        return X[: n - n_test], X[n - n_test :], y[: n - n_test], y[n - n_test :]
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def _test_count(test_size, n):
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}")
        count = int(np.ceil(test_size * n))
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        count = int(test_size)
    else:
        raise TypeError(f"test_size must be a float fraction or an int count, got {test_size!r}")
    if not 1 <= count <= n - 1:
        raise ValueError(f"test_size={test_size} leaves no training or test samples of {n}")
    return count


def _stratified_test(labels, n, n_test, gen):
    """Indices of a test set with n_test samples drawn class by class, each class
    contributing in proportion (largest remainders get the rounding)."""
    if labels.shape[0] != n:
        raise ValueError(f"stratify has {labels.shape[0]} labels for {n} samples")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"stratify: class {classes[counts.argmin()]!r} has a single sample")
    exact = counts * n_test / n
    take = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - take), kind="stable")[: n_test - take.sum()]:
        take[c] += 1
    parts = [gen.permutation(np.flatnonzero(inverse == c))[: take[c]] for c in range(len(classes))]
    return np.concatenate(parts)


class Standardizer:
    """Per-feature standardisation z = (x - mean) / std, fitted on training data and
    reused unchanged on validation and test data. Features with zero variance get
    std 1 (they become 0 instead of NaN)."""

    def __init__(self):
        self.mean_ = self.scale_ = None

    def fit(self, X):
        """Learn each feature's mean and scale from X (n_samples, n_features); returns
        self."""
        X = as_array(X, "Standardizer.fit")
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"Standardizer.fit: expected a non-empty 2-D array, got {X.shape}")
        X = X.astype(np.float64, copy=False)
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def _check(self, X, where):
        if self.mean_ is None:
            raise RuntimeError(f"Standardizer.{where}: call fit first")
        X = as_array(X, f"Standardizer.{where}")
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"Standardizer.{where}: fitted on {self.mean_.shape[0]} features, "
                f"got data of shape {X.shape}"
            )
        return X

    def transform(self, X, dtype=np.float32):
        """(X - mean) / scale as dtype, shape (n_samples, n_features)."""
        X = self._check(X, "transform")
        return ((X - self.mean_) / self.scale_).astype(dtype)

    def fit_transform(self, X, dtype=np.float32):
        """fit(X), then transform(X)."""
        return self.fit(X).transform(X, dtype)

    def as_layer(self, inverse=False, dtype=np.float32):
        """A fastnn.Standardize layer applying this transform (to put first in a model),
        or with inverse=True its inverse (to put last: outputs in target units)."""
        from .layers import Standardize

        if self.mean_ is None:
            raise RuntimeError("Standardizer.as_layer: call fit first")
        layer = Standardize(self.mean_.shape[0], inverse=inverse, dtype=dtype)
        layer.mean[...] = self.mean_
        layer.scale[...] = self.scale_
        return layer

    def inverse_transform(self, Z):
        """Z * scale + mean: back to the original units."""
        Z = self._check(Z, "inverse_transform")
        return Z * self.scale_ + self.mean_


def one_hot(y, num_classes=None, dtype=np.float32):
    """(n,) integer labels -> (n, num_classes) one-hot rows."""
    y = as_array(y, "one_hot")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise ValueError(f"one_hot: expected a 1-D integer array, got {y.dtype} {y.shape}")
    k = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"one_hot: labels must be in [0, {k}), got range [{y.min()}, {y.max()}]")
    out = np.zeros((y.shape[0], k), dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out
