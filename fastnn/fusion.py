"""Runs of layers that a Sequential executes as one fused step.

The plan of a Sequential is a list of steps, each with `_forward(x)`,
`_backward(grad, need_input_grad)` and `layers` (the layers it stands for):
- a layer on its own;
- DenseActivation: a Dense layer and the elementwise activation after it, applied in the
  Dense epilogue (one pass for bias + activation, one for its derivative + the bias
  gradient);
- BatchNormReLU: BatchNorm1d -> ReLU, optionally -> Dropout, on (N, C) input in
  training mode: one statistics pass and one pass that normalises, rectifies and drops
  (fastnn._kernels.bn_relu_dropout_train), and a two-pass backward; neither the
  normalised nor the rectified values are stored. In any other situation (eval mode,
  3-D input, weight-scaling dropout) its layers run one after another.
A fused step computes what its layers compute one by one, with the same random masks."""
import numpy as np

from . import _kernels, rng
from .layers.activations import ReLU, _Elementwise
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.normalization import BatchNorm1d


class Single:
    """One layer as a step."""

    def __init__(self, layer):
        self.layer = layer
        self.layers = (layer,)

    def _forward(self, x):
        return self.layer._forward(x)

    def _backward(self, grad_out, need_input_grad=True):
        return self.layer._backward(grad_out, need_input_grad)


class DenseActivation:
    def __init__(self, dense, act):
        self.dense, self.act = dense, act
        self.layers = (dense, act)

    def _forward(self, x):
        return self.dense._forward(x, self.act)

    def _backward(self, grad_out, need_input_grad=True):
        return self.dense._backward(grad_out, need_input_grad)


class BatchNormReLU:
    def __init__(self, bn, relu, dropout=None):
        self.bn, self.relu, self.dropout = bn, relu, dropout
        self.layers = (bn, relu) if dropout is None else (bn, relu, dropout)

    def _fusable(self, x):
        bn, d = self.bn, self.dropout
        return (bn.training and type(x) is np.ndarray and x.ndim == 2 and x.dtype == bn._dt
                and x.flags.c_contiguous and x.shape[1] == bn.num_features
                and x.shape[0] > 1 and x.size < 1 << 32
                and (d is None or d.mode == "inverted" or not d.training))

    def _forward(self, x):
        self._fused = self._fusable(x)
        if not self._fused:
            for layer in self.layers:
                x = layer._forward(x)
            return x
        bn, d = self.bn, self.dropout
        n, c = x.shape
        y = bn._workspace("y", x.shape, x.dtype)
        stats = bn._workspace("stats", (4, c), x.dtype)  # mean, invstd, scale, shift
        drop = d is not None and d.training and d.p > 0.0
        mask = bn._workspace("mask", x.shape, np.uint8) if drop else None
        key, counter = rng.next_dropout_stream() if drop else (0, 0)
        p = d.p if drop else 0.0
        track = bn.track_running_stats
        gamma, beta = bn._affine()
        _kernels.bn_relu_dropout_train(
            x, gamma, beta, bn.eps, bn._momentum_factor() if track else 0.0,
            bn.running_mean if track else None, bn.running_var if track else None, y,
            stats[0], stats[1], stats[2], stats[3], mask, p, 1.0 / (1.0 - p), key, counter,
            bn._colsum_scratch(2 * c))
        self._x, self._stats, self._mask, self._p = x, stats, mask, p
        if drop:
            d._mask = mask  # where the Dropout layer keeps its last mask
        return y

    def _backward(self, grad_out, need_input_grad=True):
        if not self._fused:
            g = grad_out
            for layer in reversed(self.layers):
                g = layer._backward(g)
            return g
        bn, x = self.bn, self._x
        g = grad_out
        if type(g) is not np.ndarray or g.dtype != x.dtype or g.shape != x.shape \
                or not g.flags.c_contiguous:
            from .layers.normalization import _check_grad

            g = _check_grad(g, x, "BatchNorm1d+ReLU")
        gx = bn._workspace("gx", x.shape, x.dtype)
        gw, gb = bn._param_grads()
        s = self._stats
        _kernels.bn_relu_dropout_backward(
            x, g, bn._affine()[0], s[0], s[1], s[2], s[3], self._mask,
            1.0 / (1.0 - self._p), gx, gw, gb, bn._colsum_scratch(2 * x.shape[1]))
        return gx


def unfused(layers):
    """Steps that run every layer on its own (for tools that watch each layer)."""
    return [Single(layer) for layer in layers]


def plan(layers):
    """The steps that run `layers` in order, with fusable runs fused."""
    steps, i, n = [], 0, len(layers)
    while i < n:
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < n else None
        if type(layer) is Dense and isinstance(nxt, _Elementwise) and nxt._fusable:
            steps.append(DenseActivation(layer, nxt))
            i += 2
        elif type(layer) is BatchNorm1d and type(nxt) is ReLU:
            third = layers[i + 2] if i + 2 < n else None
            if type(third) is Dropout:
                steps.append(BatchNormReLU(layer, nxt, third))
                i += 3
            else:
                steps.append(BatchNormReLU(layer, nxt))
                i += 2
        else:
            steps.append(Single(layer))
            i += 1
    return steps
