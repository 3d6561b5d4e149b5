"""Normalisation layers with PyTorch's semantics, names and state_dict keys:
BatchNorm1d/2d (Ioffe & Szegedy, 2015), LayerNorm (Ba et al., 2016), GroupNorm (Wu &
He, 2018), InstanceNorm1d/2d (Ulyanov et al., 2016) and weight normalisation
(Salimans & Kingma, 2016)."""

import math

import numpy as np

from .. import _kernels, rng, state_version
from ..module import Layer, Parameter
from ..validation import as_float_input, float_dtype, positive_int, real_number
from .activations import is_relu


def _check_eps_momentum(where, eps, momentum):
    eps = real_number(eps, f"{where}: eps")
    momentum = None if momentum is None else real_number(momentum, f"{where}: momentum")
    if not eps > 0:
        raise ValueError(f"{where}: eps must be positive, got {eps}")
    if momentum is not None and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{where}: momentum must be in [0, 1] or None, got {momentum}")


def _check_grad(grad_out, x, where):
    g = as_float_input(grad_out, x.dtype, f"{where}.backward")
    if g.shape != x.shape:
        raise ValueError(f"{where}.backward: expected gradient of shape {x.shape}, got {g.shape}")
    return g


class _ChannelNorm(Layer):
    """Shared machinery of the layers normalising per channel (axis 1) with running
    statistics: affine weight/bias and running_mean/running_var/num_batches_tracked,
    updated as running = (1 - momentum) running + momentum * batch_statistic with the
    unbiased variance (momentum=None: cumulative average)."""

    _buffers = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features, eps, momentum, affine, track_running_stats, dtype, name=None):
        super().__init__(name=name)
        name = type(self).__name__
        self.num_features = positive_int(num_features, f"{name}: num_features")
        _check_eps_momentum(name, eps, momentum)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dt = float_dtype(dtype)
        n = self.num_features
        self.weight = Parameter(np.ones(n, dt), "weight") if self.affine else None
        self.bias = Parameter(np.zeros(n, dt), "bias") if self.affine else None
        if self.track_running_stats:
            self.running_mean = np.zeros(n, dt)
            self.running_var = np.ones(n, dt)
            self.num_batches_tracked = np.zeros((), np.int64)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._where = f"{name}({n})"
        self._dt = dt

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.fill(0)
            self.running_var.fill(1)
            self.num_batches_tracked.fill(0)
            state_version.bump()

    def _dtype_changed(self, dtype):
        super()._dtype_changed(dtype)
        self._dt = dtype

    def _check_input(self, x):
        x = as_float_input(x, self._dt, self._where)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            want = " or ".join(f"{d}-D" for d in self._ndims)
            raise ValueError(
                f"{self._where}: expected a {want} input with "
                f"{self.num_features} channels on axis 1, got shape {x.shape}"
            )
        return x

    def _momentum_factor(self):
        """Advance num_batches_tracked; the weight of this batch in the running stats."""
        self.num_batches_tracked += 1
        state_version.bump()
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _affine(self):
        return (self.weight.data, self.bias.data) if self.affine else (None, None)

    def _param_grads(self):
        w, b = self.weight, self.bias
        return (
            w.grad if w is not None and w.requires_grad else None,
            b.grad if b is not None and b.requires_grad else None,
        )

    def _running_invstd(self, dtype):
        return (1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)).astype(dtype)

    def get_config(self):
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_ChannelNorm):
    # Batch statistics need two samples: fit merges a trailing batch of one into the
    # batch before it.
    min_train_batch = 2

    """Batch normalisation: each channel normalised over the batch (and positions)."""

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        dtype=np.float32,
        name=None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, name)

    def _forward(self, ctx, x):
        x = self._check_input(x)
        y = ctx.workspace("y", x.shape, x.dtype)
        gamma, beta = self._affine()
        ctx.batch_stats = self.training or not self.track_running_stats
        if ctx.batch_stats:
            if self.training:
                self._check_batch(x)
            mean = ctx.workspace("mean", (1, self.num_features), x.dtype)[0]
            invstd = ctx.workspace("invstd", (1, self.num_features), x.dtype)[0]
            update = self.training and self.track_running_stats
            factor = self._momentum_factor() if update else 0.0
            _kernels.bn_forward_train(
                x,
                gamma,
                beta,
                self.eps,
                factor,
                self.running_mean if update else None,
                self.running_var if update else None,
                y,
                mean,
                invstd,
                self._colsum_scratch(2 * self.num_features),
            )
        else:
            _kernels.bn_forward_eval(
                x, gamma, beta, self.running_mean, self.running_var, self.eps, y
            )
            mean, invstd = self.running_mean, None  # computed by backward if it comes
        ctx.x, ctx.mean, ctx.invstd = x, mean, invstd
        return y

    def _train_args(self):
        """(gamma, beta, eps, momentum factor, running_mean, running_var) of a training
        forward of the fused kernels (running statistics None when not tracked)."""
        track = self.track_running_stats
        return (
            *self._affine(),
            self.eps,
            self._momentum_factor() if track else 0.0,
            self.running_mean if track else None,
            self.running_var if track else None,
        )

    def _check_batch(self, x):
        """Batch statistics in training need two values per channel (as torch)."""
        if x.size // x.shape[1] < 2:
            raise ValueError(
                f"{self._where}: expected more than 1 value per channel "
                f"when training, got input of shape {x.shape}"
            )

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x = ctx.x
        g = _check_grad(grad_out, x, self._where)
        gx = ctx.grad_workspace(x.shape, x.dtype)
        gw, gb = self._param_grads()
        invstd = ctx.invstd if ctx.batch_stats else self._running_invstd(x.dtype)
        _kernels.bn_backward(
            ctx.batch_stats,
            x,
            g,
            self._affine()[0],
            ctx.mean,
            invstd,
            gx,
            gw,
            gb,
            self._colsum_scratch(2 * self.num_features),
        )
        return gx


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) input, each channel over N (and L).

    Training: y = (x - mean_B) / sqrt(var_B + eps) * weight + bias, with the batch mean
    and the *biased* batch variance; the running statistics are updated as
        running = (1 - momentum) * running + momentum * batch_statistic
    using the *unbiased* variance var_B * m / (m - 1) for running_var (m values per
    channel). momentum=None uses the cumulative average (1 / num_batches_tracked).
    Evaluation: the running statistics replace the batch ones (unless
    track_running_stats=False: batch statistics always). `weight` (gamma, init 1) and
    `bias` (beta, init 0) exist when affine=True. Keys and buffers match
    torch.nn.BatchNorm1d, num_batches_tracked included.

    Followed by ReLU (and Dropout) in a container, it runs fused in training on
    (N, C) input: one statistics pass and one pass that normalises, rectifies and drops
    forward, two passes backward, nothing intermediate stored (see `fuse`).
    """

    _ndims = (2, 3)

    def fuse(self, following):
        """BatchNorm1d -> ReLU (-> Dropout) as one step (_BatchNormReLU)."""
        if not is_relu(following[0]):
            return None
        nxt = following[1] if len(following) > 1 else None
        if nxt is not None and callable(getattr(nxt, "fused_dropout_p", None)):
            return _BatchNormReLU(self, following[0], nxt), 2
        return _BatchNormReLU(self, following[0]), 1


def forward_one_by_one(layers, ctx, x):
    """A fused step's layers run one after another, each in a child context of ctx."""
    for k, layer in enumerate(layers):
        x = layer._forward(ctx.child(k), x)
    return x


