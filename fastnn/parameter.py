"""Parameter: a trainable array with its gradient."""

import numpy as np

from . import memory, state_version
from .validation import as_array, float_dtype


# Counts every rebinding of any parameter: an optimizer that saw the same count at its
# last step knows without looking that its parameters have not moved.
layout_epoch = [0]


class Parameter:
    """A trainable array: `.data`, its gradient `.grad` (same shape and dtype), a
    `.name`, and `.requires_grad` (frozen parameters get no gradient and no update).

    Assigning to `.data` or `.grad` copies into the existing array, so views held by a
    parameter store stay valid."""

    __slots__ = ("_data", "_grad", "name", "requires_grad", "_owner")

    def __init__(self, data, name=None, requires_grad=True):
        arr = np.asarray(data)
        dt = float_dtype(arr.dtype)
        self._allocate(arr.shape, dt, name, requires_grad)
        np.copyto(self._data, arr)

    @classmethod
    def empty(cls, shape, dtype, name=None, requires_grad=True):
        """A parameter of `shape` and float `dtype` whose values are not set yet (fill
        them, e.g. with fastnn.init): its memory is allocated once, never copied."""
        p = cls.__new__(cls)
        p._allocate(tuple(shape), float_dtype(dtype), name, requires_grad)
        return p

    def _allocate(self, shape, dtype, name, requires_grad):
        # Checked first: MemoryError for a size that cannot fit, and the budget of a
        # model rebuilt from a file (fastnn.memory).
        memory.charge(shape, dtype.itemsize, f"parameter {name!r}")
        self._data = np.empty(shape, dtype)
        # calloc'd: its pages cost no memory until the first gradient is written
        self._grad = np.zeros(shape, dtype)
        self.name = name
        self.requires_grad = bool(requires_grad)
        self._owner = None  # the flat buffer (fastnn.store.FlatBuffer) holding it, if any

    @property
    def data(self):
        """The values (an ndarray; assigning copies into it)."""
        return self._data

    @data.setter
    def data(self, value):
        self._assign(self._data, value, "data")

    @property
    def grad(self):
        """The accumulated gradient, same shape and dtype (assigning copies into it)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        self._assign(self._grad, value, "grad")

    def _assign(self, dst, value, what):
        value = as_array(value, f"Parameter {self.name!r}.{what}")
        if value.shape != dst.shape:
            raise ValueError(
                f"Parameter {self.name!r}: cannot assign {what} of shape {value.shape} "
                f"to a parameter of shape {dst.shape}"
            )
        np.copyto(dst, value, casting="same_kind")
        if what == "data":
            state_version.bump()

    def _rebind(self, data, grad, owner=None):
        """Point the parameter at new storage (flat buffer views or a new dtype)."""
        self._data, self._grad, self._owner = data, grad, owner
        layout_epoch[0] += 1
        state_version.bump()

    def __getstate__(self):
        # A copy (copy.deepcopy, pickle) owns its arrays: it leaves the store behind,
        # whose buffers its copied views would no longer share.
        return {
            "data": self._data,
            "grad": self._grad,
            "name": self.name,
            "requires_grad": self.requires_grad,
        }

    def __setstate__(self, state):
        self._data = np.array(state["data"], copy=True, order="C")
        self._grad = np.array(state["grad"], copy=True, order="C")
        self.name, self.requires_grad = state["name"], state["requires_grad"]
        self._owner = None

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    size = property(lambda self: self._data.size)

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter({self.name!r}, shape={self.shape}, dtype={self.dtype}{frozen})"
