"""Dropout (Srivastava et al., 2014) with masks from fastnn's counter-based generator."""
import numpy as np

from .. import _kernels, rng
from ..module import Layer
from ..validation import as_float_input, follow_dtype, probability


class Dropout(Layer):
    """Zero each element with probability p during training and scale the survivors by
    1 / (1 - p) ("inverted" dropout), so that evaluation is the identity.

    Each training forward draws a fresh mask from (fastnn.seed's key, a call counter,
    element index): reproducible under fastnn.seed, identical for any thread count.
    The mask is kept as one byte per element and reused by backward."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = probability(p, "Dropout p")

    def _forward(self, x):
        x = as_float_input(x, follow_dtype(x), "Dropout")
        self._shape, self._dtype = x.shape, x.dtype
        self._active = self.training and self.p > 0.0
        if not self._active:
            return x
        if x.size >= 1 << 32:
            raise ValueError(f"Dropout: at most 2**32 - 1 elements per call, got {x.size}")
        y = self._workspace("y", x.shape, x.dtype)
        mask = self._workspace("mask", x.shape, np.uint8)
        key, counter = rng.next_dropout_stream()
        _kernels.dropout_forward(x, y, mask, self.p, key, counter)
        self._mask = mask
        return y

    def _backward(self, grad_out, need_input_grad=True):
        g = as_float_input(grad_out, self._dtype, "Dropout.backward")
        if g.shape != self._shape:
            raise ValueError(
                f"Dropout.backward: expected gradient of shape {self._shape}, got {g.shape}"
            )
        if not self._active:
            return g
        gx = self._workspace("gx", g.shape, g.dtype)
        _kernels.dropout_backward(g, self._mask, self.p, gx)
        return gx

    def extra_repr(self):
        return f"p={self.p}"