def backward_one_by_one(layers, ctx, g):
    """The backward of forward_one_by_one."""
    for k in range(len(layers) - 1, -1, -1):
        g = layers[k]._backward(ctx.child(k), g)
    return g


class _BatchNormReLU:
    """The fused step BatchNorm1d -> ReLU (-> Dropout): in training mode, on C-contiguous
    (N, C) input of the layer's dtype, one statistics pass and one pass that normalises,
    rectifies and drops (fastnn._kernels.bn_relu_dropout_train) and a two-pass backward;
    neither the normalised nor the rectified values are stored. Anywhere else (eval
    mode, 3-D input, weight-scaling dropout) its layers run one after another, each in
    its own child context. The random masks are those the Dropout layer would draw."""

    def __init__(self, bn, relu, dropout=None):
        self.bn, self.relu, self.dropout = bn, relu, dropout
        self.layers = (bn, relu) if dropout is None else (bn, relu, dropout)

    def _drop_p(self):
        """The dropout probability to fuse, 0.0 without dropout, None if not fusable."""
        return 0.0 if self.dropout is None else self.dropout.fused_dropout_p()

    def _fusable(self, x, p):
        bn = self.bn
        return (
            bn.training
            and type(x) is np.ndarray
            and x.ndim == 2
            and x.dtype == bn._dt
            and x.flags.c_contiguous
            and x.shape[1] == bn.num_features
            and x.shape[0] > 1
            and x.size < 1 << 32
            and p is not None
        )

    def _forward(self, ctx, x):
        p = self._drop_p()
        ctx.fused = self._fusable(x, p)
        if not ctx.fused:
            return forward_one_by_one(self.layers, ctx, x)
        bn = self.bn
        n, c = x.shape
        y = ctx.workspace("y", x.shape, x.dtype)
        stats = ctx.workspace("stats", (4, c), x.dtype)  # mean, invstd, scale, shift
        mask = ctx.workspace("mask", x.shape, np.uint8) if p > 0.0 else None
        key, counter = rng.next_dropout_stream() if p > 0.0 else (0, 0)
        _kernels.bn_relu_dropout_train(
            x,
            *bn._train_args(),
            y,
            stats[0],
            stats[1],
            stats[2],
            stats[3],
            mask,
            p,
            1.0 / (1.0 - p),
            key,
            counter,
            bn._colsum_scratch(2 * c),
            rng.dropout_offset(x) if p > 0.0 else 0,
        )
        ctx.x, ctx.stats, ctx.mask, ctx.p = x, stats, mask, p
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        if not ctx.fused:
            return backward_one_by_one(self.layers, ctx, grad_out)
        bn, x = self.bn, ctx.x
        g = grad_out
        if (
            type(g) is not np.ndarray
            or g.dtype != x.dtype
            or g.shape != x.shape
            or not g.flags.c_contiguous
        ):
            g = _check_grad(g, x, "BatchNorm1d+ReLU")
        gx = ctx.grad_workspace(x.shape, x.dtype)
        gw, gb = bn._param_grads()
        s = ctx.stats
        _kernels.bn_relu_dropout_backward(
            x,
            g,
            bn._affine()[0],
            s[0],
            s[1],
            s[2],
            s[3],
            ctx.mask,
            1.0 / (1.0 - ctx.p),
            gx,
            gw,
            gb,
            bn._colsum_scratch(2 * x.shape[1]),
        )
        return gx


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) input, each channel over N, H and W; otherwise as
    BatchNorm1d. Followed by ReLU in a container, it runs fused in training: one
    statistics pass and one pass that normalises and rectifies forward, the ReLU's
    derivative taken inside the batch norm's backward (see `fuse`)."""

    _ndims = (4,)

    def fuse(self, following):
        """BatchNorm2d -> ReLU as one step (_BatchNorm2dReLU)."""
        return (_BatchNorm2dReLU(self, following[0]), 1) if is_relu(following[0]) else None


