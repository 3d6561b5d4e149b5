"""Dropout (Srivastava et al., 2014) and DropConnect (Wan et al., 2013), with masks
from fastnn's counter-based generator: each training forward takes the next counter
of the generator seeded by fastnn.seed, and a mask is a pure function of (key,
counter, element index) - reproducible, and the same for any thread count. Masks are
kept as one byte per element and reused by backward."""
import numpy as np

from .. import _kernels, rng
from ..module import Layer, Module
from ..validation import as_float_input, choice, follow_dtype, probability


def _draw_mask(x, y, mask, p, scale):
    """y = x * mask * scale with a fresh mask (x.size < 2**32)."""
    if x.size >= 1 << 32:
        raise ValueError(f"dropout masks cover at most 2**32 - 1 elements, got {x.size}")
    key, counter = rng.next_dropout_stream()
    _kernels.dropout_forward(x, y, mask, p, scale, key, counter)


class Dropout(Layer):
    """Zero each element with probability p during training.

    mode='inverted' (default, as torch): survivors are scaled by 1 / (1 - p) during
    training, so evaluation is the identity. mode='weight_scaling': training keeps
    survivors unscaled and evaluation multiplies by 1 - p instead - the weight-scaling
    inference rule of seed note 001. Both give the same expected activation."""

    def __init__(self, p=0.5, mode="inverted"):
        super().__init__()
        self.p = probability(p, "Dropout p")
        self.mode = choice(mode, {"inverted", "weight_scaling"}, "Dropout mode")

    def _forward(self, x):
        x = as_float_input(x, follow_dtype(x), "Dropout")
        self._shape, self._dtype = x.shape, x.dtype
        self._active = self.training and self.p > 0.0
        if not self._active:
            if self.mode == "inverted" or self.p == 0.0:
                return x
            y = self._workspace("y", x.shape, x.dtype)
            np.multiply(x, 1.0 - self.p, out=y)
            return y
        y = self._workspace("y", x.shape, x.dtype)
        mask = self._workspace("mask", x.shape, np.uint8)
        _draw_mask(x, y, mask, self.p, self._train_scale())
        self._mask = mask
        return y

    def _train_scale(self):
        return 1.0 / (1.0 - self.p) if self.mode == "inverted" else 1.0

    def _backward(self, grad_out, need_input_grad=True):
        g = as_float_input(grad_out, self._dtype, "Dropout.backward")
        if g.shape != self._shape:
            raise ValueError(
                f"Dropout.backward: expected gradient of shape {self._shape}, got {g.shape}"
            )
        if not self._active:
            if self.mode == "inverted" or self.p == 0.0:
                return g
            return np.multiply(g, 1.0 - self.p)
        gx = self._workspace("gx", g.shape, g.dtype)
        _kernels.dropout_backward(g, self._mask, self._train_scale(), gx)
        return gx

    def get_config(self):
        return {"p": self.p, "mode": self.mode}

    def extra_repr(self):
        mode = "" if self.mode == "inverted" else f", mode={self.mode!r}"
        return f"p={self.p}{mode}"


class DropConnect(Layer):
    """Drop individual weights of `layer` (a Dense-like module with a `weight`
    Parameter) with probability p during training, scaling the kept ones by
    1 / (1 - p); a fresh mask every forward. The bias is not dropped. Evaluation uses
    the weights as they are. The wrapped layer's parameters keep their names, so the
    state_dict keys are those of the layer itself."""

    def __init__(self, layer, p=0.5):
        super().__init__()
        if not isinstance(layer, Module) or not hasattr(getattr(layer, "weight", None), "data"):
            raise TypeError(f"DropConnect wraps a layer with a `weight` Parameter, got {layer!r}")
        self.layer = layer
        self.p = probability(p, "DropConnect p")

    def named_children(self):  # the layer's parameters appear as DropConnect's own
        return iter(())

    def modules(self):
        return [self] + self.layer.modules()

    def apply(self, fn):
        self.layer.apply(fn)
        fn(self)
        return self

    def _own_parameters(self):
        return self.layer.named_parameters()

    def _local_state(self):
        return self.layer._state_items()

    def train(self, mode=True):
        super().train(mode)
        self.layer.train(mode)
        return self

    def _forward(self, x):
        self._active = self.training and self.p > 0.0
        if not self._active:
            return self.layer._forward(x)
        w = self.layer.weight
        kept = self._workspace("w_kept", w.shape, w.dtype)
        mask = self._workspace("mask", w.shape, np.uint8)
        _draw_mask(w.data, kept, mask, self.p, 1.0 / (1.0 - self.p))
        self._mask = mask
        w._data, self._w_full = kept, w._data  # the layer computes with the kept weights
        try:
            return self.layer._forward(x)
        finally:
            w._data = self._w_full

    def _backward(self, grad_out, need_input_grad=True):
        if not self._active:
            return self.layer._backward(grad_out, need_input_grad)
        w = self.layer.weight
        # The layer accumulates dL/d(kept weights) into a scratch gradient; the chain
        # rule through the mask gives dL/dw = mask / (1 - p) * that.
        scratch = self._workspace("g_kept", w.shape, w.dtype)
        scratch.fill(0)
        kept = self._ws["w_kept"]
        w._data, w._grad, grad = kept, scratch, w._grad
        try:
            gx = self.layer._backward(grad_out, need_input_grad)
        finally:
            w._data, w._grad = self._w_full, grad
        if w.requires_grad:
            _kernels.dropout_backward(scratch, self._mask, 1.0 / (1.0 - self.p), scratch)
            np.add(grad, scratch, out=grad)
        return gx

    def get_config(self):
        from ..io import layer_spec

        return {"layer": layer_spec(self.layer), "p": self.p}

    def extra_repr(self):
        return f"{self.layer!r}, p={self.p}"
