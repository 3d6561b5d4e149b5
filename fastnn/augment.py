"""Random image augmentation applied to each training batch:

    aug = fastnn.augment.Compose(
        fastnn.augment.RandomCrop(28, padding=2),
        fastnn.augment.RandomRotation(10),
        fastnn.augment.Cutout(8),
    )
    trainer.fit(X, y, augment=aug)

Every transform takes a batch (N, C, H, W) (or (N, H, W)) and returns a new array of
the same shape and dtype; each image gets its own random parameters, drawn from the
generator that `fastnn.seed` seeds, and the whole batch is transformed by vectorised
NumPy (no loop over images). `Trainer.fit(..., augment=...)` applies it to training
batches only, never to validation or test data.

Vertical flips are not in any default and only happen when RandomVerticalFlip is
asked for: for most images the vertical direction carries meaning (a 6 turned upside
down is a 9, a sky is above the ground), so a flipped image would teach the model a
wrong label. Horizontal flips suit natural images but not digits or text either; pick
transforms that keep the label true."""

import numpy as np

from . import rng
from .layers.spatial_dropout import cutout_mask
from .validation import as_array, positive_int, probability


def _as_batch(x, where):
    """(batch as (N, C, H, W), whether a channel axis was added)."""
    x = as_array(x, where)
    if x.ndim == 3:
        return x[:, None], True
    if x.ndim != 4:
        raise ValueError(
            f"{where}: expected a batch of images (N, C, H, W) or (N, H, W), got shape {x.shape}"
        )
    return x, False


class Transform:
    """A random transform of a batch of images; subclasses implement `_apply(x, gen)`
    on (N, C, H, W) and return a new array."""

    def __call__(self, x):
        batch, added = _as_batch(x, type(self).__name__)
        out = self._apply(batch, rng.generator())
        return out[:, 0] if added else out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """The transforms applied one after the other."""

    def __init__(self, *transforms):
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)):
            transforms = tuple(transforms[0])
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")
        self.transforms = list(transforms)

    def _apply(self, x, gen):
        for t in self.transforms:
            x = t._apply(x, gen) if isinstance(t, Transform) else t(x)
        return x


