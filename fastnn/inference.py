"""Compiled eval-mode predictors: a model's evaluation forward folded into as few
kernel calls as it allows.

`compile(model)` turns a model made of Dense layers, elementwise activations,
BatchNorm1d, Standardize, Dropout and a final Softmax into a `Predictor`:
- batch norm with running statistics and Standardize are per-feature affine maps in
  evaluation; each is folded into the weights and bias of the Dense layer before it
  (scaling its rows) or, when an activation separates them, of the Dense layer after
  it (scaling its columns) (fastnn.folding);
- Dropout is the identity in evaluation and disappears (weight-scaling dropout
  multiplies by 1 - p and is folded like a normalisation);
- each Dense layer and the elementwise activation after it are one GEMM and one fused
  bias + activation pass, and the whole chain is one kernel call (no Python between
  layers, no thread team for a few rows, no allocation after the first call at a
  batch size except the returned array).
Any other model (convolutions, pooling, residual blocks, recurrent layers, embeddings,
branching graphs) becomes a `GraphPredictor` (fastnn.eval_graph): the same folding
per step, convolutions with their batch norm folded in and activation fused, and the
other layers' own evaluation forward.

The folded weights are computed in float64 and rounded once to the model's dtype, so
a predictor agrees with the layer-by-layer evaluation forward to that dtype's
round-off. A predictor notices every change fastnn makes to the model's state (see
fastnn.state_version) and refolds on its next call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels, state_version
from .eval_graph import GraphPredictor
from .folding import NotCompilable, fold
from .graph import Model
from .memory import ensure_compute_ready
from .module import Module, _hook_epoch, compiled_predictor
from .sequential import Sequential
from .threads import governor
from .validation import as_array, as_float_input, positive_int

__all__ = ["GraphPredictor", "NotCompilable", "Predictor", "compile", "fold"]


def _layers_of(model):
    """The leaf layers a model applies in order: a Sequential's, or the nodes of a Model
    whose graph is a chain (one input, one output, each layer consuming the output of
    the one before); nested containers are flattened."""
    if model._hooked:
        raise NotCompilable(
            f"{type(model).__name__} has hooks, which a compiled predictor would not call"
        )
    if type(model) is Sequential:  # not subclasses (Residual adds its input)
        return [m for layer in model.layers for m in _layers_of(layer)]
    if type(model) is Model:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise NotCompilable("a Model with several inputs or outputs")
        t, out = model.inputs[0], []
        for node in model._nodes:
            if (
                node.multi
                or len(node.outputs) != 1
                or len(node.inputs) != 1
                or node.inputs[0] is not t
            ):
                raise NotCompilable(f"the graph of Model {model.name!r} is not a chain of layers")
            out += _layers_of(node.module)
            t = node.outputs[0]
        if t is not model.outputs[0]:
            raise NotCompilable(f"the graph of Model {model.name!r} is not a chain of layers")
        return out
    return [model]


class Predictor:
    """The evaluation forward of a model, compiled (see the module docstring).

    `predictor(x)` for x of shape (batch, in_features) returns a new (batch,
    out_features) array of the model's dtype (x is converted to it); `out=` writes into
    an array of that shape and dtype instead (then nothing is allocated).
    `predict(X, batch_size)` goes through a large X in batches. The model's layers are
    referenced, not copied: the predictor refolds its weights whenever fastnn changed
    the model's state (training steps, load_state_dict, astype, ...); after writing
    into parameter arrays in place, call `refresh()`.

    Raises NotCompilable for a model it cannot compile (`Sequential.predict` then runs
    the layers one by one)."""

    def __init__(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"compile: expected a fastnn Module, got {type(model).__name__}")
        self._layers = _layers_of(model)
        self._version = None
        self.refresh()

    def refresh(self) -> Predictor:
        """Refold the weights from the model's current state."""
        version = state_version.value
        weights, biases, acts, self._softmax = fold(self._layers)
        self._chain = _kernels.DenseChain(weights, biases, acts)
        self._version = version
        return self

    @property
    def dtype(self) -> np.dtype:
        return self._chain.dtype

    @property
    def in_features(self) -> int:
        return self._chain.in_features

    @property
    def out_features(self) -> int:
        return self._chain.out_features

    def __call__(self, x: Any, out: np.ndarray | None = None) -> np.ndarray:
        if self._version != state_version.value:
            self.refresh()
        chain = self._chain
        governor.poll()  # (as model.predict: fewer threads while other processes keep cores busy)
        ensure_compute_ready()  # (its threads and BLAS buffers, once per thread)
        y = chain.run(x) if out is None else None  # None: x needs converting or checking
        if y is None:
            if (
                type(x) is not np.ndarray
                or x.dtype != chain.dtype
                or x.ndim != 2
                or x.shape[1] != chain.in_features
                or not x.flags.c_contiguous
            ):
                x = as_float_input(x, chain.dtype, "Predictor", ndim=2, features=chain.in_features)
            if out is None:
                out = np.empty((x.shape[0], chain.out_features), chain.dtype)
            y = chain.forward(x, out)
        if self._softmax:
            _kernels.softmax_forward(y, y)
        return y

    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """The outputs for every row of X, computed batch_size rows at a time (bounding
        the scratch between layers); a new (n_samples, out_features) array."""
        batch_size = positive_int(batch_size, "batch_size")
        X = as_array(X, "predict")
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"predict: expected a non-empty 2-D array, got shape {X.shape}")
        return self._predict(X, batch_size)

    def _predict(self, X, batch_size):
        """predict() for a non-empty 2-D ndarray X; None for any other X (Module.predict
        then takes its own path)."""
        if type(X) is not np.ndarray or X.ndim != 2 or not X.shape[0]:
            return None
        if type(batch_size) is not int or batch_size <= 0:
            batch_size = positive_int(batch_size, "batch_size")
        if X.shape[0] <= batch_size:
            return self(X)
        if self._version != state_version.value:
            self.refresh()
        out = np.empty((X.shape[0], self.out_features), self.dtype)
        for start in range(0, X.shape[0], batch_size):
            self(X[start : start + batch_size], out[start : start + batch_size])
        return out

    def __repr__(self):
        c = self._chain
        return (
            f"Predictor(in_features={c.in_features}, out_features={c.out_features}, "
            f"dtype={c.dtype}, softmax={self._softmax})"
        )


