"""Regularisers for convolutional networks, all the identity in eval mode:
Dropout1d/Dropout2d (SpatialDropout, Tompson et al., 2015: whole channels),
DropBlock2d (Ghiasi et al., 2018) and StochasticDepth (Huang et al., 2016) as
torchvision.ops defines them, and Cutout (DeVries & Taylor, 2017).

Every random draw comes from fastnn's counter-based generator (fastnn.rng): a mask is
a pure function of (seed, counter, index), the same for any thread count."""

import numpy as np

from .. import _kernels, rng
from ..module import Layer
from ..validation import as_float_input, choice, follow_dtype, positive_int, probability
from .conv import check_grad


def random_uniform(ctx, n):
    """n uniform draws in [0, 1) (float64, a workspace of ctx) from the next stream of
    the counter-based generator: 32-bit draw k divided by 2**32."""
    bits = ctx.workspace("bits", (n,), np.uint32)
    key, counter = rng.next_dropout_stream()
    _kernels.random_bits(key, counter, bits)
    u = ctx.workspace("uniform", (n,), np.float64)
    np.multiply(bits, 2.0**-32, out=u)
    return u


class _MaskLayer(Layer):
    """y = x * mask (mask broadcast over x) in training, the identity in eval mode;
    subclasses compute the mask from x's shape in `_mask(ctx, x)`."""

    def _checked(self, x):
        x = as_float_input(x, follow_dtype(x), self._where)
        if self._ndims and x.ndim not in self._ndims:
            want = " or ".join(f"{d}-D" for d in self._ndims)
            raise ValueError(f"{self._where}: expected a {want} input, got shape {x.shape}")
        return x

    def _forward(self, ctx, x):
        x = self._checked(x)
        ctx.shape, ctx.dtype = x.shape, x.dtype
        ctx.mask = self._mask(ctx, x) if self.training else None
        if ctx.mask is None:
            return x
        y = ctx.workspace("y", x.shape, x.dtype)
        np.multiply(x, ctx.mask, out=y)
        return y

    def _backward(self, ctx, grad_out, need_input_grad=True):
        g = check_grad(grad_out, ctx.shape, ctx.dtype, self._where)
        if not need_input_grad or ctx.mask is None:
            return g if need_input_grad else None
        gx = ctx.workspace("gx", g.shape, g.dtype)
        np.multiply(g, ctx.mask, out=gx)
        return gx


def _bernoulli_mask(ctx, shape, p, dtype):
    """keep / (1 - p) for Bernoulli(1 - p) keeps of `shape` (all zero for p = 1)."""
    n = int(np.prod(shape))
    mask = ctx.workspace("mask", (n,), dtype)
    if p >= 1.0:
        mask.fill(0)
    else:
        np.greater_equal(random_uniform(ctx, n), p, out=mask, casting="unsafe")
        mask *= 1.0 / (1.0 - p)
    return mask.reshape(shape)


class _ChannelDropout(_MaskLayer):
    """Zero whole channels: each (sample, channel) with probability p, survivors scaled
    by 1 / (1 - p)."""

    def __init__(self, p=0.5, inplace=False, name=None):
        super().__init__(name=name)
        self.p = probability(p, f"{type(self).__name__} p", high_inclusive=True)
        self._where = f"{type(self).__name__}(p={self.p})"

    def _mask(self, ctx, x):
        if self.p == 0.0:
            return None
        n, c = x.shape[:2]
        return _bernoulli_mask(ctx, (n, c) + (1,) * (x.ndim - 2), self.p, x.dtype)

    def get_config(self):
        return {"p": self.p}

    def extra_repr(self):
        return f"p={self.p}"


class Dropout1d(_ChannelDropout):
    """SpatialDropout for (N, C, L) input: each channel of each sample is zeroed with
    probability p in training (survivors scaled by 1 / (1 - p)), as torch.nn.Dropout1d."""

    _ndims = (3,)


class Dropout2d(_ChannelDropout):
    """SpatialDropout for (N, C, H, W) input: each feature map is zeroed with probability
    p in training (survivors scaled by 1 / (1 - p)), as torch.nn.Dropout2d. Neighbouring
    pixels are correlated, so dropping single pixels regularises little; whole maps do."""

    _ndims = (4,)


