"""`convtrain data preview`: a PNG grid of augmented training images, as the model sees them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from convtrain.config.load import load_config
from convtrain.config.schema import AugmentConfig
from convtrain.data.split import make_split
from convtrain.plots.grid import image_grid


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


def run_preview(
    config: str, overrides: Sequence[str] = (), out: str | None = None, count: int = 32
) -> Path:
    experiment = load_config(config, overrides)
    split = make_split(experiment)
    # TensorFlow is imported only now, so a config mistake is reported without its start-up.
    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    from convtrain.data.pipeline import make_datasets

    datasets = make_datasets(experiment, split)
    images, labels = [], []
    # Repeating shows new augmentations of the same images when the training set is small.
    for batch_images, batch_labels in datasets.train.repeat():
        images.append(batch_images.numpy())
        labels.extend(np.argmax(batch_labels.numpy(), axis=1).tolist())
        if len(labels) >= count:
            break
    grid = np.concatenate(images)[:count]
    titles = [split.classes[label] for label in labels[:count]]
    path = Path(out) if out else Path(f"preview-{experiment.name}.png")
    height, width = experiment.data.image_size
    title = (
        f"{experiment.name}: {count} training images, {height}x{width} "
        f"{experiment.data.color_mode}, {experiment.data.resize}\n"
        f"{describe_augment(experiment.augment)} (seed {experiment.seed})"
    )
    image_grid(grid, titles, path, title)  # a failed write is convtrain.io's one line
    click.echo(f"wrote {path} ({count} augmented training images)")
    return path
