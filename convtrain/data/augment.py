"""Random augmentation of a training batch, inside the tf.data pipeline.

Flips, rotation, zoom, shifts, shear and random crop are composed into one affine matrix per
image and applied by a single ImageProjectiveTransformV3 call for the whole batch (one
interpolation, fast on CPU); brightness and contrast follow. Every random draw is a stateless
op seeded by the batch's seed, so a pipeline with the same seed yields the same batches.
"""

from __future__ import annotations

import math

import tensorflow as tf

from convtrain.config.schema import AugmentConfig

_GEOMETRIC = (
    "horizontal_flip",
    "vertical_flip",
    "rotation",
    "zoom",
    "width_shift",
    "height_shift",
    "shear",
    "random_crop",
)


def _affine(images: tf.Tensor, seeds: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]

    def uniform(i: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([batch], seeds[i], low, high)

    def flip(i: int, on: bool) -> tf.Tensor:
        return tf.where(uniform(i, 0.0, 1.0) < 0.5, -1.0, 1.0) if on else tf.ones([batch])

    # The transform maps each OUTPUT pixel to the INPUT point it samples:
    #   in = centre + shift + L (out - centre),  L = rotation . shear . scale . flip
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    theta = uniform(0, -cfg.rotation, cfg.rotation) * (math.pi / 180.0)
    zoom = uniform(1, 1.0 - cfg.zoom, 1.0 + cfg.zoom)
    crop = 1.0 - uniform(2, 0.0, cfg.random_crop)  # side of the crop window, as a fraction
    shear = uniform(3, -cfg.shear, cfg.shear)
    sx = zoom * crop * flip(4, cfg.horizontal_flip)
    sy = zoom * crop * flip(5, cfg.vertical_flip)
    # The crop window moves anywhere inside the image; shifts are fractions of the size.
    tx = (
        uniform(6, -1.0, 1.0) * (1.0 - crop) * cx
        + uniform(7, -cfg.width_shift, cfg.width_shift) * width
    )
    ty = (
        uniform(8, -1.0, 1.0) * (1.0 - crop) * cy
        + uniform(9, -cfg.height_shift, cfg.height_shift) * height
    )
    cos, sin = tf.cos(theta), tf.sin(theta)
    a0, a1 = cos * sx, (cos * shear - sin) * sy
    b0, b1 = sin * sx, (sin * shear + cos) * sy
    a2 = cx + tx - (a0 * cx + a1 * cy)
    b2 = cy + ty - (b0 * cx + b1 * cy)
    zeros = tf.zeros([batch])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=cfg.fill_mode.upper(),
    )


def augment_batch(images: tf.Tensor, seed: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """images: float32 [B, H, W, C] in [0, 1]; seed: int64 [2]. Returns the same shape, in [0, 1]."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=12)
    if any(getattr(cfg, name) for name in _GEOMETRIC):
        images = _affine(images, seeds, cfg)
    batch = tf.shape(images)[0]
    if cfg.brightness:
        delta = tf.random.stateless_uniform(
            [batch, 1, 1, 1], seeds[10], -cfg.brightness, cfg.brightness
        )
        images = images + delta
    if cfg.contrast:
        factor = tf.random.stateless_uniform(
            [batch, 1, 1, 1], seeds[11], 1.0 - cfg.contrast, 1.0 + cfg.contrast
        )
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        images = (images - mean) * factor + mean
    return tf.clip_by_value(images, 0.0, 1.0)
