"""Losses, with torch.nn's names, arguments and definitions.

`loss(pred, target, sample_weight=None)` returns the loss (a Python float for the
'mean' and 'sum' reductions, an array for 'none') and keeps its gradient;
`loss.backward()` returns dL/dpred for that call (for reduction='none', the gradient
of the sum of the returned array). Classification losses take logits or
log-probabilities of shape (N, C, *) with integer labels of shape (N, *), as torch
does (class axis 1); elementwise losses take a prediction and a target of the same
shape (a (N,) target fits a (N, 1) prediction).

Weights. Where torch has them, `weight=` (per class, or per element for
BCEWithLogitsLoss) and `ignore_index=` follow torch exactly, including its 'mean'
(cross-entropy's mean divides by the summed weights of the targets). The optional
per-sample `sample_weight` (shape (N,), non-negative) multiplies each sample's terms
in the sum and in that mean's denominator: the 'mean' of weighted samples is the
weighted average, and all-ones weights change nothing.

Each loss and its gradient come from one fused C pass over the batch (softmax
cross-entropy, and the elementwise losses); NLLLoss, a gather, is NumPy.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _kernels
from .validation import as_array, as_float_input, choice, follow_dtype

_REDUCTIONS = {"mean", "sum", "none"}

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "L1Loss",
    "Loss",
    "MSELoss",
    "NLLLoss",
    "SmoothL1Loss",
    "check_labels",
    "get",
]


class Loss:
    """Base class of the losses: `forward` computes the loss and keeps its gradient."""

    def __init__(self, reduction: str = "mean"):
        self.reduction = choice(reduction, _REDUCTIONS, "reduction")
        self._grad = None
        self._ws: dict = {}

    def _buffer(self, key, shape, dtype):
        """A reused array (so that steady-state steps allocate nothing)."""
        buf = self._ws.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._ws[key] = np.empty(shape, dtype)
        return buf

    def __call__(self, pred, target, sample_weight=None) -> Any:
        # sample_weight is passed on only when given, so that a subclass overriding
        # forward(pred, target) keeps working without weights.
        if sample_weight is None:
            return self.forward(pred, target)
        return self.forward(pred, target, sample_weight)

    def forward(self, pred, target, sample_weight=None) -> Any:
        """The loss of pred against target: a float ('mean', 'sum') or an array ('none');
        keeps the gradient for backward."""
        raise NotImplementedError

    def _backward(self):
        """The gradient of the last call, without a copy (the training loop's path)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss")
        return self._grad

    def backward(self) -> np.ndarray:
        """dL/dpred of the last call, shape of pred (a new array)."""
        return self._backward().copy()

    def get_config(self) -> dict:
        """The constructor arguments."""
        return {"reduction": self.reduction}

    def __repr__(self):
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- weighting and reduction shared by every loss ------------------------------------
    def _sample_weight(self, sample_weight, n):
        """sample_weight as a float64 (n,) vector, or None."""
        if sample_weight is None:
            return None
        where = f"{type(self).__name__} sample_weight"
        s = as_array(sample_weight, where)
        if s.shape != (n,):
            raise ValueError(f"{where}: expected shape ({n},), got {s.shape}")
        s = s.astype(np.float64)
        if not np.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"{where}: weights must be finite and >= 0")
        return s

    def _reduce(self, elem, grad, denom, s):
        """Reduce per-position losses `elem` (shape (N, *)) whose gradient `grad` (the
        gradient of elem.sum(), shape of pred, modified in place) is known.

        denom: the per-position weights 'mean' divides by (None: one per position);
        s: per-sample weights (N,) or None."""
        if s is not None:
            s_elem = s.reshape((-1,) + (1,) * (elem.ndim - 1))
            elem = elem * s_elem
            grad *= s.reshape((-1,) + (1,) * (grad.ndim - 1)).astype(grad.dtype)
        if self.reduction == "none":
            return elem
        total = float(np.sum(elem, dtype=np.float64))
        if self.reduction == "sum":
            return total
        if denom is None:
            d = float(elem.size) if s is None else float(s.sum()) * (elem.size // len(s))
        else:
            d = float(np.sum(denom * s_elem if s is not None else denom, dtype=np.float64))
        if not d and s is not None and not s.any():
            grad.fill(0)  # a batch whose samples all weigh 0 counts for nothing
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            grad *= grad.dtype.type(1.0 / d) if d else grad.dtype.type(np.nan)
            return total / d if d else float("nan")


def _short(v):
    if isinstance(v, np.ndarray):
        return f"array{v.shape}"
    return repr(v)


def _class_weight(weight, where):
    if weight is None:
        return None
    w = as_array(weight, f"{where} weight").astype(np.float64)
    if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(
            f"{where}: weight must be a 1-D vector of finite weights >= 0 (one "
            f"per class), got shape {w.shape}"
        )
    return w


def check_labels(target, rows, classes, where, shape=None, ignore_index=None):
    """Class labels as a contiguous int64 array with values in [0, classes) (or equal to
    ignore_index), else an exception saying what is wrong.

    shape: the expected label shape (default (rows,)). Returns the labels; with an
    ignore_index, also the boolean mask of the labels that count (None when all do)."""
    shape = (rows,) if shape is None else tuple(shape)
    if rows == 0:
        raise ValueError(f"{where}: empty batch")
    y = as_array(target, f"{where} target")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{where}: class labels must be integers, got dtype {y.dtype}")
    if y.shape != shape:
        raise ValueError(f"{where}: expected labels of shape {shape}, got {y.shape}")
    lo, hi = int(y.min()), int(y.max())
    valid = None
    if lo < 0 or hi >= classes:
        if ignore_index is not None:
            valid = y != ignore_index
            inside = y[valid]
            lo, hi = (int(inside.min()), int(inside.max())) if inside.size else (0, 0)
        if lo < 0 or hi >= classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{where}: label {bad} out of range for {classes} classes (valid: 0..{classes - 1})"
            )
    if y.dtype != np.int64 or not y.flags.c_contiguous:
        y = np.ascontiguousarray(y, dtype=np.int64)
    return y if ignore_index is None else (y, valid)


