"""Weight penalties attached to layers: `Dense(..., regularizer=L2(1e-4))`.

The Trainer adds each layer's penalty to the loss it reports and the penalty's
gradient to the weight's .grad, in one C pass per weight (fastnn._kernels.penalty).
In a hand-written loop call `model.add_penalties()` after backward.

L2 penalty vs decoupled weight decay: L2(l2) adds l2 * sum(w^2) to the loss, so the
gradient gets 2 * l2 * w, which every optimizer then transforms like the rest of the
gradient (for Adam it is divided by sqrt(v), so weights with large gradients are
barely decayed). Decoupled weight decay (AdamW's weight_decay) shrinks the weights
directly, w <- w (1 - lr * weight_decay), outside the adaptive scaling (Loshchilov &
Hutter, 2019). For plain SGD the two coincide with weight_decay = 2 * l2; for Adam
they do not. torch's `weight_decay` in SGD/Adam is the L2 kind (lambda * w added to
the gradient, i.e. L2(lambda / 2)).
"""

import numpy as np

from . import _kernels


class Regularizer:
    """l1 * sum|w| + l2 * sum(w^2)."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not (isinstance(value, (int, float, np.floating)) and value >= 0):
                raise ValueError(
                    f"{type(self).__name__}: {name} must be a number >= 0, got {value!r}"
                )
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, param):
        """The penalty of Parameter `param`; adds its gradient to param.grad when the
        parameter is trainable (sign(0) = 0 for the L1 part)."""
        if param.requires_grad:
            return _kernels.penalty(param.data, param.grad, self.l1, self.l2)
        return self.value(param.data)

    def value(self, w):
        """The penalty of array w, without gradient."""
        w = np.asarray(w, dtype=np.float64)
        return self.l1 * float(np.abs(w).sum()) + self.l2 * float((w * w).sum())

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1(Regularizer):
    """l1 * sum|w|: pushes weights to exactly zero (sparse weights)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def __repr__(self):
        return f"L1({self.l1})"


class L2(Regularizer):
    """l2 * sum(w^2): shrinks all weights towards zero."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def __repr__(self):
        return f"L2({self.l2})"


class L1L2(Regularizer):
    """l1 * sum|w| + l2 * sum(w^2)."""