class _BatchNorm2dReLU:
    """The fused step BatchNorm2d -> ReLU: in training mode with batch statistics
    (fastnn._kernels.bn_relu_forward_train), the batch norm's output is never stored,
    only the ReLU's, and the backward takes the ReLU's derivative from x and the
    forward's affine (y > 0 where x * scale + shift > 0) without reading y again. In
    eval mode its layers run one after another, each in its own child context."""

    def __init__(self, bn, relu):
        self.bn, self.relu = bn, relu
        self.layers = (bn, relu)

    def _forward(self, ctx, x):
        bn = self.bn
        ctx.fused = bn.training
        if not ctx.fused:
            return forward_one_by_one(self.layers, ctx, x)
        x = bn._check_input(x)
        bn._check_batch(x)
        c = bn.num_features
        y = ctx.workspace("y", x.shape, x.dtype)
        s = ctx.workspace("stats", (4, c), x.dtype)  # mean, invstd, scale, shift
        _kernels.bn_relu_forward_train(
            x, *bn._train_args(), y, s[0], s[1], s[2], s[3], bn._colsum_scratch(2 * c)
        )
        ctx.x, ctx.stats = x, s
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        if not ctx.fused:
            return backward_one_by_one(self.layers, ctx, grad_out)
        bn, x = self.bn, ctx.x
        g = _check_grad(grad_out, x, "BatchNorm2d+ReLU")
        gx = ctx.grad_workspace(x.shape, x.dtype)
        gw, gb = bn._param_grads()
        s = ctx.stats
        _kernels.bn_relu_backward(
            x,
            g,
            bn._affine()[0],
            s[0],
            s[1],
            s[2],
            s[3],
            gx,
            gw,
            gb,
            bn._colsum_scratch(2 * bn.num_features),
        )
        return gx


