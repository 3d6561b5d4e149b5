"""Folding a model's evaluation forward into fewer, larger operations.

In evaluation, batch normalisation with running statistics (BatchNorm1d/2d,
SyncBatchNorm, BatchRenorm1d, InstanceNorm with track_running_stats=True) and
Standardize are per-channel affine maps and weight-scaling dropout a constant factor:
each folds into the weights and bias of the Dense layer or convolution next to it.
The folded weights are computed in float64 and rounded once to the model's dtype, so
the folded computation agrees with the layer-by-layer one to that dtype's round-off.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from .layers.activations import Softmax
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.normalization import (
    BatchNorm1d,
    BatchNorm2d,
    InstanceNorm1d,
    InstanceNorm2d,
    Standardize,
)
from .layers.renorm import BatchRenorm1d
from .layers.spatial_dropout import _MaskLayer
from .layers.sync_batchnorm import SyncBatchNorm
from .module import Layer

__all__ = ["NotCompilable", "dense_run", "fold", "fold_conv", "identity_in_eval", "running_norm"]

# Normalisations that evaluate with running statistics when track_running_stats=True.
RUNNING_NORMS = (
    BatchNorm1d,
    BatchNorm2d,
    SyncBatchNorm,
    BatchRenorm1d,
    InstanceNorm1d,
    InstanceNorm2d,
)


class NotCompilable(ValueError):
    """The model has a layer, or an arrangement of layers, with no compiled form."""


def channel_affine(norm):
    """(scale, shift) in float64, per channel, of a normalisation evaluating with its
    running statistics: y = x * scale + shift on axis 1."""
    scale = 1.0 / np.sqrt(norm.running_var.astype(np.float64) + norm.eps)
    shift = -norm.running_mean.astype(np.float64) * scale
    if norm.affine:
        gamma = norm.weight.data.astype(np.float64)
        scale, shift = scale * gamma, shift * gamma + norm.bias.data
    return scale, shift


def running_norm(layer, ndim):
    """Whether `layer` normalises (ndim)-D input with running statistics in evaluation
    (a per-channel affine map there)."""
    return type(layer) in RUNNING_NORMS and layer.track_running_stats and ndim in type(layer)._ndims


def _affine_of(layer):
    """(scale, shift) in float64 when `layer` evaluates as y = x * scale + shift per
    feature of 2-D input, else None."""
    if type(layer) in RUNNING_NORMS and 2 in type(layer)._ndims:
        if not layer.track_running_stats:
            raise NotCompilable(
                f"{layer._where}: track_running_stats=False normalises with "
                "the statistics of each batch, also in evaluation"
            )
        return channel_affine(layer)
    if type(layer) is Standardize:
        mean, scale = layer.mean.astype(np.float64), layer.scale.astype(np.float64)
        return (scale, mean) if layer.inverse else (1.0 / scale, -mean / scale)
    if type(layer) is Dropout and layer.mode == "weight_scaling" and layer.p > 0.0:
        return np.float64(1.0 - layer.p), np.float64(0.0)
    return None


def identity_in_eval(layer):
    """Whether `layer` is the identity in evaluation (inverted dropout, the spatial
    dropouts, Identity)."""
    if type(layer) is Dropout:
        return layer.mode == "inverted" or layer.p == 0.0
    if isinstance(layer, _MaskLayer):
        return True
    act = layer.epilogue() if isinstance(layer, Layer) else None
    return act is not None and act[0] == _kernels.ACT_IDENTITY


def dense_run(layers):
    """The length of the longest prefix of `layers` that fold() compiles into one Dense
    chain: Dense layers, each optionally followed by an elementwise activation, with
    feature-wise normalisations and dropouts folded into their neighbours and an
    optional final Softmax; 0 when the prefix has no Dense layer."""
    best, dense, open_, pending = 0, False, False, False
    for i, layer in enumerate(layers):
        kind = type(layer)
        if kind is Dense:
            dense, open_, pending = True, True, False
        elif identity_in_eval(layer):
            pass
        elif layer.epilogue() is not None:  # a non-identity elementwise activation
            if not (dense and open_ and not pending):
                break
            open_ = False
        elif running_norm(layer, 2) or (kind not in RUNNING_NORMS and _affine_of(layer)):
            pending = pending or not (dense and open_)
        elif kind is Softmax and layer.axis in (-1, 1):
            if dense and not pending:
                best = i + 1
            break
        else:
            break
        if dense and not pending:
            best = i + 1
    return best


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
        elif identity_in_eval(layer):
            continue
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


def fold_conv(conv, norm):
    """The weight and bias (float64 -> the conv's dtype) of `conv` followed by `norm`
    (a normalisation with running statistics, or None): the weight's output channels
    scaled, the bias shifted."""
    w = conv.weight.data
    b = None if conv.bias is None else conv.bias.data
    if norm is None:
        return w, b
    scale, shift = channel_affine(norm)
    b = shift if b is None else b.astype(np.float64) * scale + shift
    w = w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    return np.ascontiguousarray(w, conv.weight.dtype), np.ascontiguousarray(b, conv.weight.dtype)
