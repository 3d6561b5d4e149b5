"""Real data shipped inside the package (no network access, ever)."""

from importlib import resources

import numpy as np

from ..validation import float_dtype
from .tables import DataError, encode_labels, infer_task, load_table

_DIGITS_DESCR = """\
Optical Recognition of Handwritten Digits (UCI, Alpaydin & Kaynak, 1998)

1797 samples, 64 features, 10 classes (the digits 0-9, about 180 each).
Each sample is an 8x8 image, flattened row by row: 32x32 bitmaps from NIST's
preprocessing, divided into non-overlapping 4x4 blocks, each pixel counting the
on-bits of its block (an integer 0..16). These are the repository's test-set
samples (43 writers, 13 of them in this set), as also shipped by scikit-learn.

Source: https://doi.org/10.24432/C50P49 (UCI ML Repository, dataset 80).
Licence: CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
"""


class Bunch(dict):
    """A dict whose keys are also attributes (as scikit-learn's Bunch)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def load_digits(n_class=10, return_X_y=True, dtype=np.float32):
    """The UCI handwritten digits: X (1797, 64) of pixel counts 0..16 in `dtype`,
    y (1797,) int64 labels.

    n_class keeps the digits 0..n_class-1. With return_X_y=False, returns a Bunch with
    data, target, images (n, 8, 8), target_names, feature_names and DESCR.
    """
    if not 1 <= int(n_class) <= 10:
        raise ValueError(f"load_digits: n_class must be in 1..10, got {n_class}")
    with resources.files(__package__).joinpath("data/digits.npz").open("rb") as f:
        with np.load(f) as npz:
            X, y = npz["X"], npz["y"].astype(np.int64)
    keep = y < int(n_class)
    X = X[keep].astype(float_dtype(dtype))
    y = y[keep]
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        images=X.reshape(-1, 8, 8),
        target_names=np.arange(int(n_class)),
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        DESCR=_DIGITS_DESCR,
    )


__all__ = ["Bunch", "DataError", "encode_labels", "infer_task", "load_digits", "load_table"]
