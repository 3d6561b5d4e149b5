"""Context: the state of one call of a layer (see fastnn.module)."""

import numpy as np


class Context:
    """The state of one call of a layer: what its backward needs (attributes the layer
    sets, e.g. `ctx.x`) and the workspaces its outputs and scratch live in.

    A container keeps one Context per call site for as long as it lives, so the
    workspaces of a training loop are allocated in its first step and reused after."""

    def __init__(self):
        self._ws = {}

    def workspace(self, key, shape, dtype):
        """An uninitialised array of `shape` reused across calls: sized for the largest
        leading dimension seen and sliced for smaller ones."""
        buf = self._ws.get(key)
        if (
            buf is None
            or buf.dtype != dtype
            or buf.shape[1:] != shape[1:]
            or buf.shape[0] < shape[0]
        ):
            buf = np.empty(shape, dtype)
            self._ws[key] = buf
        return buf if buf.shape[0] == shape[0] else buf[: shape[0]]

    def grad_workspace(self, shape, dtype):
        """The array a layer's backward returns its input gradient in: lent by the
        gradient pool of the container running the call (fastnn.plan.GradientPool,
        taken back once the gradient has been consumed), else the workspace "gx"."""
        pool = self.__dict__.get("grad_pool")
        if pool is None:
            return self.workspace("gx", shape, dtype)
        return pool.take(shape, dtype)

    def child(self, index):
        """The context of a container's index-th call site (created on first use)."""
        kids = self.__dict__.get("_children")
        if kids is None:
            kids = self._children = []
        while len(kids) <= index:
            kids.append(Context())
        return kids[index]

    def reset(self):
        """Forget everything (workspaces, saved values, children)."""
        self.__dict__.clear()
        self._ws = {}
