from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from convtrain.config.schema import AugmentConfig
from convtrain.data.augment import augment_batch


def _batch(n: int = 16, size: int = 9, channels: int = 3) -> tf.Tensor:
    rng = np.random.default_rng(0)
    return tf.constant(rng.uniform(0.1, 0.9, (n, size, size, channels)), tf.float32)


def _run(images: tf.Tensor, seed: tuple[int, int], **cfg) -> np.ndarray:
    return augment_batch(images, tf.constant(seed, tf.int64), AugmentConfig(**cfg)).numpy()


def test_same_seed_same_output_other_seed_differs() -> None:
    cfg = {"horizontal_flip": True, "rotation": 30, "zoom": 0.2, "shear": 0.2, "contrast": 0.3}
    images = _batch()
    a = _run(images, (1, 2), **cfg)
    np.testing.assert_array_equal(a, _run(images, (1, 2), **cfg))
    assert not np.allclose(a, _run(images, (1, 3), **cfg))
    assert a.shape == images.shape and a.min() >= 0.0 and a.max() <= 1.0


def test_disabled_augmentation_is_the_identity() -> None:
    images = _batch()
    np.testing.assert_array_equal(_run(images, (0, 0)), images.numpy())


def test_horizontal_flip_flips_about_half_of_the_images() -> None:
    images = _batch().numpy()
    out = _run(tf.constant(images), (4, 2), horizontal_flip=True)
    flipped = [np.allclose(o, i[:, ::-1], atol=1e-5) for o, i in zip(out, images, strict=True)]
    kept = [np.allclose(o, i, atol=1e-5) for o, i in zip(out, images, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image one or the other
    assert 0 < sum(flipped) < len(images)


def test_rotation_turns_about_the_centre() -> None:
    images = _batch(size=9)
    out = _run(images, (3, 3), rotation=90, fill_mode="constant")
    # The centre pixel maps onto itself under any rotation about the image centre.
    np.testing.assert_allclose(out[:, 4, 4], images.numpy()[:, 4, 4], atol=1e-5)
    assert not np.allclose(out, images.numpy())


def test_brightness_shifts_each_image_by_one_amount() -> None:
    images = tf.fill([8, 6, 6, 1], 0.5)  # grayscale, far from the clipping bounds
    out = _run(images, (5, 1), brightness=0.2) - 0.5
    per_image = out.reshape(8, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(36, axis=1), atol=1e-6)
    assert np.abs(per_image).max() <= 0.2 and len(np.unique(per_image[:, 0].round(5))) == 8


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap", "constant"])
def test_fill_modes_and_random_crop(fill_mode: str) -> None:
    out = _run(
        _batch(channels=1),
        (9, 9),
        random_crop=0.3,
        width_shift=0.2,
        height_shift=0.2,
        fill_mode=fill_mode,
    )
    assert out.shape == (16, 9, 9, 1) and np.isfinite(out).all()
