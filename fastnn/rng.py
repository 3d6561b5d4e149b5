"""Where fastnn's randomness comes from: one process-wide state seeded by `fastnn.seed`.

It holds a NumPy Generator (weight initialisation, shuffling, splits) and the key of the
counter-based dropout generator: each training-mode dropout call takes the next
counter value, and its mask is a pure function of (key, counter, element index), so it
does not depend on the thread count. `get_state`/`set_state` capture both for
checkpoints, so a resumed run draws exactly what an uninterrupted one would."""
import numpy as np

from .validation import plain


class _State:
    def __init__(self, seed=None):
        self.reseed(seed)

    def reseed(self, seed):
        seq = np.random.SeedSequence(seed)
        self.generator = np.random.Generator(np.random.PCG64(seq))
        self.dropout_key = int(seq.spawn(1)[0].generate_state(1, np.uint64)[0])
        self.dropout_counter = 0


_state = _State()


def seed(n):
    """Make initialisation, shuffling and dropout masks reproducible from the integer n."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative integer, got {plain(n)!r}")
    _state.reseed(int(n))


def generator():
    """The NumPy Generator behind init, shuffling and splits."""
    return _state.generator


def next_dropout_stream():
    """(key, counter) for one dropout mask; advances the counter."""
    c = _state.dropout_counter
    _state.dropout_counter = c + 1
    return _state.dropout_key, c


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
