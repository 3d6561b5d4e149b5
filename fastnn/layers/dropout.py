"""Dropout (Srivastava et al., 2014) and DropConnect (Wan et al., 2013), with masks
from fastnn's counter-based generator: each training forward takes the next counter
of the generator seeded by fastnn.seed, and a mask is a pure function of (key,
counter, element index) - reproducible, and the same for any thread count. Masks are
kept as one byte per element and reused by backward."""

import numpy as np

from .. import _kernels, rng
from ..module import Layer, Module
from ..validation import as_float_input, choice, follow_dtype, probability


def _draw_mask(x, y, mask, p, scale, offset=0):
    """y = x * mask * scale with a fresh mask whose element i is generator index
    offset + i (offset + x.size <= 2**32)."""
    if offset + x.size > 1 << 32:
        raise ValueError(
            f"dropout masks cover at most 2**32 elements, got {x.size}"
            + (f" after {offset}" if offset else "")
        )
    key, counter = rng.next_dropout_stream()
    _kernels.dropout_forward(x, y, mask, p, scale, key, counter, offset)


class Dropout(Layer):
    """Zero each element with probability p during training.

    mode='inverted' (default, as torch): survivors are scaled by 1 / (1 - p) during
    training, so evaluation is the identity. mode='weight_scaling': training keeps
    survivors unscaled and evaluation multiplies by 1 - p instead - the weight-scaling
    inference rule. Both give the same expected activation."""

    def __init__(self, p=0.5, mode="inverted", name=None):
        super().__init__(name=name)
        self.p = probability(p, "Dropout p")
        self.mode = choice(mode, {"inverted", "weight_scaling"}, "Dropout mode")

    def _forward(self, ctx, x):
        x = as_float_input(x, follow_dtype(x), "Dropout")
        ctx.shape, ctx.dtype = x.shape, x.dtype
        ctx.active = self.training and self.p > 0.0
        if not ctx.active:
            if self.mode == "inverted" or self.p == 0.0:
                return x
            y = ctx.workspace("y", x.shape, x.dtype)
            np.multiply(x, 1.0 - self.p, out=y)
            return y
        y = ctx.workspace("y", x.shape, x.dtype)
        mask = ctx.workspace("mask", x.shape, np.uint8)
        _draw_mask(x, y, mask, self.p, self._train_scale(), rng.dropout_offset(x))
        ctx.mask = mask
        return y

    def fused_dropout_p(self):
        """The drop probability a fused step (BatchNorm1d -> ReLU -> Dropout) applies
        for this layer now, with inverted scaling: p in training, 0.0 when the layer is
        the identity; None when it cannot be fused (weight scaling)."""
        if self.mode == "inverted" or self.p == 0.0:
            return self.p if self.training else 0.0
        return None

    def _train_scale(self):
        return 1.0 / (1.0 - self.p) if self.mode == "inverted" else 1.0

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = as_float_input(grad_out, ctx.dtype, "Dropout.backward")
        if g.shape != ctx.shape:
            raise ValueError(
                f"Dropout.backward: expected gradient of shape {ctx.shape}, got {g.shape}"
            )
        if not ctx.active:
            if self.mode == "inverted" or self.p == 0.0:
                return g
            return np.multiply(g, 1.0 - self.p)
        gx = ctx.grad_workspace(g.shape, g.dtype)
        _kernels.dropout_backward(g, ctx.mask, self._train_scale(), gx)
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

    def __init__(self, layer, p=0.5, name=None):
        super().__init__(name=name)
        if not isinstance(layer, Module) or not hasattr(getattr(layer, "weight", None), "data"):
            raise TypeError(f"DropConnect wraps a layer with a `weight` Parameter, got {layer!r}")
        self.layer = layer
        self.p = probability(p, "DropConnect p")

    def named_children(self):  # the layer's parameters appear as DropConnect's own
        return iter(())

    def _collect_modules(self, out, seen):
        if id(self) not in seen:
            seen.add(id(self))
            out.append(self)
            self.layer._collect_modules(out, seen)

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

    def _forward(self, ctx, x):
        ctx.active = self.training and self.p > 0.0
        inner = ctx.child(0)  # the wrapped layer's context for this call
        if not ctx.active:
            return self.layer._forward(inner, x)
        w = self.layer.weight
        kept = ctx.workspace("w_kept", w.shape, w.dtype)
        mask = ctx.workspace("mask", w.shape, np.uint8)
        _draw_mask(w.data, kept, mask, self.p, 1.0 / (1.0 - self.p))
        ctx.mask, ctx.kept = mask, kept
        full, w._data = w._data, kept  # the layer computes with the kept weights
        try:
            return self.layer._forward(inner, x)
        finally:
            w._data = full

    def _backward(self, ctx, grad_out, need_input_grad=True):
        inner = ctx.child(0)
        if not ctx.active:
            return self.layer._backward(inner, grad_out, need_input_grad)
        w = self.layer.weight
        # The layer accumulates dL/d(kept weights) into a scratch gradient; the chain
        # rule through the mask gives dL/dw = mask / (1 - p) * that.
        scratch = ctx.workspace("g_kept", w.shape, w.dtype)
        scratch.fill(0)
        full, grad = w._data, w._grad
        w._data, w._grad = ctx.kept, scratch
        try:
            gx = self.layer._backward(inner, grad_out, need_input_grad)
        finally:
            w._data, w._grad = full, grad
        if w.requires_grad:
            _kernels.dropout_backward(scratch, ctx.mask, 1.0 / (1.0 - self.p), scratch)
            np.add(grad, scratch, out=grad)
        return gx

    def get_config(self):
        return {"layer": self.layer, "p": self.p}

    def extra_repr(self):
        return f"{self.layer!r}, p={self.p}"