class _InstanceNorm(_ChannelNorm):
    """Instance norm: each (sample, channel) normalised over its positions."""

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=False,
        track_running_stats=False,
        dtype=np.float32,
        name=None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, name)

    def _forward(self, ctx, x):
        x = self._check_input(x)
        n, c = x.shape[:2]
        inner = x.size // (n * c)
        y = ctx.workspace("y", x.shape, x.dtype)
        gamma, beta = self._affine()
        ctx.instance_stats = self.training or not self.track_running_stats
        if ctx.instance_stats:
            if self.training and inner < 2:
                raise ValueError(
                    f"{self._where}: expected more than 1 spatial element when "
                    f"training, got input of shape {x.shape}"
                )
            mean = ctx.workspace("mean", (n * c,), x.dtype)
            invstd = ctx.workspace("invstd", (n * c,), x.dtype)
            _kernels.rownorm_forward(x, inner, c, inner, gamma, beta, self.eps, y, mean, invstd)
            if self.training and self.track_running_stats:
                self._update_running(mean, invstd, n, c, inner)
        else:
            _kernels.bn_forward_eval(
                x, gamma, beta, self.running_mean, self.running_var, self.eps, y
            )
            mean, invstd = self.running_mean, None  # computed by backward if it comes
        ctx.x, ctx.mean, ctx.invstd, ctx.inner = x, mean, invstd, inner
        return y

    def _update_running(self, mean, invstd, n, c, inner):
        """torch's rule: the batch-norm update of every instance, averaged over samples,
        with each instance's unbiased variance."""
        factor = self._momentum_factor()
        var = (1.0 / invstd.astype(np.float64) ** 2 - self.eps) * inner / (inner - 1)
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean.reshape(
            n, c
        ).mean(axis=0)
        self.running_var[...] = (1 - factor) * self.running_var + factor * var.reshape(n, c).mean(
            axis=0
        )

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x = ctx.x
        g = _check_grad(grad_out, x, self._where)
        gx = ctx.workspace("gx", x.shape, x.dtype)
        gw, gb = self._param_grads()
        gamma = self._affine()[0]
        if ctx.instance_stats:
            _kernels.rownorm_backward(
                x, ctx.inner, x.shape[1], ctx.inner, g, gamma, ctx.mean, ctx.invstd, gx, gw, gb
            )
        else:
            _kernels.bn_backward(
                False,
                x,
                g,
                gamma,
                ctx.mean,
                self._running_invstd(x.dtype),
                gx,
                gw,
                gb,
                self._colsum_scratch(2 * self.num_features),
            )
        return gx


class InstanceNorm1d(_InstanceNorm):
    """Instance norm of (N, C, L) input: each sample's channel over L. affine and
    track_running_stats are off by default (as torch); with tracking on, evaluation
    uses the running statistics."""

    _ndims = (3,)


class InstanceNorm2d(_InstanceNorm):
    """Instance norm of (N, C, H, W) input: each sample's channel over H and W."""

    _ndims = (4,)


