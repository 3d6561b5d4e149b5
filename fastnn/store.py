"""The parameter store: a model's parameters as views into one contiguous data buffer
and one gradient buffer per dtype.

With the parameters flat, zeroing the gradients is one memset, an optimizer step is
one fused pass per run of parameters, gradient clipping is one reduction and a
distributed all-reduce is one call per bucket. The store also carries the hooks of a
training step, run by the Trainer in this order after the backward pass:

    'after_backward'  gradients are complete; by convention weight penalties use
                      order 100, the distributed all-reduce 200, gradient clipping 300
                      (user hooks default to 500)
    'before_step'     just before optimizer.step()
    'after_step'      just after it

Hooks of one event run by `order`, then in registration order; each is called as
hook(store, **info) (the Trainer passes `trainer=`)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _kernels
from .parameter import Parameter

EVENTS = ("after_backward", "before_step", "after_step")


class FlatBuffer:
    """The parameters of one dtype: `data` and `grad` (1-D), `params` in layout order
    and `offsets[i] = (lo, hi)`, parameter i's flat range."""

    __slots__ = ("dtype", "data", "grad", "params", "offsets", "index", "store")

    def __init__(self, params, store):
        self.store = store
        dtype = params[0].dtype
        total = sum(p.size for p in params)
        self.dtype = dtype
        self.data = np.empty(total, dtype)
        self.grad = np.empty(total, dtype)
        self.params, self.offsets, self.index = list(params), [], {}
        offset = 0
        for i, p in enumerate(params):
            lo, hi = offset, offset + p.size
            self.data[lo:hi] = p.data.reshape(-1)
            self.grad[lo:hi] = p.grad.reshape(-1)
            p._rebind(
                self.data[lo:hi].reshape(p.shape), self.grad[lo:hi].reshape(p.shape), owner=self
            )
            self.offsets.append((lo, hi))
            self.index[id(p)] = i
            offset = hi

    def range_of(self, p):
        """(lo, hi) of parameter p in this buffer."""
        return self.offsets[self.index[id(p)]]


class ParameterStore:
    """Contiguous storage of `params` (one FlatBuffer per dtype, in first-seen order).

    Build it with `ParameterStore.of(params)` (or `module.parameter_store()`), which
    returns the existing store when the parameters already live in one."""

    def __init__(self, params):
        params = _unique(params)
        by_dtype = {}
        for p in params:
            by_dtype.setdefault(p.dtype, []).append(p)
        self.params = params
        self.buffers = [FlatBuffer(ps, self) for ps in by_dtype.values()]
        self._hooks = {event: [] for event in EVENTS}
        self._serial = 0

    @classmethod
    def of(cls, params):
        """The store holding exactly `params`: the one they live in if they all live in
        the same store and nothing else does, else a new one."""
        params = _unique(params)
        stores = {id(p._owner.store) if p._owner is not None else None for p in params}
        if len(stores) == 1 and None not in stores:
            store = params[0]._owner.store
            if len(store.params) == len(params):
                return store
        return cls(params)

    # -- gradients --------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set every gradient to zero (one memset per dtype)."""
        for buf in self.buffers:
            _kernels.zero(buf.grad)

    @property
    def size(self):
        """The number of scalars held (all dtypes)."""
        return sum(buf.data.size for buf in self.buffers)

    # -- hooks ------------------------------------------------------------------------
    def register_hook(self, event: str, hook: Callable[..., Any], order: float = 500):
        """Run hook(store, **info) at `event` ('after_backward', 'before_step',
        'after_step'); returns a handle whose remove() unregisters it."""
        if event not in self._hooks:
            raise ValueError(f"unknown store event {event!r}; expected one of {EVENTS}")
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {hook!r}")
        self._serial += 1
        entry = (float(order), self._serial, hook)
        hooks = self._hooks[event]
        hooks.append(entry)
        hooks.sort(key=lambda e: (e[0], e[1]))
        return _StoreHandle(hooks, entry)

    def run_hooks(self, event, extra=(), **info):
        """Run the hooks of `event`, merged by order with `extra` ((order, hook) pairs
        of the caller's own, e.g. the Trainer's penalties and clipping)."""
        hooks = self._hooks[event]
        if not hooks and not extra:
            return
        if extra:
            hooks = sorted(
                [(float(o), -1, h) for o, h in extra] + hooks, key=lambda e: (e[0], e[1])
            )
        for _, _, hook in list(hooks):
            hook(self, **info)

    def has_hooks(self, event):
        """True if hooks are registered for `event`."""
        return bool(self._hooks[event])

    def __repr__(self):
        parts = ", ".join(f"{b.dtype}: {b.data.size:,}" for b in self.buffers)
        return f"ParameterStore({len(self.params)} parameters; {parts})"


class _StoreHandle:
    def __init__(self, hooks, entry):
        self._hooks, self._entry = hooks, entry

    def remove(self):
        if self._entry in self._hooks:
            self._hooks.remove(self._entry)


def _unique(params):
    out, seen = [], set()
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"expected fastnn Parameters, got {type(p).__name__}")
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
