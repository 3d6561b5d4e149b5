"""Symbolic tensors: calling a module on them records a node of a graph (the
functional API of fastnn.graph) instead of computing."""

import numpy as np

from .context import Context


class SymbolicTensor:
    """A placeholder for the arrays a model will compute: `shape` (with None for the
    batch axis), `dtype`, and the node that produces it (None for an Input)."""

    __slots__ = ("shape", "dtype", "node", "index", "name")

    def __init__(self, shape, dtype, node=None, index=0, name=None):
        self.shape, self.dtype, self.node, self.index, self.name = shape, dtype, node, index, name

    def __repr__(self):
        src = (
            f"input {self.name!r}"
            if self.node is None
            else f"output of {self.node.module.name or type(self.node.module).__name__}"
        )
        return f"SymbolicTensor(shape={self.shape}, dtype={self.dtype}, {src})"


class Node:
    """One call of `module` on symbolic `inputs` (a list; `multi` when the module was
    called with a list), producing `outputs`."""

    __slots__ = ("module", "inputs", "multi", "outputs")

    def __init__(self, module, inputs, multi):
        self.module, self.inputs, self.multi, self.outputs = module, inputs, multi, []


def is_symbolic(x):
    """True if x is a SymbolicTensor or a non-empty list of them."""
    return isinstance(x, SymbolicTensor) or (
        isinstance(x, (list, tuple)) and bool(x) and all(isinstance(v, SymbolicTensor) for v in x)
    )


def call_symbolic(module, x, *args, **kwargs):
    """Record a call of module on symbolic tensor(s) x; returns the output tensor(s)."""
    if args or kwargs:
        raise TypeError(
            f"{type(module).__name__}: extra arguments are not supported in a graph call"
        )
    multi = isinstance(x, (list, tuple))
    inputs = list(x) if multi else [x]
    out_shape, dtype = _infer(module, inputs, multi)
    node = Node(module, inputs, multi)
    shapes = out_shape if isinstance(out_shape, list) else [out_shape]
    node.outputs = [
        SymbolicTensor((None,) + tuple(s), dtype, node, k) for k, s in enumerate(shapes)
    ]
    return node.outputs if isinstance(out_shape, list) else node.outputs[0]


def _infer(module, inputs, multi):
    """(output shape(s) without the batch axis, dtype) of module on inputs."""
    where = type(module).__name__
    shapes = [t.shape[1:] for t in inputs]
    dtype = module.dtype or inputs[0].dtype
    compute = getattr(module, "compute_output_shape", None)
    if compute is not None:
        out = compute(shapes if multi else shapes[0])
        return ([tuple(s) for s in out] if isinstance(out, list) else tuple(out)), dtype
    xs = [np.zeros((1,) + s, t.dtype) for s, t in zip(shapes, inputs)]
    was = [m.training for m in module.modules()]
    module.eval()
    try:
        y = module._forward(Context(), xs if multi else xs[0])
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{where} cannot take input of shape "
            f"{[t.shape for t in inputs] if multi else inputs[0].shape}: {e}"
        ) from None
    finally:
        for m, mode in zip(module.modules(), was):
            m.training = mode
    if isinstance(y, (list, tuple)):
        return [np.shape(v)[1:] for v in y], np.asarray(y[0]).dtype
    return np.shape(y)[1:], np.asarray(y).dtype
