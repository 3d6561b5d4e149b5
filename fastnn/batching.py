"""Mini-batches without copying the data set: one index permutation per epoch, each
batch gathered into a reused contiguous buffer. X can be any array, including a
memory-mapped file larger than RAM, or a list of arrays (a model with several
inputs); only one batch at a time is materialised (and converted to the model's
dtype)."""

import numpy as np

from .validation import as_array


def as_inputs(X, where):
    """X as a list of arrays with one row per sample each (X itself may be an array or
    a list/tuple of arrays for a model with several inputs); ValueError if they are
    empty, scalar or disagree on the number of samples."""
    items = list(X) if isinstance(X, (list, tuple)) else [X]
    if not items:
        raise ValueError(f"{where}: got an empty list of inputs")
    arrays = []
    for i, x in enumerate(items):
        name = where if len(items) == 1 else f"{where}[{i}]"
        x = as_array(x, name)
        if x.ndim < 2:
            raise ValueError(
                f"{name}: expected an array of shape (samples, features...), got shape {x.shape}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{name}: is empty")
        arrays.append(x)
    if any(x.shape[0] != arrays[0].shape[0] for x in arrays):
        raise ValueError(
            f"{where}: the inputs have different numbers of samples {[x.shape[0] for x in arrays]}"
        )
    return arrays


class Batches:
    """Iterates (x_batch, y_batch, w_batch) over X, y and per-sample weights w in the
    order of a permutation; with X a list of arrays, x_batch is a list of their
    batches; w_batch is None without weights.

    The yielded arrays are reused buffers, valid until the next batch.

    The last partial batch is dropped with drop_last; otherwise, when it is smaller
    than `min_batch` (BatchNorm needs 2 samples to compute batch statistics) and there
    is a batch before it, it is merged into that one."""

    def __init__(
        self,
        X,
        y,
        batch_size,
        dtype,
        y_dtype,
        drop_last=False,
        min_batch=1,
        weights=None,
        world=None,
    ):
        self.world = world  # fastnn.distributed.World: yield this rank's shard of each batch
        self.n = y.shape[0]
        tail = self.n % batch_size
        self.merge_tail = not drop_last and 0 < tail < min_batch and self.n > batch_size
        size = batch_size + tail if self.merge_tail else batch_size
        self._inputs = [_Gather(x, size, dtype) for x in X] if isinstance(X, list) else None
        self._single = None if self._inputs is not None else _Gather(X, size, dtype)
        self.y = y
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._ybuf = np.empty((size,) + y.shape[1:], y_dtype)
        self.weights = weights
        self._wbuf = None if weights is None else np.empty(size, weights.dtype)

    def __len__(self):
        n, b = self.y.shape[0], self.batch_size
        return n // b if self.drop_last or self.merge_tail else -(-n // b)

    def _bounds(self, n):
        b = self.batch_size
        stop = n - n % b if self.drop_last else n
        starts = list(range(0, stop, b))
        if self.merge_tail:
            starts.pop()
        return [(s, s2) for s, s2 in zip(starts, starts[1:] + [stop])]

    def epoch(self, order):
        """Yield the batches of one epoch; `order` is a permutation of range(len(y))."""
        for start, end in self._bounds(len(order)):
            idx = order[start:end]
            if self.world is not None:
                idx = idx[self.world.begin_batch(len(idx))]
            yb = self._ybuf[: len(idx)]
            np.take(self.y, idx, axis=0, out=yb)
            wb = None
            if self.weights is not None:
                wb = self._wbuf[: len(idx)]
                np.take(self.weights, idx, out=wb)
            if self._single is not None:
                yield self._single.take(idx), yb, wb
            else:
                yield [g.take(idx) for g in self._inputs], yb, wb


class _Gather:
    """Rows of one input array gathered into a reused buffer of the model's dtype."""

    def __init__(self, X, batch_size, dtype):
        self.X = X
        self._xbuf = np.empty((batch_size,) + X.shape[1:], dtype)
        # Rows of a C-contiguous X are gathered with np.take, in X's own dtype first when
        # it is not the model's. np.take would copy a non-contiguous (Fortran-ordered,
        # strided) X whole on every call, so such an X is fancy-indexed instead: a
        # temporary of one batch, never of the data set.
        self._contiguous = isinstance(X, np.ndarray) and X.flags.c_contiguous
        direct = self._contiguous and X.dtype == dtype
        self._stage = (
            None
            if direct or not self._contiguous
            else np.empty((batch_size,) + X.shape[1:], X.dtype)
        )

    def take(self, idx):
        m = len(idx)
        xb = self._xbuf[:m]
        if not self._contiguous:
            xb[...] = self.X[idx]
        elif self._stage is None:
            np.take(self.X, idx, axis=0, out=xb)
        else:
            stage = self._stage[:m]
            np.take(self.X, idx, axis=0, out=stage)
            xb[...] = stage
        return xb
