"""Batch Renormalization (Ioffe, 2017): batch norm whose training output is corrected
towards the running statistics, so training and inference compute the same function.

In training, with the batch statistics mu_B, sigma_B = sqrt(var_B + eps) and the
running ones mu, sigma = sqrt(running_var + eps) (before this batch updates them):

    r = clip(sigma_B / sigma, 1/rmax, rmax)        d = clip((mu_B - mu) / sigma, -dmax, dmax)
    x_hat = (x - mu_B) / sigma_B * r + d          y = weight * x_hat + bias

r and d are constants to the gradient (the paper's stop_gradient). With r = 1, d = 0 this
is batch norm; in evaluation it is batch norm with the running statistics.

The forward and backward are the batch-norm kernels with the affine parameters
weight * r and bias + weight * d, which is exactly the layer above:
y = x_hat_BN * (weight * r) + (bias + weight * d), dL/dweight = r * sum(g * x_hat_BN)
+ d * sum(g), dL/dbias = sum(g), and the input gradient is batch norm's with weight * r.
"""

from __future__ import annotations

import numpy as np

from .. import _kernels
from .normalization import _BatchNorm, _check_grad


def _ramp(step, begin, end, start_value, end_value):
    """start_value until `begin`, linear to end_value at `end`, then end_value."""
    if step <= begin:
        return start_value if end > begin else end_value
    if step >= end:
        return end_value
    return start_value + (end_value - start_value) * (step - begin) / (end - begin)


def _check_ramp(ramp, where):
    try:
        begin, end = (int(v) for v in ramp)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a pair (begin_step, end_step), got {ramp!r}") from None
    if not 0 <= begin <= end:
        raise ValueError(f"{where}: expected 0 <= begin_step <= end_step, got {ramp!r}")
    return begin, end


def renorm_factors(batch_mean, batch_invstd, running_mean, running_var, eps, rmax, dmax):
    """(r, d) of Batch Renormalization, per channel, in float64: batch statistics given as
    mean and 1/sqrt(var_B + eps), running statistics as mean and variance."""
    sigma = np.sqrt(running_var.astype(np.float64) + eps)
    r = np.clip(1.0 / (batch_invstd.astype(np.float64) * sigma), 1.0 / rmax, rmax)
    d = np.clip((batch_mean.astype(np.float64) - running_mean) / sigma, -dmax, dmax)
    return r, d


def renorm_forward_train(
    x, gamma, beta, eps, momentum, running_mean, running_var, rmax, dmax, y, mean, invstd, scratch
):
    """Training forward of Batch Renormalization into y (shape of x), updating the running
    statistics in place with `momentum` as batch norm does; the batch mean and
    1/sqrt(var_B + eps) go to mean and invstd (C each). gamma/beta None: no affine.
    Returns (scale, r, d): scale = gamma * r in x's dtype is batch norm's weight for
    the backward, r and d (float64) the corrections."""
    c = x.shape[1]
    old_mean, old_var = running_mean.copy(), running_var.copy()
    _kernels.bn_forward_train(
        x, None, None, eps, momentum, running_mean, running_var, y, mean, invstd, scratch
    )
    r, d = renorm_factors(mean, invstd, old_mean, old_var, eps, rmax, dmax)
    g = np.ones(c) if gamma is None else gamma.astype(np.float64)
    scale = (g * r).astype(x.dtype)
    shift = g * d + (0.0 if beta is None else beta)
    bshape = (1, c) + (1,) * (x.ndim - 2)
    np.multiply(y, scale.reshape(bshape), out=y)
    np.add(y, shift.astype(x.dtype).reshape(bshape), out=y)
    return scale, r, d


def renorm_backward(x, grad_out, scale, r, d, mean, invstd, gx, gweight, gbias, sums, scratch):
    """Backward of renorm_forward_train: the input gradient into gx; the weight and bias
    gradients ADDED into gweight/gbias (None: not wanted). sums is (2, C) scratch of x's
    dtype for sum(g * x_hat_BN) and sum(g)."""
    sums.fill(0)
    _kernels.bn_backward(True, x, grad_out, scale, mean, invstd, gx, sums[0], sums[1], scratch)
    if gweight is not None:
        gweight += (r * sums[0] + d * sums[1]).astype(x.dtype)
    if gbias is not None:
        gbias += sums[1]