class _RandomFlip(Transform):
    _axis = -1

    def __init__(self, p=0.5):
        self.p = probability(p, f"{type(self).__name__} p", high_inclusive=True)

    def _apply(self, x, gen):
        out = np.array(x, copy=True)
        flip = gen.random(x.shape[0]) < self.p
        out[flip] = np.flip(x[flip], axis=self._axis)
        return out


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left-right with probability p."""


class RandomVerticalFlip(_RandomFlip):
    """Turn each image upside down with probability p. Off unless asked for: it changes
    what many images mean (a 6 becomes a 9)."""

    _axis = -2


class RandomCrop(Transform):
    """Pad each image with `padding` zeros on every side, then cut a size x size (or
    (h, w)) window at a uniformly random position: translations by whole pixels."""

    def __init__(self, size, padding=0):
        pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        self.size = tuple(positive_int(s, "RandomCrop size") for s in pair)
        if int(padding) != padding or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, got {padding!r}")
        self.padding = int(padding)

    def _apply(self, x, gen):
        n, _, h, w = x.shape
        p, (ch, cw) = self.padding, self.size
        if ch > h + 2 * p or cw > w + 2 * p:
            raise ValueError(
                f"RandomCrop: size {self.size} is larger than the padded image "
                f"{(h + 2 * p, w + 2 * p)}"
            )
        xp = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)])
        top = gen.integers(0, h + 2 * p - ch + 1, n)
        left = gen.integers(0, w + 2 * p - cw + 1, n)
        rows = (top[:, None] + np.arange(ch))[:, :, None]  # (n, ch, 1)
        cols = (left[:, None] + np.arange(cw))[:, None, :]  # (n, 1, cw)
        out = xp[np.arange(n)[:, None, None], :, rows, cols]  # (n, ch, cw, C)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def affine_warp(x, matrices, shifts):
    """Bilinear resampling of each image of x (N, C, H, W): output pixel (i, j) reads the
    input at centre + matrices[n] @ ((i, j) - centre) - shifts[n] (zeros outside).
    matrices: (N, 2, 2), shifts: (N, 2) in pixels (rows, columns)."""
    n, c, h, w = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    grid = np.stack([ii.ravel(), jj.ravel()])  # (2, H W)
    src = matrices @ grid - shifts[:, :, None]  # (N, 2, H W)
    sy, sx = src[:, 0] + cy, src[:, 1] + cx
    y0, x0 = np.floor(sy), np.floor(sx)
    flat = x.reshape(n, c, h * w)
    out = np.zeros((n, c, h * w), np.result_type(x.dtype, np.float32))
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            weight = (1 - np.abs(sy - yy)) * (1 - np.abs(sx - xx))
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            idx = (np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)).astype(np.intp)
            vals = np.take_along_axis(flat, np.broadcast_to(idx[:, None], (n, c, h * w)), 2)
            out += vals * (weight * inside)[:, None]
    return out.reshape(x.shape).astype(x.dtype, copy=False)


class RandomAffine(Transform):
    """Rotate by an angle uniform in [-degrees, degrees], scale by a factor uniform in
    `scale` (lo, hi) and translate by up to `translate` (fraction of height, fraction of
    width) about the image centre, with bilinear interpolation and zeros outside."""

    def __init__(self, degrees=0.0, translate=None, scale=None):
        self.degrees = float(degrees)
        if self.degrees < 0:
            raise ValueError(f"{type(self).__name__}: degrees must be >= 0, got {degrees!r}")
        if translate is not None:
            translate = tuple(float(t) for t in translate)
            if len(translate) != 2 or not all(0.0 <= t <= 1.0 for t in translate):
                raise ValueError(
                    f"{type(self).__name__}: translate must be two fractions in "
                    f"[0, 1], got {translate!r}"
                )
        if scale is not None:
            scale = tuple(float(s) for s in scale)
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise ValueError(
                    f"{type(self).__name__}: scale must be (lo, hi) with "
                    f"0 < lo <= hi, got {scale!r}"
                )
        self.translate, self.scale = translate, scale

    def _apply(self, x, gen):
        n, _, h, w = x.shape
        angle = np.deg2rad(gen.uniform(-self.degrees, self.degrees, n))
        zoom = gen.uniform(*self.scale, n) if self.scale else np.ones(n)
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        inverse = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1)
        shifts = np.zeros((n, 2))
        if self.translate:
            shifts = np.stack(
                [
                    gen.uniform(-1, 1, n) * self.translate[0] * h,
                    gen.uniform(-1, 1, n) * self.translate[1] * w,
                ],
                1,
            )
            shifts = np.rint(shifts)
        return affine_warp(x, inverse, np.einsum("nij,nj->ni", inverse, shifts))


class RandomRotation(RandomAffine):
    """Rotate each image by an angle uniform in [-degrees, degrees] (keep it small for
    digits: beyond ~20 degrees a 1 leans like a 7)."""

    def __init__(self, degrees):
        super().__init__(degrees=degrees)


class RandomTranslate(RandomAffine):
    """Shift each image by whole pixels, up to a fraction (rows, columns) of its size."""

    def __init__(self, translate):
        super().__init__(translate=translate)


class RandomZoom(RandomAffine):
    """Scale each image about its centre by a factor uniform in (lo, hi)."""

    def __init__(self, scale):
        super().__init__(scale=scale)


class Cutout(Transform):
    """Zero n_holes squares of side `size` per image (DeVries & Taylor, 2017), each
    centred uniformly over the image and clipped at its borders; all channels alike."""

    def __init__(self, size, n_holes=1):
        self.size = positive_int(size, "Cutout size")
        self.n_holes = positive_int(n_holes, "Cutout n_holes")

    def _apply(self, x, gen):
        n, _, h, w = x.shape
        cy = gen.integers(0, h, (n, self.n_holes))
        cx = gen.integers(0, w, (n, self.n_holes))
        return x * cutout_mask(n, h, w, self.size, cy, cx, x.dtype)
