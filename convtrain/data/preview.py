"""Augmented training images as the model sees them (`convtrain data preview` draws them)."""

from __future__ import annotations

import numpy as np

from convtrain.config.schema import AugmentConfig, Experiment
from convtrain.data.split import Split


def describe_augment(cfg: AugmentConfig) -> str:
    """A short human summary, e.g. 'h-flip, rotation ±15°, zoom ±10%'."""
    parts = []
    if cfg.horizontal_flip:
        parts.append("h-flip")
    if cfg.vertical_flip:
        parts.append("v-flip")
    if cfg.rotation:
        parts.append(f"rotation \u00b1{cfg.rotation:g}\u00b0")
    for name in ("zoom", "width_shift", "height_shift", "brightness", "contrast"):
        value = getattr(cfg, name)
        if value:
            parts.append(f"{name.replace('_', ' ')} \u00b1{value:.0%}")
    if cfg.shear:
        parts.append(f"shear \u00b1{cfg.shear:g}")
    if cfg.random_crop:
        parts.append(f"random crop \u2264{cfg.random_crop:.0%}")
    if not parts:
        return "no augmentation"
    geometric = cfg.rotation or cfg.zoom or cfg.width_shift or cfg.height_shift or cfg.shear
    return ", ".join(parts) + (f"; fill {cfg.fill_mode}" if geometric else "")


def augmented_samples(
    experiment: Experiment, split: Split, count: int
) -> tuple[np.ndarray, list[str]]:
    """`count` augmented training images (float [N, H, W, C] in [0, 1]) and their class names."""
    # The pipeline imports TensorFlow (seconds of start-up): only once the caller needs it.
    from convtrain.data.pipeline import make_datasets

    datasets = make_datasets(experiment, split)
    images, labels = [], []
    # Repeating shows new augmentations of the same images when the training set is small.
    for batch_images, batch_labels in datasets.train.repeat():
        images.append(batch_images.numpy())
        labels.extend(np.argmax(batch_labels.numpy(), axis=1).tolist())
        if len(labels) >= count:
            break
    return np.concatenate(images)[:count], [split.classes[label] for label in labels[:count]]


def preview_title(experiment: Experiment, count: int) -> str:
    height, width = experiment.data.image_size
    return (
        f"{experiment.name}: {count} training images, {height}x{width} "
        f"{experiment.data.color_mode}, {experiment.data.resize}\n"
        f"{describe_augment(experiment.augment)} (seed {experiment.seed})"
    )
