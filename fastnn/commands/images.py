"""The image side of `fastnn train`: a small CNN for (N, C, H, W) data and the
per-channel standardisation that goes with it."""

import numpy as np

from .common import CommandError


class ChannelScaler:
    """Standardise images per channel with the mean and standard deviation of the
    training pixels (the API of preprocessing.Standardizer, for (N, C, H, W) arrays)."""

    def fit(self, X):
        self.mean = X.mean(axis=(0, 2, 3))
        std = X.std(axis=(0, 2, 3))
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _shaped(self, v):
        return v.reshape(1, -1, 1, 1)

    def transform(self, X):
        return (X - self._shaped(self.mean)) / self._shaped(self.std)

    def inverse_transform(self, X):
        return X * self._shaped(self.std) + self._shaped(self.mean)

    def as_layer(self):
        """A depthwise 1x1 convolution computing the transform, to put first in a saved
        model so that it takes raw images."""
        from fastnn.layers import Conv2d

        c = self.mean.shape[0]
        layer = Conv2d(c, c, 1, groups=c)
        layer.weight.data = (1.0 / self.std).reshape(c, 1, 1, 1)
        layer.bias.data = -self.mean / self.std
        return layer


def as_images(X, arch, source):
    """X as (N, C, H, W) for the CNN: image batches as they are (a channel axis added to
    (N, H, W)), and the embedded digits' 64 columns as 8x8 images."""
    if X.ndim == 4:
        return X
    if X.ndim == 3:
        return X[:, None]
    side = int(round(np.sqrt(X.shape[1])))
    if side * side == X.shape[1] and source.startswith("embedded"):
        return X.reshape(-1, 1, side, side)
    raise CommandError(
        f"--arch {arch} needs images: an NPZ file with X of shape (N, C, H, W) "
        f"or (N, H, W); {source} has X of shape {X.shape}"
    )


def small_cnn(fastnn, shape, n_out, args):
    """Two stages of 3x3 convolution (32 and 64 channels), batch norm, ReLU and 2x2 max
    pooling (the pooling skipped where the image is already smaller than 4 pixels), then
    dropout and a dense layer of 128 units."""
    L = fastnn.layers
    layers, c, (h, w) = [], shape[0], shape[1:]
    for width in (32, 64):
        layers += [L.Conv2d(c, width, 3, padding=1, bias=False), L.BatchNorm2d(width), L.ReLU()]
        if min(h, w) >= 4:
            layers.append(L.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = width
    layers += [L.Flatten()]
    if args.dropout > 0:
        layers.append(L.Dropout(args.dropout))
    layers += [L.Dense(c * h * w, 128), L.ReLU(), L.Dense(128, n_out)]
    return fastnn.Sequential(*layers)
