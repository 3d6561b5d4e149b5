"""Attention pooling: a learned weighted average over the steps of a sequence."""

import math

import numpy as np
from numpy.typing import DTypeLike

from .. import init as _init
from ..module import Layer, Parameter
from ..validation import as_array, as_float_input, float_dtype, positive_int


class AttentionPooling(Layer):
    """Pool (N, T, in_features) to (N, in_features) with weights learned per step:

        e_t = x_t . query,   a = softmax_t(e),   y = sum_t a_t x_t

    `query` (in_features,) ~ U(-1/sqrt(in_features), 1/sqrt(in_features)). A second
    input masks the steps: `layer([x, lengths])` with lengths (N,) or (N, 1) in [1, T]
    (the first lengths[n] steps of sequence n count), or `layer([x, mask])` with a (N, T) mask
    (nonzero = the step counts; at least one per sequence). Masked steps get weight 0 and
    no gradient. Put it after a recurrent layer with `batch_first=True`. After a call,
    `attention_weights` holds a of that call, (N, T)."""

    _transient = ("_last_weights",)

    def __init__(self, in_features: int, dtype: DTypeLike = np.float32, name: str | None = None):
        super().__init__(name=name)
        self.in_features = positive_int(in_features, "AttentionPooling in_features")
        self.query = Parameter(np.empty(self.in_features, float_dtype(dtype)), "query")
        self._where = f"AttentionPooling({self.in_features})"
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features)
        _init.uniform_(self.query, -bound, bound)

    def _valid(self, m, N, T):
        """A (N, T) bool array of the steps that count, from lengths or a mask."""
        m = as_array(m, f"{self._where} mask")
        if m.shape == (N, 1):  # lengths as a model input: one column per sample
            m = m[:, 0]
        if m.shape == (N,):
            if m.min() < 1 or m.max() > T:
                raise ValueError(
                    f"{self._where}: lengths must be in [1, {T}], got values in "
                    f"[{m.min()}, {m.max()}]"
                )
            return np.arange(T) < m[:, None]
        if m.shape != (N, T):
            raise ValueError(
                f"{self._where}: the second input must be lengths ({N},) or a "
                f"mask ({N}, {T}), got shape {m.shape}"
            )
        valid = m != 0
        if not valid.any(axis=1).all():
            raise ValueError(f"{self._where}: every sequence needs at least one unmasked step")
        return valid

    def _forward(self, ctx, inputs):
        parts = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(parts) > 2:
            raise ValueError(
                f"{self._where}: expected x or [x, lengths or mask], got {len(parts)} inputs"
            )
        q = self.query.data
        x = as_float_input(parts[0], q.dtype, self._where, ndim=3, features=self.in_features)
        N, T, F = x.shape
        e = ctx.workspace("a", (N, T), x.dtype)
        np.matmul(x, q, out=e)
        valid = self._valid(parts[1], N, T) if len(parts) > 1 and parts[1] is not None else None
        if valid is not None:
            e[~valid] = -np.inf
        e -= e.max(axis=1, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=1, keepdims=True)  # e is now the attention weights a
        y = ctx.workspace("y", (N, 1, F), x.dtype)
        np.matmul(e[:, None, :], x, out=y)
        ctx.x, ctx.a, ctx.n_inputs = x, e, len(parts) if isinstance(inputs, (list, tuple)) else None
        self._last_weights = e
        return y.reshape(N, F)

    @property
    def attention_weights(self) -> np.ndarray:
        """The weights a (N, T) of the last call (a copy)."""
        weights = getattr(self, "_last_weights", None)
        if weights is None:
            raise AttributeError(f"{self._where}: attention_weights exist after a call")
        return weights.copy()

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x, a = ctx.x, ctx.a
        N, T, F = x.shape
        g = as_float_input(grad_out, x.dtype, f"{self._where}.backward")
        if g.shape != (N, F):
            raise ValueError(
                f"{self._where}.backward: expected gradient of shape {(N, F)}, got {g.shape}"
            )
        s = np.matmul(x, g[:, :, None])[:, :, 0]  # dL/da_t = g . x_t
        de = a * (s - np.sum(a * s, axis=1, keepdims=True))  # through the softmax
        if self.query.requires_grad:
            self.query.grad += np.tensordot(de, x, axes=([0, 1], [0, 1]))
        gx = None
        if need_input_grad:
            gx = ctx.workspace("gx", (N, T, F), x.dtype)
            np.multiply(a[:, :, None], g[:, None, :], out=gx)
            gx += de[:, :, None] * self.query.data
        return gx if ctx.n_inputs is None else [gx] + [None] * (ctx.n_inputs - 1)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):  # [x, lengths or mask]
            input_shape = input_shape[0]
        return (input_shape[-1],)

    def get_config(self):
        return {"in_features": self.in_features}

    def extra_repr(self):
        return f"{self.in_features}"