class _Classification(Loss):
    """Shared by the losses on (N, C, *) scores and (N, *) class labels."""

    def __init__(self, weight, ignore_index, reduction):
        super().__init__(reduction)
        self.weight = _class_weight(weight, type(self).__name__)
        self.ignore_index = int(ignore_index)

    def get_config(self):
        """The constructor arguments."""
        return {
            "weight": self.weight,
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
        }

    def _inputs(self, pred, target):
        """(scores, labels, valid mask or None) with the scores' class axis checked."""
        name = type(self).__name__
        pred = as_float_input(pred, follow_dtype(pred), f"{name} input")
        if pred.ndim < 2:
            raise ValueError(
                f"{name} input: expected (N, C) or (N, C, d1, ...) scores, got shape {pred.shape}"
            )
        classes = pred.shape[1]
        if self.weight is not None and len(self.weight) != classes:
            raise ValueError(f"{name}: weight has {len(self.weight)} entries for {classes} classes")
        labels, valid = check_labels(
            target,
            pred.shape[0],
            classes,
            name,
            shape=pred.shape[:1] + pred.shape[2:],
            ignore_index=self.ignore_index,
        )
        return pred, labels, valid

    def _label_weights(self, labels, valid):
        """Per-position weight of each label's term (class weight, 0 where ignored), or
        None when every term has weight 1."""
        if self.weight is None and valid is None:
            return None
        w = (
            np.ones(labels.shape)
            if self.weight is None
            else self.weight[np.where(valid, labels, 0) if valid is not None else labels]
        )
        return w if valid is None else w * valid


def _classes_last(x):
    """(N, C, *) -> contiguous (N * prod(*), C)."""
    if x.ndim == 2:
        return x
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(-1, x.shape[1])


def _classes_back(g2, shape):
    """Inverse of _classes_last for a gradient of the input's shape."""
    if len(shape) == 2:
        return g2
    inner = (shape[0],) + shape[2:] + (shape[1],)
    return np.ascontiguousarray(np.moveaxis(g2.reshape(inner), -1, 1))


