"""SyncBatchNorm: batch normalisation over the global batch of data-parallel training.

Under `fastnn.distributed` every rank holds a shard of each global batch. BatchNorm1d
normalises each shard with its own statistics (as torch DistributedDataParallel does);
SyncBatchNorm all-reduces the per-channel sums so that every rank normalises with the
statistics of the whole global batch and the running statistics are those of one
process training on it. Without a distributed world it is BatchNorm1d."""

import numpy as np

from .. import _kernels
from .normalization import _BatchNorm, _check_grad


class SyncBatchNorm(_BatchNorm):
    """Batch norm of (N, C, *) input whose training statistics (and their gradients) are
    taken over the global batch across the ranks of fastnn.distributed (torch's
    nn.SyncBatchNorm). Arguments, parameters and buffers are BatchNorm1d's; outside data-
    parallel training it computes exactly what BatchNorm1d computes. Costs two all-
    reductions of 2 x C numbers in forward (mean, then variance: the two-pass formula
    keeps float32 data accurate) and one in backward."""

    _ndims = (2, 3, 4, 5)

    def _forward(self, ctx, x):
        from .. import distributed

        world = distributed.world()
        ctx.synced = self.training and world is not None
        if not ctx.synced:
            return super()._forward(ctx, x)
        x = self._check_input(x)
        c = self.num_features
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, c) + (1,) * (x.ndim - 2)
        local = np.empty(c + 1)
        local[:c] = x.sum(axis=axes, dtype=np.float64)
        local[c] = x.size // c
        total = world.allreduce_(local)
        count = total[c]
        if count < 2:
            raise ValueError(
                f"{self._where}: expected more than 1 value per channel in "
                f"the global batch, got {int(count)}"
            )
        mean64 = total[:c] / count
        sq = np.square(x - mean64.astype(x.dtype).reshape(bshape), dtype=np.float64)
        var64 = world.allreduce_(sq.sum(axis=axes)) / count
        mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
        y = ctx.workspace("y", x.shape, x.dtype)
        gamma, beta = self._affine()
        _kernels.bn_forward_eval(x, gamma, beta, mean, var, self.eps, y)
        if self.track_running_stats:
            factor = self._momentum_factor()
            self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean64
            self.running_var[...] = (1 - factor) * self.running_var + factor * var64 * count / (
                count - 1
            )
        ctx.x, ctx.mean, ctx.count, ctx.world = x, mean, count, world
        ctx.invstd = (1.0 / np.sqrt(var64 + self.eps)).astype(x.dtype)
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        if not ctx.synced:
            return super()._backward(ctx, grad_out, need_input_grad)
        x, world = ctx.x, ctx.world
        g = _check_grad(grad_out, x, self._where)
        c = self.num_features
        gx = ctx.workspace("gx", x.shape, x.dtype)
        # gx = gamma * invstd * g and the local sums of g and g * x_hat (batch_stats off)
        sums = self._scratch("sync_sums", (2, c), x.dtype)
        sums.fill(0)
        gamma = self._affine()[0]
        _kernels.bn_backward(
            False,
            x,
            g,
            gamma,
            ctx.mean,
            ctx.invstd,
            gx,
            sums[0],
            sums[1],
            self._colsum_scratch(2 * c),
        )
        gw, gb = self._param_grads()
        if gw is not None:
            gw += sums[0]
        if gb is not None:
            gb += sums[1]
        # Upstream gradients are of this rank's mean loss; the global loss weighs it by
        # the rank's share w of the global batch (distributed.World.batch_weight).
        w = world.batch_weight
        glob = world.allreduce_(w * sums.astype(np.float64).ravel()).reshape(2, c)
        k = (1.0 if gamma is None else gamma.astype(np.float64)) * ctx.invstd / (w * ctx.count)
        axes_shape = (1, c) + (1,) * (x.ndim - 2)
        xhat = (x - ctx.mean.reshape(axes_shape)) * ctx.invstd.reshape(axes_shape)
        gx -= (k * glob[0]).astype(x.dtype).reshape(axes_shape) * xhat + (k * glob[1]).astype(
            x.dtype
        ).reshape(axes_shape)
        return gx
