"""Mini-batches without copying the data set: one index permutation per epoch, each
batch gathered into a reused contiguous buffer. X can be any array, including a
memory-mapped file larger than RAM; only one batch at a time is materialised (and
converted to the model's dtype)."""
import numpy as np


class Batches:
    """Iterates (x_batch, y_batch) over X, y in the order of a permutation.

    The yielded arrays are reused buffers, valid until the next batch."""

    def __init__(self, X, y, batch_size, dtype, y_dtype, drop_last=False, world=None):
        self.X, self.y = X, y
        self.world = world  # fastnn.distributed.World: yield this rank's shard of each batch
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._xbuf = np.empty((batch_size,) + X.shape[1:], dtype)
        # Rows of a C-contiguous X are gathered with np.take, in X's own dtype first when
        # it is not the model's. np.take would copy a non-contiguous (Fortran-ordered,
        # strided) X whole on every call, so such an X is fancy-indexed instead: a
        # temporary of one batch, never of the data set.
        self._contiguous = isinstance(X, np.ndarray) and X.flags.c_contiguous
        direct = self._contiguous and X.dtype == dtype
        self._stage = (None if direct or not self._contiguous
                       else np.empty((batch_size,) + X.shape[1:], X.dtype))
        self._ybuf = np.empty((batch_size,) + y.shape[1:], y_dtype)

    def __len__(self):
        n, b = self.X.shape[0], self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, order):
        """Yield the batches of one epoch; `order` is a permutation of range(len(X))."""
        n, b = len(order), self.batch_size
        stop = n - n % b if self.drop_last else n
        for start in range(0, stop, b):
            idx = order[start : start + b]
            if self.world is not None:
                idx = idx[self.world.begin_batch(len(idx))]
            m = len(idx)
            xb, yb = self._xbuf[:m], self._ybuf[:m]
            if not self._contiguous:
                xb[...] = self.X[idx]
            elif self._stage is None:
                np.take(self.X, idx, axis=0, out=xb)
            else:
                stage = self._stage[:m]
                np.take(self.X, idx, axis=0, out=stage)
                xb[...] = stage
            np.take(self.y, idx, axis=0, out=yb)
            yield xb, yb