class CrossEntropyLoss(_Classification):
    """Softmax cross-entropy of logits (N, C) or (N, C, d1, ...) and integer labels
    (N,) or (N, d1, ...), as torch.nn.CrossEntropyLoss:

        loss_i = -sum_k t_ik log softmax(z_i)_k,  t_i = (1 - eps) onehot(y_i) + eps / C

    computed stably (the row maximum first) and fused with its gradient
    softmax(z_i) - t_i. weight: per-class weights (C,) (the 'mean' divides by the
    summed weights of the labels); ignore_index: labels with this value count for
    nothing; label_smoothing: eps in [0, 1].

    Example:
        >>> loss = CrossEntropyLoss()
        >>> value = loss(np.zeros((4, 3)), [0, 1, 2, 0])   # log(3)
        >>> grad = loss.backward()                         # (4, 3)
    """

    def __init__(
        self,
        weight=None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(weight, ignore_index, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def get_config(self):
        """The constructor arguments."""
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def forward(self, pred, target, sample_weight=None):
        """The loss of logits pred (N, C, *) against int labels target (N, *): a float, or
        per-position losses (N, *) for reduction='none'; keeps the gradient for backward."""
        pred, labels, valid = self._inputs(pred, target)
        s = self._sample_weight(sample_weight, pred.shape[0])
        eps = self.label_smoothing
        if (
            pred.ndim == 2
            and valid is None
            and self.weight is None
            and s is None
            and self.reduction != "none"
        ):
            return self._fast(pred, labels)
        z2 = _classes_last(pred)
        y = labels.reshape(-1)
        if valid is not None:
            y = np.where(valid.reshape(-1), y, 0)
        if eps == 0 or self.weight is None:
            elem, g2, denom = self._fused(z2, y, labels, valid)
        else:
            elem, g2, denom = self._smoothed(z2, y, labels, valid)
        grad = _classes_back(g2, pred.shape)
        value = self._reduce(elem, grad, denom, s)
        self._grad = grad
        return value

    def _fast(self, pred, labels):
        """2-D logits, plain mean or sum: the kernel alone, nothing allocated."""
        rows = pred.shape[0]
        grad = self._buffer("grad", pred.shape, pred.dtype)
        row_loss = self._buffer("rows", (rows,), np.float64)
        loss = _kernels.softmax_xent(pred, labels, self.label_smoothing, grad, row_loss)
        if self.reduction == "sum":
            grad *= rows
            loss *= rows
        self._grad = grad
        return loss

    def _fused(self, z2, y, labels, valid):
        """The kernel's per-row losses and gradients, weighted per row: exact for class
        weights without smoothing, and for ignored labels (weight 0)."""
        rows = z2.shape[0]
        g2 = np.empty_like(z2)
        row_loss = np.empty(rows, np.float64)
        _kernels.softmax_xent(z2, y, self.label_smoothing, g2, row_loss)
        g2 *= z2.dtype.type(rows)  # the kernel's gradient is of the mean
        lw = self._label_weights(labels, valid)
        elem = row_loss.reshape(labels.shape)
        if lw is not None:
            elem = elem * lw
            g2 *= lw.reshape(-1, 1).astype(g2.dtype)
        return elem, g2, lw

    def _smoothed(self, z2, y, labels, valid):
        """Label smoothing with class weights w, as torch defines it: per position
        (1 - eps) w_y (-log p_y) + eps / C sum_k w_k (-log p_k), the 'mean' dividing by
        the summed w_y (NumPy, float64)."""
        rows, C = z2.shape
        z = z2.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        se = e.sum(axis=1, keepdims=True)
        logp, p = z - np.log(se), e / se
        w = self.weight
        lw = self._label_weights(labels, valid)
        flat_lw = lw.reshape(-1)
        keep = np.ones(rows) if valid is None else valid.reshape(-1).astype(np.float64)
        eps, r = self.label_smoothing, np.arange(rows)
        g2 = p * ((1 - eps) * flat_lw + eps / C * w.sum() * keep)[:, None]
        g2[r, y] -= (1 - eps) * flat_lw
        g2 -= (eps / C) * w * keep[:, None]
        elem = -(1 - eps) * logp[r, y] * flat_lw - eps / C * (logp * w).sum(axis=1) * keep
        return elem.reshape(labels.shape), g2.astype(z2.dtype), lw


class NLLLoss(_Classification):
    """Negative log-likelihood of log-probabilities (N, C, *) (e.g. a LogSoftmax output)
    and integer labels (N, *), as torch.nn.NLLLoss: loss_i = -w_{y_i} x[i, y_i]; the
    'mean' divides by the summed weights of the labels."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, ignore_index, reduction)

    def forward(self, pred, target, sample_weight=None):
        """The loss of log-probabilities pred (N, C, *) against int labels target (N, *): a
        float, or (N, *) for reduction='none'; keeps the gradient for backward."""
        pred, labels, valid = self._inputs(pred, target)
        s = self._sample_weight(sample_weight, pred.shape[0])
        x2 = _classes_last(pred)
        y = labels.reshape(-1) if valid is None else np.where(valid, labels, 0).reshape(-1)
        lw = self._label_weights(labels, valid)
        w = np.ones(len(y)) if lw is None else lw.reshape(-1)
        r = np.arange(len(y))
        elem = (-x2[r, y].astype(np.float64) * w).reshape(labels.shape)
        g2 = np.zeros_like(x2)
        g2[r, y] = -w
        grad = _classes_back(g2, pred.shape)
        value = self._reduce(elem, grad, lw, s)
        self._grad = grad
        return value


class _Elementwise(Loss):
    """An elementwise loss l(pred, target) on same-shape arrays, from the C kernel
    fnn_pointwise_loss (`_kind`); subclasses give its parameter (`_param`)."""

    _kind = -1
    # a kernel computing the plain mean and its gradient in one pass
    _fused: Callable[..., float] | None = None

    def _param(self):
        return 0.0

    def _pairs(self, pred, target):
        name = type(self).__name__
        pred = as_float_input(pred, follow_dtype(pred), f"{name} input")
        target = as_array(target, f"{name} target")
        if target.shape != pred.shape:
            if pred.ndim == 2 and pred.shape[1] == 1 and target.shape == pred.shape[:1]:
                target = target.reshape(pred.shape)
            else:
                raise ValueError(
                    f"{name}: target shape {target.shape} does not match input shape {pred.shape}"
                )
        if pred.size == 0:
            raise ValueError(f"{name}: empty batch")
        return pred, as_float_input(target, pred.dtype, f"{name} target")

    def _element_weight(self, pred):
        """Per-element weights (broadcast to pred) or None."""
        return None

    def _pos_weight(self, pred):
        return None

    def forward(self, pred, target, sample_weight=None):
        """The loss of pred against target (same shape): a float, or the per-element losses
        for reduction='none'; keeps the gradient for backward."""
        pred, target = self._pairs(pred, target)
        s = self._sample_weight(sample_weight, pred.shape[0])
        w = self._element_weight(pred)
        grad = self._buffer("grad", pred.shape, pred.dtype)
        if self._fused is not None and s is None and self.reduction != "none":
            loss = type(self)._fused(pred, target, grad)
            if self.reduction == "sum":
                grad *= pred.size
                loss *= pred.size
            self._grad = grad
            return loss
        elem = self._buffer("elem", pred.shape, pred.dtype)
        pw = self._pos_weight(pred)
        cols = pred.shape[-1]  # the kernel sees (rows, last axis): pos_weight's axis
        _kernels.pointwise_loss(
            self._kind,
            pred.reshape(-1, cols),
            target.reshape(-1, cols),
            self._param(),
            pw,
            elem.reshape(-1, cols),
            grad.reshape(-1, cols),
        )
        if w is not None:
            elem = elem * w
            grad *= w
        value = self._reduce(elem, grad, None, s)
        self._grad = grad
        return value.copy() if value is self._ws.get("elem") else value


class MSELoss(_Elementwise):
    """Mean squared error (L2 loss): mean((pred - target)^2); gradient 2 (pred - target) / n."""

    _kind = _kernels.LOSS_MSE
    _fused = staticmethod(_kernels.mse)


class L1Loss(_Elementwise):
    """Mean absolute error (L1 loss): mean(|pred - target|); gradient sign(pred - target) / n
    with sign(0) = 0 (as torch)."""

    _kind = _kernels.LOSS_L1
    _fused = staticmethod(_kernels.mae)


class _Thresholded(_Elementwise):
    """An elementwise loss with one threshold parameter, named `_param_name`."""

    _param_name = ""
    _zero_allowed = False

    def __init__(self, reduction, value):
        super().__init__(reduction)
        if not (value >= 0 if self._zero_allowed else value > 0):
            raise ValueError(
                f"{type(self).__name__}: {self._param_name} must be "
                f"{'>= 0' if self._zero_allowed else '> 0'}, got {value}"
            )
        setattr(self, self._param_name, float(value))

    def _param(self):
        return getattr(self, self._param_name)

    def get_config(self):
        """The constructor arguments."""
        return {"reduction": self.reduction, self._param_name: self._param()}


class HuberLoss(_Thresholded):
    """Huber loss, as torch.nn.HuberLoss: with d = pred - target,
    l = 0.5 d^2 where |d| < delta, delta (|d| - delta / 2) elsewhere."""

    _kind = _kernels.LOSS_HUBER
    _param_name = "delta"

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction, delta)


class SmoothL1Loss(_Thresholded):
    """Smooth L1 loss, as torch.nn.SmoothL1Loss: with d = pred - target,
    l = 0.5 d^2 / beta where |d| < beta, |d| - beta / 2 elsewhere (beta = 0: L1)."""

    _kind = _kernels.LOSS_SMOOTH_L1
    _param_name = "beta"
    _zero_allowed = True

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction, beta)


class BCEWithLogitsLoss(_Elementwise):
    """Binary cross-entropy on logits x with targets y in [0, 1] of the same shape, as
    torch.nn.BCEWithLogitsLoss (a sigmoid and BCE in one stable step):

        l = -w [p y log s(x) + (1 - y) log(1 - s(x))]

    weight w: per-element weights broadcast to the input's shape; pos_weight p: weights
    of the positive class, one per entry of the last axis (C,) (a scalar is repeated).
    The 'mean' divides by the number of elements (weights or not), as torch."""

    _kind = _kernels.LOSS_BCE_LOGITS

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.weight = None if weight is None else as_array(weight, "BCEWithLogitsLoss weight")
        self.pos_weight = (
            None
            if pos_weight is None
            else np.atleast_1d(as_array(pos_weight, "BCEWithLogitsLoss pos_weight")).astype(
                np.float64
            )
        )
        if self.pos_weight is not None and self.pos_weight.ndim != 1:
            raise ValueError(
                "BCEWithLogitsLoss: pos_weight must be a scalar or a vector (C,), "
                f"got shape {self.pos_weight.shape}"
            )

    def get_config(self):
        """The constructor arguments."""
        return {"weight": self.weight, "reduction": self.reduction, "pos_weight": self.pos_weight}

    def _element_weight(self, pred):
        if self.weight is None:
            return None
        try:
            return np.broadcast_to(self.weight, pred.shape).astype(pred.dtype)
        except ValueError:
            raise ValueError(
                f"BCEWithLogitsLoss: weight of shape {self.weight.shape} does not "
                f"broadcast to the input's shape {pred.shape}"
            ) from None

    def _pos_weight(self, pred):
        pw = self.pos_weight
        if pw is None:
            return None
        if len(pw) not in (1, pred.shape[-1]):
            raise ValueError(
                f"BCEWithLogitsLoss: pos_weight has {len(pw)} entries, the "
                f"input's last axis {pred.shape[-1]}"
            )
        key = ("pw", pred.dtype, pred.shape[-1])
        if key not in self._ws:  # one weight per entry of the last axis, for the kernel
            self._ws[key] = np.ascontiguousarray(
                np.broadcast_to(pw, pred.shape[-1:]), dtype=pred.dtype
            )
        return self._ws[key]


_BY_NAME = {
    "cross_entropy": CrossEntropyLoss,
    "categorical_crossentropy": CrossEntropyLoss,
    "sparse_categorical_crossentropy": CrossEntropyLoss,
    "nll": NLLLoss,
    "mse": MSELoss,
    "mean_squared_error": MSELoss,
    "l1": L1Loss,
    "mae": L1Loss,
    "mean_absolute_error": L1Loss,
    "huber": HuberLoss,
    "smooth_l1": SmoothL1Loss,
    "bce": BCEWithLogitsLoss,
    "binary_crossentropy": BCEWithLogitsLoss,
    "bce_with_logits": BCEWithLogitsLoss,
}


def get(loss) -> Loss:
    """A loss object from a name ('cross_entropy', 'mse', 'l1' or 'mae', 'huber',
    'smooth_l1', 'bce', 'nll' and the Keras spellings such as
    'sparse_categorical_crossentropy'), or the loss object itself."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss.lower() in _BY_NAME:
        return _BY_NAME[loss.lower()]()
    if callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None)):
        return loss
    raise ValueError(
        f"unknown loss {loss!r}; expected a fastnn.losses object or one of {sorted(_BY_NAME)}"
    )
