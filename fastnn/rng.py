"""Where fastnn's randomness comes from: one process-wide state seeded by `fastnn.seed`.

It holds a NumPy Generator (weight initialisation, shuffling, splits) and the key of the
counter-based dropout generator: each training-mode dropout call takes the next
counter value, and its mask is a pure function of (key, counter, element index), so it
does not depend on the thread count. `get_state`/`set_state` capture both for
checkpoints, so a resumed run draws exactly what an uninterrupted one would."""
import numpy as np


class _State:
    def __init__(self, seed=None):
        self.reseed(seed)

    def reseed(self, seed):
        seq = np.random.SeedSequence(seed)
        self.generator = np.random.Generator(np.random.PCG64(seq))
        self.dropout_key = int(seq.spawn(1)[0].generate_state(1, np.uint64)[0])
        self.dropout_counter = 0


_state = _State()
# Data-parallel training: the first row of this process's shard in the global batch
# (fastnn.distributed sets it per batch), so row-wise masks are drawn as one process
# would draw them for the whole batch. Not part of the random state.
_row_offset = 0


def seed(n):
    """Make initialisation, shuffling and dropout masks reproducible from the integer n."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative integer, got {n!r}")
    _state.reseed(int(n))


def generator():
    """The NumPy Generator behind init, shuffling and splits."""
    return _state.generator


def next_dropout_stream():
    """(key, counter) for one dropout mask; advances the counter."""
    c = _state.dropout_counter
    _state.dropout_counter = c + 1
    return _state.dropout_key, c


def set_dropout_row_offset(rows):
    """Make row-wise dropout masks start at row `rows` of the global batch."""
    global _row_offset
    _row_offset = int(rows)


def dropout_offset(x):
    """The generator index of element 0 of a row-wise mask over x (N, ...): the row
    offset times the elements per row (0 outside data-parallel training)."""
    if _row_offset == 0 or x.shape[0] == 0:
        return 0
    return _row_offset * (x.size // x.shape[0])


def get_state():
    """A JSON-serialisable snapshot of all of fastnn's random state."""
    return {
        "generator": _state.generator.bit_generator.state,
        "dropout_key": _state.dropout_key,
        "dropout_counter": _state.dropout_counter,
    }


def set_state(state):
    """Restore a snapshot taken by get_state."""
    _state.generator.bit_generator.state = state["generator"]
    _state.dropout_key = int(state["dropout_key"])
    _state.dropout_counter = int(state["dropout_counter"])