class LayerNorm(Layer):
    """Normalise over the last len(normalized_shape) axes of each sample:
        y = (x - mean) / sqrt(var + eps) * weight + bias
    (biased variance; weight and bias have shape normalized_shape and exist when
    elementwise_affine=True; bias=False drops the bias). Same in training and eval."""

    def __init__(
        self,
        normalized_shape,
        eps=1e-5,
        elementwise_affine=True,
        bias=True,
        dtype=np.float32,
        name=None,
    ):
        super().__init__(name=name)
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(positive_int(d, "normalized_shape") for d in normalized_shape)
        if not self.normalized_shape:
            raise ValueError("LayerNorm: normalized_shape must not be empty")
        eps = real_number(eps, "LayerNorm: eps")
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be positive, got {eps}")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        dt = float_dtype(dtype)
        shape = self.normalized_shape
        self.weight = Parameter(np.ones(shape, dt), "weight") if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dt), "bias") if elementwise_affine and bias else None
        self._D = math.prod(shape)
        self._dt = dt
        self._where = f"LayerNorm({self.normalized_shape})"

    def _dtype_changed(self, dtype):
        super()._dtype_changed(dtype)
        self._dt = dtype

    def _forward(self, ctx, x):
        x = as_float_input(x, self._dt, self._where)
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape or x.ndim <= k - 1:
            raise ValueError(
                f"{self._where}: input's trailing axes must be "
                f"{self.normalized_shape}, got shape {x.shape}"
            )
        rows = x.size // self._D
        y = ctx.workspace("y", x.shape, x.dtype)
        mean = ctx.workspace("mean", (rows,), x.dtype)
        invstd = ctx.workspace("invstd", (rows,), x.dtype)
        w, b = self._wb()
        _kernels.rownorm_forward(x, self._D, 1, 1, w, b, self.eps, y, mean, invstd)
        ctx.x, ctx.mean, ctx.invstd = x, mean, invstd
        return y

    def _wb(self):
        """(weight, bias) data for the kernel: a missing bias is passed as zeros."""
        if self.weight is None:
            return None, None
        if self.bias is None:
            zeros = self._scratch_ws.get("zero_bias")
            if zeros is None or zeros.dtype != self._dt:
                zeros = self._scratch_ws["zero_bias"] = np.zeros(self.normalized_shape, self._dt)
            return self.weight.data, zeros
        return self.weight.data, self.bias.data

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x = ctx.x
        g = _check_grad(grad_out, x, self._where)
        gx = ctx.workspace("gx", x.shape, x.dtype)
        w, b = self.weight, self.bias
        gw = w.grad if w is not None and w.requires_grad else None
        gb = b.grad if b is not None and b.requires_grad else None
        _kernels.rownorm_backward(
            x, self._D, 1, 1, g, None if w is None else w.data, ctx.mean, ctx.invstd, gx, gw, gb
        )
        return gx

    def get_config(self):
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias is not None,
        }

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Layer):
    """Split the C channels of an (N, C, ...) input into num_groups groups and normalise
    each sample's group over its channels and positions; then a per-channel affine
    (weight, bias of shape (C,), when affine=True). Same in training and eval."""

    def __init__(
        self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32, name=None
    ):
        super().__init__(name=name)
        self.num_groups = positive_int(num_groups, "num_groups")
        self.num_channels = positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                f"num_groups ({num_groups})"
            )
        eps = real_number(eps, "GroupNorm: eps")
        if not eps > 0:
            raise ValueError(f"GroupNorm: eps must be positive, got {eps}")
        self.eps = float(eps)
        self.affine = bool(affine)
        dt = float_dtype(dtype)
        self.weight = Parameter(np.ones(num_channels, dt), "weight") if affine else None
        self.bias = Parameter(np.zeros(num_channels, dt), "bias") if affine else None
        self._dt = dt
        self._where = f"GroupNorm({num_groups}, {num_channels})"

    def _dtype_changed(self, dtype):
        super()._dtype_changed(dtype)
        self._dt = dtype

    def _forward(self, ctx, x):
        x = as_float_input(x, self._dt, self._where)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{self._where}: expected an (N, {self.num_channels}, ...) "
                f"input, got shape {x.shape}"
            )
        n, g = x.shape[0], self.num_groups
        inner = x.size // (n * self.num_channels) if n else 1
        D = self.num_channels // g * inner
        y = ctx.workspace("y", x.shape, x.dtype)
        mean = ctx.workspace("mean", (n * g,), x.dtype)
        invstd = ctx.workspace("invstd", (n * g,), x.dtype)
        w = self.weight.data if self.affine else None
        b = self.bias.data if self.affine else None
        _kernels.rownorm_forward(x, D, g, inner, w, b, self.eps, y, mean, invstd)
        ctx.x, ctx.mean, ctx.invstd, ctx.d, ctx.inner = x, mean, invstd, D, inner
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        x = ctx.x
        g = _check_grad(grad_out, x, self._where)
        gx = ctx.workspace("gx", x.shape, x.dtype)
        w, b = self.weight, self.bias
        _kernels.rownorm_backward(
            x,
            ctx.d,
            self.num_groups,
            ctx.inner,
            g,
            None if w is None else w.data,
            ctx.mean,
            ctx.invstd,
            gx,
            w.grad if w is not None and w.requires_grad else None,
            b.grad if b is not None and b.requires_grad else None,
        )
        return gx

    def get_config(self):
        return {
            "num_groups": self.num_groups,
            "num_channels": self.num_channels,
            "eps": self.eps,
            "affine": self.affine,
        }

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _WeightNormed:
    """Mixin placed in front of a layer's class by weight_norm(): the layer's `weight`
    becomes a value derived from `weight_g` and `weight_v` before every forward, and
    its gradient is turned into theirs after every backward."""

    def _own_parameters(self):
        for name, p in super()._own_parameters():
            if name != "weight":
                yield name, p

    def _dtype_changed(self, dtype):
        # `weight` is hidden from _own_parameters, so Module.astype does not convert it;
        # the kernels need it in the dtype of weight_v and weight_g.
        w = self.weight
        if w.dtype != dtype:
            w._rebind(w.data.astype(dtype), w.grad.astype(dtype))
        super()._dtype_changed(dtype)

    def _derive_weight(self):
        v, g, w = self.weight_v.data, self.weight_g.data, self.weight.data
        rows = v.shape[0] if self._wn_dim == 0 else 1
        norms = self._scratch_ws.get("wn_norms")
        if norms is None or norms.shape[0] != rows or norms.dtype != v.dtype:
            norms = self._scratch_ws["wn_norms"] = np.empty(rows, v.dtype)
        _kernels.weight_norm_forward(
            v.reshape(rows, -1), g.reshape(rows), w.reshape(rows, -1), norms
        )
        return norms

    def _forward(self, ctx, x, *args):
        ctx.wn_norms = self._derive_weight()
        return super()._forward(ctx, x, *args)

    def _weight_penalty(self, reg, grad):
        """A regularizer penalises the effective weight g v / |v| (derived afresh from
        g and v); its gradient reaches weight_g and weight_v by the chain rule (added
        to the derived weight's .grad it would be lost)."""
        v, g, w = self.weight_v, self.weight_g, self.weight
        norms = self._derive_weight()
        if not grad or not (v.requires_grad or g.requires_grad):
            return reg.value(w.data)
        gw = np.zeros_like(w.data)
        value = _kernels.penalty(w.data, gw, reg.l1, reg.l2)
        rows = norms.shape[0]
        _kernels.weight_norm_backward(
            v.data.reshape(rows, -1),
            g.data.reshape(rows),
            norms,
            gw.reshape(rows, -1),
            v.grad.reshape(rows, -1) if v.requires_grad else None,
            g.grad.reshape(rows) if g.requires_grad else None,
        )
        return value

    def _backward(self, ctx, grad_out, need_input_grad=True):
        w, v, g = self.weight, self.weight_v, self.weight_g
        w.grad.fill(0)
        w.requires_grad = v.requires_grad or g.requires_grad
        gx = super()._backward(ctx, grad_out, need_input_grad)
        rows = ctx.wn_norms.shape[0]
        _kernels.weight_norm_backward(
            v.data.reshape(rows, -1),
            g.data.reshape(rows),
            ctx.wn_norms,
            w.grad.reshape(rows, -1),
            v.grad.reshape(rows, -1) if v.requires_grad else None,
            g.grad.reshape(rows) if g.requires_grad else None,
        )
        return gx


