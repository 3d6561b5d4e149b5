"""Where fastnn's randomness comes from: random streams, by default one process-wide
stream seeded by `fastnn.seed`.

A stream holds a NumPy Generator (weight initialisation, shuffling, splits) and the key of the
counter-based dropout generator: each training-mode dropout call takes the next
counter value, and its mask is a pure function of (key, counter, element index), so it
does not depend on the thread count. `get_state`/`set_state` capture both for
checkpoints, so a resumed run draws exactly what an uninterrupted one would.

Each thread has a "current" stream: the process-wide one unless a `using(stream)`
block says otherwise. A Trainer runs its steps inside `using(trainer.rng)`, its own
stream, so trainers in different threads draw what they would one after the other,
bit for bit, and layers keep calling `generator()` / `next_dropout_stream()`."""

import contextlib
import threading

import numpy as np

from .validation import plain


class Stream:
    """A random stream: a NumPy Generator and a dropout key and counter. `Stream(n)`
    is the stream `fastnn.seed(n)` starts."""

    def __init__(self, seed=None):
        self.reseed(seed)

    def reseed(self, seed):
        seq = np.random.SeedSequence(seed)
        self.generator = np.random.Generator(np.random.PCG64(seq))
        self.dropout_key = int(seq.spawn(1)[0].generate_state(1, np.uint64)[0])
        self.dropout_counter = 0


_state = Stream()
_local = threading.local()
# Data-parallel training: the first row of this process's shard in the global batch
# (fastnn.distributed sets it per batch), so row-wise masks are drawn as one process
# would draw them for the whole batch. Not part of the random state.
_row_offset = 0


def _current():
    return getattr(_local, "stream", None) or _state


@contextlib.contextmanager
def using(stream):
    """Within the block, this thread draws from `stream`."""
    previous = getattr(_local, "stream", None)
    _local.stream = stream
    try:
        yield stream
    finally:
        _local.stream = previous


def spawn():
    """A new Stream seeded from the current one (advancing it by one draw)."""
    return Stream(int(_current().generator.integers(0, 2**63)))


def check_seed(n):
    """n as an int if it is a non-negative integer, else ValueError."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative integer, got {plain(n)!r}")
    return int(n)


def seed(n):
    """Make initialisation, shuffling and dropout masks reproducible from the integer n
    (the process-wide stream; a Trainer made afterwards draws its own from it)."""
    _state.reseed(check_seed(n))


def generator():
    """The NumPy Generator behind init, shuffling and splits (this thread's current
    stream)."""
    return _current().generator


def next_dropout_stream():
    """(key, counter) for one dropout mask; advances the counter."""
    st = _current()
    c = st.dropout_counter
    st.dropout_counter = c + 1
    return st.dropout_key, c


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


def get_state(stream=None):
    """A JSON-serialisable snapshot of a stream (default: this thread's current one)."""
    st = stream or _current()
    return {
        "generator": st.generator.bit_generator.state,
        "dropout_key": st.dropout_key,
        "dropout_counter": st.dropout_counter,
    }


def set_state(state, stream=None):
    """Restore a snapshot taken by get_state (into `stream`, default the current one)."""
    st = stream or _current()
    st.generator.bit_generator.state = state["generator"]
    st.dropout_key = int(state["dropout_key"])
    st.dropout_counter = int(state["dropout_counter"])