class BatchRenorm1d(_BatchNorm):
    """Batch Renormalization of (N, C) or (N, C, L) input, each channel over N (and L).

    rmax (>= 1) and dmax (>= 0) bound the corrections r and d. Their schedules follow the
    paper's recipe: `rmax_ramp=(begin, end)` keeps rmax at 1 for the first `begin`
    training batches, then raises it linearly to `rmax` at batch `end` (likewise
    `dmax_ramp` from 0 to `dmax`); the default (0, 0) applies rmax and dmax from the first
    batch. The paper used rmax=3, dmax=5, rmax_ramp=(5000, 40000), dmax_ramp=(5000, 25000).
    The batch count is the buffer num_batches_tracked, so schedules resume with a
    checkpoint. `clipping()` gives the (rmax, dmax) in force for the next batch.

    Running statistics, buffers, parameters and evaluation are BatchNorm1d's (running
    mean and unbiased variance with `momentum`; sigma = sqrt(running_var + eps)); running
    statistics are required (the corrections are taken against them).
    """

    _ndims = (2, 3)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.01,
        affine: bool = True,
        rmax: float = 3.0,
        dmax: float = 5.0,
        rmax_ramp: tuple[int, int] = (0, 0),
        dmax_ramp: tuple[int, int] = (0, 0),
        dtype=np.float32,
        name: str | None = None,
    ):
        super().__init__(num_features, eps, momentum, affine, True, dtype, name=name)
        rmax, dmax = float(rmax), float(dmax)
        if not 1.0 <= rmax < np.inf:
            raise ValueError(f"{self._where}: rmax must be a finite number >= 1, got {rmax}")
        if not 0.0 <= dmax < np.inf:
            raise ValueError(f"{self._where}: dmax must be a finite number >= 0, got {dmax}")
        self.rmax, self.dmax = rmax, dmax
        self.rmax_ramp = _check_ramp(rmax_ramp, f"{self._where}: rmax_ramp")
        self.dmax_ramp = _check_ramp(dmax_ramp, f"{self._where}: dmax_ramp")

    def clipping(self) -> tuple[float, float]:
        """(rmax, dmax) for the next training batch under the schedules."""
        t = int(self.num_batches_tracked)
        (r0, r1), (d0, d1) = self.rmax_ramp, self.dmax_ramp
        return _ramp(t, r0, r1, 1.0, self.rmax), _ramp(t, d0, d1, 0.0, self.dmax)

    def _forward(self, ctx, x):
        ctx.renorm = self.training
        if not self.training:
            return super()._forward(ctx, x)
        x = self._check_input(x)
        self._check_batch(x)
        c = self.num_features
        y = ctx.workspace("y", x.shape, x.dtype)
        mean = ctx.workspace("mean", (1, c), x.dtype)[0]
        invstd = ctx.workspace("invstd", (1, c), x.dtype)[0]
        rmax, dmax = self.clipping()
        gamma, beta = self._affine()
        ctx.scale, ctx.r, ctx.d = renorm_forward_train(
            x,
            gamma,
            beta,
            self.eps,
            self._momentum_factor(),
            self.running_mean,
            self.running_var,
            rmax,
            dmax,
            y,
            mean,
            invstd,
            self._colsum_scratch(2 * c),
        )
        ctx.x, ctx.mean, ctx.invstd = x, mean, invstd
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        if not ctx.renorm:
            return super()._backward(ctx, grad_out, need_input_grad)
        x = ctx.x
        g = _check_grad(grad_out, x, self._where)
        gx = ctx.workspace("gx", x.shape, x.dtype)
        gw, gb = self._param_grads()
        c = self.num_features
        renorm_backward(
            x,
            g,
            ctx.scale,
            ctx.r,
            ctx.d,
            ctx.mean,
            ctx.invstd,
            gx,
            gw,
            gb,
            self._scratch("renorm_sums", (2, c), x.dtype),
            self._colsum_scratch(2 * c),
        )
        return gx

    def get_config(self):
        config = super().get_config()
        del config["track_running_stats"]
        config.update(
            rmax=self.rmax,
            dmax=self.dmax,
            rmax_ramp=list(self.rmax_ramp),
            dmax_ramp=list(self.dmax_ramp),
        )
        return config

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, rmax={self.rmax}, dmax={self.dmax}, "
            f"rmax_ramp={self.rmax_ramp}, dmax_ramp={self.dmax_ramp}"
        )