def weight_norm(module, name="weight", dim=0):
    """Reparametrise module.weight as weight_g * weight_v / ||weight_v|| (Salimans &
    Kingma, 2016), in place, as torch.nn.utils.weight_norm: dim=0 takes the norm of
    each output row (weight_g of shape (out, 1, ...)), dim=None of the whole tensor.
    The trainable parameters become weight_g (initialised to the norms, so the layer
    computes what it did) and weight_v (the old weight); state_dict keys are
    '<name>_g' and '<name>_v'. Returns the module."""
    if name != "weight":
        raise ValueError(f"weight_norm: only the parameter 'weight' is supported, got {name!r}")
    weight = getattr(module, "weight", None)
    if not isinstance(weight, Parameter) or weight.data.ndim < 2:
        raise ValueError(f"weight_norm: {type(module).__name__} has no 2-D+ 'weight' parameter")
    if isinstance(module, _WeightNormed):
        raise ValueError("weight_norm: the module is already weight-normalised")
    if dim not in (0, None):
        raise ValueError(f"weight_norm: dim must be 0 or None, got {dim!r}")
    v = weight.data
    if dim == 0:
        g = np.sqrt((v.astype(np.float64) ** 2).reshape(v.shape[0], -1).sum(axis=1))
        g = g.reshape((v.shape[0],) + (1,) * (v.ndim - 1))
    else:
        g = np.array(np.sqrt((v.astype(np.float64) ** 2).sum()))
    module.weight_g = Parameter(g.astype(v.dtype), "weight_g", weight.requires_grad)
    module.weight_v = Parameter(v, "weight_v", weight.requires_grad)
    module._wn_dim = dim
    cls = type(module)
    module.__class__ = type(f"WeightNormed{cls.__name__}", (_WeightNormed, cls), {})
    return module


