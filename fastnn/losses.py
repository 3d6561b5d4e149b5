"""Losses. `loss(pred, target)` returns the loss as a Python float; `loss.backward()`
returns dL/dpred for that call. Each loss and its gradient come from one fused C pass.
"""
import numpy as np

from . import _kernels
from .validation import as_array, as_float_input, choice, follow_dtype

_REDUCTIONS = {"mean", "sum"}


class Loss:
    """Base class: subclasses compute (loss, gradient) in `_compute`."""

    def __init__(self, reduction="mean"):
        self.reduction = choice(reduction, _REDUCTIONS, "reduction")
        self._grad = None
        self._ws = {}

    def _buffer(self, key, shape, dtype):
        buf = self._ws.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._ws[key] = np.empty(shape, dtype)
        return buf

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        """The loss of pred against target (a float); keeps the gradient for backward."""
        raise NotImplementedError

    def _backward(self):
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss")
        return self._grad

    def backward(self):
        """dL/dpred of the last call (a new array)."""
        return self._backward().copy()

    def _scale(self, n):
        """Factor turning the kernel's mean into the requested reduction."""
        return 1.0 if self.reduction == "mean" else float(n)

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits (batch, classes) and integer labels (batch,):
        loss_i = logsumexp(z_i) - z_i[y_i]
    computed stably (the row maximum is subtracted first) and fused with its gradient
    softmax(z_i) - onehot(y_i). label_smoothing=eps mixes the one-hot target with the
    uniform distribution: target = (1 - eps) onehot + eps / classes (as torch)."""

    def __init__(self, label_smoothing=0.0, reduction="mean"):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, pred, target):
        pred = as_float_input(pred, follow_dtype(pred), "CrossEntropyLoss input", ndim=2)
        rows, classes = pred.shape
        labels = check_labels(target, rows, classes, "CrossEntropyLoss")
        grad = self._buffer("grad", pred.shape, pred.dtype)
        row_loss = self._buffer("rows", (rows,), np.float64)
        loss = _kernels.softmax_xent(pred, labels, self.label_smoothing, grad, row_loss)
        if self.reduction == "sum":
            grad *= rows
        self._grad = grad
        return loss * self._scale(rows)


def check_labels(target, rows, classes, where):
    """Class labels as a contiguous int64 vector of length rows with values in
    [0, classes), else an exception saying what is wrong."""
    if rows == 0:
        raise ValueError(f"{where}: empty batch")
    y = as_array(target, f"{where} target")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{where}: class labels must be integers, got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != rows:
        raise ValueError(f"{where}: expected labels of shape ({rows},), got {y.shape}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{where}: label {bad} out of range for {classes} classes (valid: 0..{classes - 1})"
        )
    if y.dtype != np.int64 or not y.flags.c_contiguous:
        y = np.ascontiguousarray(y, dtype=np.int64)
    return y


class _Regression(Loss):
    """Elementwise regression loss of pred against a target of the same shape (a
    (batch,) target is accepted for a (batch, 1) prediction)."""

    _kernel = None

    def forward(self, pred, target):
        name = type(self).__name__
        pred = as_float_input(pred, follow_dtype(pred), f"{name} input")
        target = as_array(target, f"{name} target")
        if target.shape != pred.shape:
            if pred.ndim == 2 and pred.shape[1] == 1 and target.shape == pred.shape[:1]:
                target = target.reshape(pred.shape)
            else:
                raise ValueError(
                    f"{name}: target shape {target.shape} does not match input shape "
                    f"{pred.shape}"
                )
        if pred.size == 0:
            raise ValueError(f"{name}: empty batch")
        target = as_float_input(target, pred.dtype, f"{name} target")
        grad = self._buffer("grad", pred.shape, pred.dtype)
        loss = type(self)._kernel(pred, target, grad)
        if self.reduction == "sum":
            grad *= pred.size
        self._grad = grad
        return loss * self._scale(pred.size)


class MSELoss(_Regression):
    """Mean squared error (L2 loss): mean((pred - target)^2); gradient 2 (pred - target) / n."""

    _kernel = staticmethod(_kernels.mse)


class L1Loss(_Regression):
    """Mean absolute error (L1 loss): mean(|pred - target|); gradient sign(pred - target) / n
    with sign(0) = 0 (as torch)."""

    _kernel = staticmethod(_kernels.mae)