class DropBlock2d(_MaskLayer):
    """Drop contiguous block_size x block_size regions of each feature map (N, C, H, W),
    as torchvision.ops.DropBlock2d: block centres are drawn with probability
    gamma = p H W / (b^2 (H - b + 1) (W - b + 1)) over the positions where a whole block
    fits (b = min(block_size, H, W), which must be odd), grown into blocks, and the
    survivors scaled by numel / (eps + number kept) over the whole batch."""

    _ndims = (4,)

    def __init__(self, p, block_size, inplace=False, eps=1e-6, name=None):
        super().__init__(name=name)
        self.p = probability(p, "DropBlock2d p", high_inclusive=True)
        self.block_size = positive_int(block_size, "DropBlock2d block_size")
        self.eps = float(eps)
        self._where = f"DropBlock2d(p={self.p}, block_size={self.block_size})"

    def _mask(self, ctx, x):
        if self.p == 0.0:
            return None
        n, c, h, w = x.shape
        b = min(self.block_size, h, w)
        if b % 2 == 0:
            raise ValueError(
                f"{self._where}: the block size in use, min(block_size, H, W) = "
                f"{b}, must be odd (torchvision's masks do not fit even blocks)"
            )
        gamma = self.p * h * w / (b * b * (h - b + 1) * (w - b + 1))
        hn, wn = h - b + 1, w - b + 1
        r = b // 2
        seeds = ctx.workspace("seeds", (n, c, hn + 2 * r, wn + 2 * r), x.dtype)
        seeds.fill(0)
        u = random_uniform(ctx, n * c * hn * wn).reshape(n, c, hn, wn)
        np.less(u, gamma, out=seeds[:, :, r : r + hn, r : r + wn], casting="unsafe")
        # A position is dropped when a seed lies within the block around it: a max pool.
        mask = ctx.workspace("mask", x.shape, x.dtype)
        idx = ctx.workspace("idx", x.shape, np.int32)
        _kernels.maxpool_forward(seeds, mask, idx, (b, b), (1, 1), (r, r), (1, 1), False)
        np.subtract(1, mask, out=mask)
        mask *= mask.size / (self.eps + mask.sum())
        return mask

    def get_config(self):
        return {"p": self.p, "block_size": self.block_size, "eps": self.eps}

    def extra_repr(self):
        return f"p={self.p}, block_size={self.block_size}"


class StochasticDepth(_MaskLayer):
    """Randomly drop a residual branch, as torchvision.ops.StochasticDepth: in training
    the input is multiplied by Bernoulli(1 - p) / (1 - p), drawn per sample
    (mode='row') or once for the batch (mode='batch'). Put it at the end of the branch
    of a Residual block."""

    _ndims = ()

    def __init__(self, p, mode="row", name=None):
        super().__init__(name=name)
        self.p = probability(p, "StochasticDepth p", high_inclusive=True)
        self.mode = choice(mode, {"row", "batch"}, "StochasticDepth mode")
        self._where = f"StochasticDepth(p={self.p}, mode={self.mode!r})"

    def _mask(self, ctx, x):
        if self.p == 0.0:
            return None
        lead = x.shape[0] if self.mode == "row" else 1
        return _bernoulli_mask(ctx, (lead,) + (1,) * (x.ndim - 1), self.p, x.dtype)

    def get_config(self):
        return {"p": self.p, "mode": self.mode}

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode!r}"


def cutout_mask(n, h, w, size, cy, cx, dtype=np.float32):
    """(n, 1, h, w) mask, 0 inside the size x size square centred at (cy[i], cx[i]) of
    each image (clipped at the borders), 1 elsewhere; cy and cx have shape (n, holes)."""
    top = cy - size // 2
    left = cx - size // 2
    rows = np.arange(h)[None, None, :]
    cols = np.arange(w)[None, None, :]
    in_rows = (rows >= top[..., None]) & (rows < top[..., None] + size)  # (n, holes, h)
    in_cols = (cols >= left[..., None]) & (cols < left[..., None] + size)
    hole = np.einsum("nkh,nkw->nhw", in_rows.astype(np.uint8), in_cols.astype(np.uint8))
    return (hole == 0).astype(dtype).reshape(n, 1, h, w)


class Cutout(_MaskLayer):
    """Cutout (DeVries & Taylor, 2017): in training, zero n_holes squares of side `size`
    in every image of (N, C, H, W) input, the same squares in all channels, each centred
    uniformly over the image (so part of a square may fall outside). Survivors are not
    rescaled, as in the paper. As data augmentation see fastnn.augment.Cutout."""

    _ndims = (4,)

    def __init__(self, size, n_holes=1, name=None):
        super().__init__(name=name)
        self.size = positive_int(size, "Cutout size")
        self.n_holes = positive_int(n_holes, "Cutout n_holes")
        self._where = f"Cutout(size={self.size})"

    def _mask(self, ctx, x):
        n, _, h, w = x.shape
        u = random_uniform(ctx, 2 * n * self.n_holes).reshape(2, n, self.n_holes)
        cy, cx = (u[0] * h).astype(np.int64), (u[1] * w).astype(np.int64)
        return cutout_mask(n, h, w, self.size, cy, cx, x.dtype)

    def get_config(self):
        return {"size": self.size, "n_holes": self.n_holes}

    def extra_repr(self):
        return f"size={self.size}, n_holes={self.n_holes}"