def compile(model: Module) -> Predictor | GraphPredictor:
    """The compiled evaluation forward of `model`: a Predictor (one DenseChain call)
    when the model is a chain of Dense layers and what folds into them, else a
    GraphPredictor (fastnn.eval_graph: convolutions with batch norm folded in and
    their activation fused, residual sums, and every other layer's own evaluation
    forward). Raises NotCompilable for a model with hooks or layers that cannot be
    folded as they stand (e.g. mismatched widths or dtypes)."""
    try:
        return Predictor(model)
    except NotCompilable:
        return GraphPredictor(model)


_COMPILED = (Predictor, GraphPredictor)


def cached_predictor(model: Module) -> Predictor | GraphPredictor | None:
    """The model's compiled predictor (built on first use, reused and refolded after),
    or None when the model cannot be compiled (retried after the next change of model
    state or of its hooks). Kept on the model (not pickled or copied with it)."""
    entry = model.__dict__.get("_compiled")  # (predictor or None, hook epoch, version)
    if entry is not None and entry[1] == _hook_epoch[0]:
        if entry[2] == state_version.value:
            return entry[0]
        predictor = entry[0]
    else:
        predictor = None
    try:
        if predictor is None:
            predictor = compile(model)
        elif predictor._version != state_version.value:
            predictor.refresh()
    except NotCompilable:  # e.g. a layer's configuration changed since the last fold
        predictor = None
    model.__dict__["_compiled"] = (predictor, _hook_epoch[0], state_version.value)
    return predictor


compiled_predictor[0] = cached_predictor  # Module.predict's compiled path
