"""fastnn.augment: each transform against a direct per-image NumPy computation from the
same random draws, seeding, shapes, and Trainer.fit(augment=...) on training batches
only."""

import numpy as np
import pytest

import fastnn
from fastnn import augment


def images(n=6, c=2, h=7, w=9, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def draws(seed, fn):
    """The values fn(generator) draws after fastnn.seed(seed)."""
    fastnn.seed(seed)
    return fn(fastnn.rng.generator())


def test_horizontal_flip_matches_per_image_flip():
    x = images()
    fastnn.seed(1)
    y = augment.RandomHorizontalFlip(0.5)(x)
    flip = draws(1, lambda g: g.random(6) < 0.5)
    assert 0 < flip.sum() < 6
    for i in range(6):
        np.testing.assert_array_equal(y[i], x[i, :, :, ::-1] if flip[i] else x[i])


def test_vertical_flip_only_when_asked():
    x = images()
    y = augment.RandomVerticalFlip(1.0)(x)
    np.testing.assert_array_equal(y, x[:, :, ::-1])
    for t in (augment.RandomHorizontalFlip(1.0), augment.RandomCrop(7, padding=0)):
        assert not np.array_equal(t(x)[:, :, ::-1], x) or np.array_equal(x, x[:, :, ::-1])


def test_random_crop_matches_per_image_window():
    x = images()
    fastnn.seed(2)
    y = augment.RandomCrop((5, 6), padding=2)(x)
    top, left = draws(2, lambda g: (g.integers(0, 7, 6), g.integers(0, 8, 6)))
    xp = np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)])
    for i in range(6):
        np.testing.assert_array_equal(y[i], xp[i, :, top[i] : top[i] + 5, left[i] : left[i] + 6])


def test_translate_by_whole_pixels():
    x = images(n=20)
    fastnn.seed(3)
    y = augment.RandomTranslate((0.3, 0.3))(x)
    fastnn.seed(3)
    g = fastnn.rng.generator()
    g.uniform(0, 0, 20)  # the angle draw (degrees=0)
    dy = np.rint(g.uniform(-1, 1, 20) * 0.3 * 7).astype(int)
    dx = np.rint(g.uniform(-1, 1, 20) * 0.3 * 9).astype(int)
    for i in range(20):
        expect = np.zeros_like(x[i])
        src = x[i][:, max(-dy[i], 0) : 7 - max(dy[i], 0), max(-dx[i], 0) : 9 - max(dx[i], 0)]
        expect[
            :,
            max(dy[i], 0) : max(dy[i], 0) + src.shape[1],
            max(dx[i], 0) : max(dx[i], 0) + src.shape[2],
        ] = src
        np.testing.assert_allclose(y[i], expect, atol=1e-6)


def test_rotation_by_90_degrees_is_exact_on_square_images():
    x = images(h=8, w=8)
    t = augment.RandomAffine(degrees=0)
    t.degrees = 90.0
    fastnn.seed(4)
    g = fastnn.rng.generator()
    angle = g.uniform(-90, 90, 6)
    fastnn.seed(4)
    y = t(x)
    # Check the sampling formula on each image: output (i, j) reads the input at the
    # rotated position (bilinear), against a direct per-pixel loop.
    for n in range(6):
        a = np.deg2rad(angle[n])
        c, s = np.cos(a), np.sin(a)
        for i in range(8):
            for j in range(8):
                sy = c * (i - 3.5) + s * (j - 3.5) + 3.5
                sx = -s * (i - 3.5) + c * (j - 3.5) + 3.5
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                v = 0.0
                for yy in (y0, y0 + 1):
                    for xx in (x0, x0 + 1):
                        if 0 <= yy < 8 and 0 <= xx < 8:
                            v = v + (1 - abs(sy - yy)) * (1 - abs(sx - xx)) * x[n, :, yy, xx]
                np.testing.assert_allclose(y[n, :, i, j], v, rtol=1e-5, atol=1e-5)


def test_zoom_keeps_the_centre_and_identity_at_scale_one():
    x = images()
    np.testing.assert_allclose(augment.RandomZoom((1.0, 1.0))(x), x, atol=1e-6)
    y = augment.RandomZoom((2.0, 2.0))(np.ones((1, 1, 9, 9), np.float32))
    np.testing.assert_allclose(y, 1.0, atol=1e-6)  # zooming in never reads outside


def test_cutout_zeroes_a_square():
    x = np.ones((30, 3, 10, 10), np.float32)
    y = augment.Cutout(4)(x)
    holes = (y == 0).all(axis=1)
    assert (holes.sum(axis=(1, 2)) <= 16).all() and holes.sum() > 0


def test_seeded_and_shape_preserving():
    aug = augment.Compose(
        augment.RandomCrop(9, padding=1),
        augment.RandomRotation(10),
        augment.RandomHorizontalFlip(),
        augment.Cutout(3),
    )
    x = images(h=9, w=9)
    fastnn.seed(7)
    a = aug(x)
    fastnn.seed(7)
    np.testing.assert_array_equal(aug(x), a)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert aug(x[:, 0]).shape == x[:, 0].shape  # (N, H, W) batches too


@pytest.mark.parametrize(
    "make,err",
    [
        (lambda: augment.RandomCrop(5, padding=-1), ValueError),
        (lambda: augment.RandomAffine(scale=(1.2, 0.8)), ValueError),
        (lambda: augment.RandomAffine(translate=(0.1,)), ValueError),
        (lambda: augment.RandomHorizontalFlip(1.5), ValueError),
        (lambda: augment.Compose(3), TypeError),
    ],
)
def test_bad_arguments(make, err):
    with pytest.raises(err):
        make()


def test_bad_batch_shape():
    with pytest.raises(ValueError, match="RandomHorizontalFlip: expected a batch of images"):
        augment.RandomHorizontalFlip()(np.zeros((3, 4)))


def test_fit_augments_training_batches_only():
    seen = []

    def record(xb):
        seen.append(xb.copy())
        return xb + 1.0

    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.layers.Flatten(), fastnn.layers.Dense(4, 2))
    trainer = fastnn.Trainer(
        model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.SGD(model.parameters(), lr=0.1)
    )
    X = np.zeros((8, 1, 2, 2), np.float32)
    y = np.arange(8) % 2
    trainer.fit(X, y, epochs=1, batch_size=4, augment=record, verbose=0, validation_data=(X, y))
    assert len(seen) == 2  # two training batches; validation is not augmented
    with pytest.raises(TypeError, match="augment must be callable"):
        trainer.fit(X, y, epochs=2, augment="flip", verbose=0)
