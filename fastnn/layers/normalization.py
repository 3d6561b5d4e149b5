"""Batch normalisation (Ioffe & Szegedy, 2015) with PyTorch's semantics."""
import numpy as np

from .. import _kernels
from ..module import Layer, Parameter
from ..validation import as_float_input, float_dtype, positive_int


class BatchNorm1d(Layer):
    """Normalise each feature of a (batch, num_features) input over the batch.

    Training: y = (x - mean_B) / sqrt(var_B + eps) * weight + bias, with the batch mean
    and the *biased* batch variance; the running statistics are updated as
        running = (1 - momentum) * running + momentum * batch_statistic
    using the *unbiased* variance var_B * m / (m - 1) for running_var (m = batch size).
    momentum=None uses the cumulative average (factor 1 / num_batches_tracked).
    Evaluation: the running statistics replace the batch ones (unless
    track_running_stats=False, in which case batch statistics are always used).
    `weight` (gamma, init 1) and `bias` (beta, init 0) exist when affine=True.
    Keys and buffers match torch.nn.BatchNorm1d, num_batches_tracked included.
    """

    _buffers = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features")
        if not eps > 0:
            raise ValueError(f"BatchNorm1d: eps must be positive, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1] or None, got {momentum}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dt = float_dtype(dtype)
        n = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(n, dt), "weight")
            self.bias = Parameter(np.zeros(n, dt), "bias")
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            self.running_mean = np.zeros(n, dt)
            self.running_var = np.ones(n, dt)
            self.num_batches_tracked = np.zeros((), np.int64)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._where = f"BatchNorm1d({n})"
        self._dt = dt

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.fill(0)
            self.running_var.fill(1)
            self.num_batches_tracked.fill(0)

    def _dtype_changed(self, dtype):
        super()._dtype_changed(dtype)
        self._dt = dtype

    def _forward(self, x):
        x = as_float_input(x, self._dt, self._where, ndim=2, features=self.num_features)
        rows = x.shape[0]
        y = self._workspace("y", x.shape, x.dtype)
        gamma = self.weight.data if self.affine else None
        beta = self.bias.data if self.affine else None
        self._batch_stats = self.training or not self.track_running_stats
        if self._batch_stats:
            if rows < 2 and self.training:
                raise ValueError(
                    f"{self._where}: expected more than 1 value per channel when training, "
                    f"got input of shape {x.shape}"
                )
            mean = self._workspace("mean", (1, self.num_features), x.dtype)[0]
            invstd = self._workspace("invstd", (1, self.num_features), x.dtype)[0]
            update = self.training and self.track_running_stats
            factor = 0.0
            if update:
                self.num_batches_tracked += 1
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
            _kernels.bn_forward_train(
                x, gamma, beta, self.eps, factor,
                self.running_mean if update else None,
                self.running_var if update else None, y, mean, invstd)
        else:
            _kernels.bn_forward_eval(x, gamma, beta, self.running_mean, self.running_var,
                                     self.eps, y)
            mean = self.running_mean
            invstd = (1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)).astype(x.dtype)
        self._x, self._mean, self._invstd = x, mean, invstd
        return y

    def _backward(self, grad_out, need_input_grad=True):
        x = self._x
        g = as_float_input(grad_out, x.dtype, f"{self._where}.backward")
        if g.shape != x.shape:
            raise ValueError(
                f"{self._where}.backward: expected gradient of shape {x.shape}, got {g.shape}"
            )
        gx = self._workspace("gx", x.shape, x.dtype)
        w, b = self.weight, self.bias
        _kernels.bn_backward(
            self._batch_stats, x, g, w.data if w is not None else None,
            self._mean, self._invstd, gx,
            w.grad if w is not None and w.requires_grad else None,
            b.grad if b is not None and b.requires_grad else None)
        return gx

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