def remove_weight_norm(module):
    """Undo weight_norm: `weight` becomes an ordinary parameter again."""
    if not isinstance(module, _WeightNormed):
        raise ValueError("remove_weight_norm: the module is not weight-normalised")
    module._derive_weight()
    module.weight.requires_grad = module.weight_v.requires_grad
    module.__class__ = type(module).__mro__[2]
    del module.weight_g, module.weight_v, module._wn_dim
    return module


class Standardize(Layer):
    """A fixed per-feature standardisation y = (x - mean) / scale, from statistics
    fitted on training data (fastnn.preprocessing.Standardizer.as_layer()), or with
    inverse=True its inverse y = x * scale + mean. Put first, a saved model takes raw
    features; put last (inverse), a regression model answers in target units. `mean`
    and `scale` are buffers: saved and loaded with the model, never trained."""

    _buffers = ("mean", "scale")

    def __init__(self, num_features, inverse=False, dtype=np.float32, name=None):
        super().__init__(name=name)
        self.num_features = positive_int(num_features, "num_features")
        self.inverse = bool(inverse)
        dt = float_dtype(dtype)
        self.mean = np.zeros(self.num_features, dt)
        self.scale = np.ones(self.num_features, dt)
        self._where = f"Standardize({self.num_features})"

    def _forward(self, ctx, x):
        x = as_float_input(x, self.mean.dtype, self._where, features=self.num_features)
        y = ctx.workspace("y", x.shape, x.dtype)
        if self.inverse:
            np.multiply(x, self.scale, out=y)
            y += self.mean
        else:
            np.subtract(x, self.mean, out=y)
            y /= self.scale
        ctx.shape = x.shape
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = as_float_input(grad_out, self.mean.dtype, f"{self._where}.backward")
        if g.shape != ctx.shape:
            raise ValueError(
                f"{self._where}.backward: expected gradient of shape {ctx.shape}, got {g.shape}"
            )
        gx = ctx.workspace("gx", g.shape, g.dtype)
        (np.multiply if self.inverse else np.divide)(g, self.scale, out=gx)
        return gx

    def get_config(self):
        return {"num_features": self.num_features, "inverse": self.inverse}

    def extra_repr(self):
        return f"{self.num_features}" + (", inverse=True" if self.inverse else "")
