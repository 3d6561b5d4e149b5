"""Compiled eval-mode predictors: a model's evaluation forward folded into as few
kernel calls as it allows.

`compile(model)` turns a model made of Dense layers, elementwise activations,
BatchNorm1d, Standardize, Dropout and a final Softmax into a `Predictor`:
- BatchNorm1d (running statistics) and Standardize are per-feature affine maps in
  evaluation; each is folded into the weights and bias of the Dense layer before it
  (scaling its rows) or, when an activation separates them, of the Dense layer after
  it (scaling its columns);
- Dropout is the identity in evaluation and disappears (weight-scaling dropout
  multiplies by 1 - p and is folded like a normalisation);
- each Dense layer and the elementwise activation after it are one GEMM and one fused
  bias + activation pass, and the whole chain is one kernel call (no Python between
  layers, no thread team for a few rows, no allocation after the first call at a
  batch size except the returned array).

The folded weights are computed in float64 and rounded once to the model's dtype, so
a predictor agrees with the layer-by-layer evaluation forward to that dtype's
round-off. A predictor notices every change fastnn makes to the model's state (see
fastnn.state_version) and refolds on its next call.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import _kernels, state_version
from .memory import ensure_compute_ready
from .graph import Model
from .layers.activations import Softmax
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.normalization import BatchNorm1d, Standardize
from .module import Module, _hook_epoch, compiled_predictor
from .sequential import Sequential
from .validation import as_array, as_float_input, positive_int

__all__ = ["NotCompilable", "Predictor", "compile"]


class NotCompilable(ValueError):
    """The model has a layer, or an arrangement of layers, with no compiled form."""


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


def _affine_of(layer):
    """(scale, shift) in float64 when `layer` evaluates as y = x * scale + shift per
    feature, else None."""
    if type(layer) is BatchNorm1d:
        if not layer.track_running_stats:
            raise NotCompilable(
                f"{layer._where}: track_running_stats=False normalises with "
                "the statistics of each batch, also in evaluation"
            )
        scale = 1.0 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
        shift = -layer.running_mean.astype(np.float64) * scale
        if layer.affine:
            gamma = layer.weight.data.astype(np.float64)
            scale, shift = scale * gamma, shift * gamma + layer.bias.data
        return scale, shift
    if type(layer) is Standardize:
        mean, scale = layer.mean.astype(np.float64), layer.scale.astype(np.float64)
        return (scale, mean) if layer.inverse else (1.0 / scale, -mean / scale)
    if type(layer) is Dropout and layer.mode == "weight_scaling" and layer.p > 0.0:
        return np.float64(1.0 - layer.p), np.float64(0.0)
    return None


class _Stage:
    """One Dense layer of the chain: weight (out, in), bias (out,) or None, activation
    (code, alpha, beta). weight/bias are the layer's own arrays until a fold replaces
    them with float64 copies."""

    def __init__(self, dense):
        self.weight = dense.weight.data
        self.bias = None if dense.bias is None else dense.bias.data
        self.act = (_kernels.ACT_IDENTITY, 0.0, 0.0)
        self.open = True  # the output is still linear: an affine map folds into rows

    def fold_output(self, scale, shift):
        """This stage followed by y = z * scale + shift (per output feature)."""
        scale = np.broadcast_to(scale, self.weight.shape[:1])
        bias = 0.0 if self.bias is None else self.bias.astype(np.float64)
        self.weight = self.weight.astype(np.float64) * scale[:, None]
        self.bias = bias * scale + shift

    def fold_input(self, scale, shift):
        """This stage preceded by x -> x * scale + shift (per input feature)."""
        w = self.weight.astype(np.float64)
        bias = 0.0 if self.bias is None else self.bias.astype(np.float64)
        self.bias = bias + w @ np.broadcast_to(shift, w.shape[1:])
        self.weight = w * np.broadcast_to(scale, w.shape[1:])


def fold(layers):
    """The eval-mode computation of `layers` (applied in order) as a chain of Dense
    stages: (weights, biases, activations, softmax) with every array of the dtype of the
    first Dense layer, ready for fastnn._kernels.DenseChain; softmax: whether a softmax
    over the features follows the chain. Raises NotCompilable."""
    stages, pending, softmax = [], None, False
    for i, layer in enumerate(layers):
        where = f"layer {i} ({type(layer).__name__})"
        if softmax:
            raise NotCompilable(f"{where}: only a final Softmax is compiled")
        if type(layer) is Dense:
            if stages and stages[-1].weight.shape[0] != layer.in_features:
                raise NotCompilable(
                    f"{where} takes {layer.in_features} features, the Dense "
                    f"layer before gives {stages[-1].weight.shape[0]}"
                )
            stages.append(_Stage(layer))
            if pending is not None:
                if np.shape(pending[0]) not in ((), (layer.in_features,)):
                    raise NotCompilable(
                        f"{where} takes {layer.in_features} features, the "
                        f"layers before give {np.shape(pending[0])[0]}"
                    )
                stages[-1].fold_input(*pending)
                pending = None
        elif layer.epilogue() is not None:  # an elementwise activation
            act = layer.epilogue()
            if act[0] == _kernels.ACT_IDENTITY:
                continue
            if not stages or not stages[-1].open or pending is not None:
                raise NotCompilable(
                    f"{where}: an activation is compiled only right after a "
                    "Dense layer (and the normalisations folded into it)"
                )
            stages[-1].act = act
            stages[-1].open = False
        elif type(layer) is Dropout and (layer.mode == "inverted" or layer.p == 0.0):
            continue  # the identity in evaluation
        elif type(layer) is Softmax and layer.axis in (-1, 1):
            softmax = True
        else:
            affine = _affine_of(layer)
            if affine is None:
                raise NotCompilable(f"{where} has no compiled evaluation form")
            width = np.shape(affine[0])
            if stages and width not in ((), stages[-1].weight.shape[:1]):
                raise NotCompilable(
                    f"{where} has {width[0]} features, the Dense layer "
                    f"before gives {stages[-1].weight.shape[0]}"
                )
            if stages and stages[-1].open:
                stages[-1].fold_output(*affine)
            elif pending is None:
                pending = affine
            else:  # two maps in a row: x * s1 + t1, then * s2 + t2
                pending = (pending[0] * affine[0], pending[1] * affine[0] + affine[1])
    if not stages:
        raise NotCompilable("the model has no Dense layer")
    if pending is not None:
        raise NotCompilable(
            "a normalisation after the last Dense layer's activation has "
            "no Dense layer to fold into"
        )
    dtypes = {m.weight.dtype for m in layers if type(m) is Dense}
    if len(dtypes) > 1:
        raise NotCompilable(f"the Dense layers have different dtypes: {sorted(map(str, dtypes))}")
    dtype = dtypes.pop()
    weights = [np.ascontiguousarray(s.weight, dtype) for s in stages]
    biases = [None if s.bias is None else np.ascontiguousarray(s.bias, dtype) for s in stages]
    return weights, biases, [s.act for s in stages], softmax


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
        ensure_compute_ready()  # (its threads and BLAS buffers, once per thread)
        chain.forward(x, out)
        if self._softmax:
            _kernels.softmax_forward(out, out)
        return out

    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """The outputs for every row of X, computed batch_size rows at a time (bounding
        the scratch between layers); a new (n_samples, out_features) array."""
        batch_size = positive_int(batch_size, "batch_size")
        X = as_array(X, "predict")
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"predict: expected a non-empty 2-D array, got shape {X.shape}")
        return self._predict(X, batch_size)

    def _predict(self, X, batch_size):
        """predict() for a checked non-empty 2-D ndarray X and an int batch_size > 0."""
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


def compile(model: Module) -> Predictor:
    """A Predictor running `model`'s evaluation forward with batch norm folded into the
    Dense weights, dropout dropped and each Dense + activation one fused GEMM; raises
    NotCompilable when a layer has no compiled form."""
    return Predictor(model)


_cache = weakref.WeakKeyDictionary()  # model -> (Predictor or failed state version, hooks)


def cached_predictor(model: Module) -> Predictor | None:
    """The model's compiled Predictor (built on first use, reused and refolded after),
    or None when the model cannot be compiled (retried after the next change of model
    state or of its hooks)."""
    entry, hooks = _cache.get(model, (None, None))
    if hooks == _hook_epoch[0]:
        if isinstance(entry, Predictor):
            if entry._version == state_version.value:
                return entry
        elif entry == state_version.value:
            return None
    try:
        if isinstance(entry, Predictor) and hooks == _hook_epoch[0]:
            entry = entry.refresh()
        else:
            entry = Predictor(model)
    except NotCompilable:  # e.g. a layer's configuration changed since the last fold
        entry = state_version.value
    _cache[model] = (entry, _hook_epoch[0])
    return entry if isinstance(entry, Predictor) else None


compiled_predictor[0] = cached_predictor  # Module.predict's compiled path
