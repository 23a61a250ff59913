"""`convtrain data fetch|info|preview`: get CALTECH-101, describe it, preview augmentation."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import click

from convtrain.commands.console import Console
from convtrain.commands.options import config_arg, set_option
from convtrain.config.load import load_config
from convtrain.config.schema import DataConfig
from convtrain.data.cache import recorded_failures
from convtrain.data.fetch import OFFICIAL, Reference, fetch_dataset
from convtrain.data.index import index_dataset
from convtrain.data.info import describe
from convtrain.data.preview import augmented_samples, preview_title
from convtrain.data.split import make_split
from convtrain.errors import ConvtrainError
from convtrain.tfquiet import import_tensorflow


@click.group()
def data() -> None:
    """Get CALTECH-101, describe it, preview augmentation."""


@data.command("fetch")
@click.option(
    "--source",
    default=None,
    help="URL, local .zip/.tar.gz, or an extracted 101_ObjectCategories/ folder (default: the official CaltechDATA archive).",
)
@click.option(
    "--data-dir", default="data/caltech-101", show_default=True, type=click.Path(file_okay=False)
)
def fetch(source: str | None, data_dir: str) -> None:
    """Download (resumable, verified) and safely extract CALTECH-101."""
    run_fetch(source, data_dir)


def run_fetch(source: str | None, data_dir: str | Path, reference: Reference = OFFICIAL) -> Path:
    fetched = fetch_dataset(source, data_dir, reference=reference, reporter=Console())
    if fetched.installed:
        click.echo(fetched.installed)
    return fetched.target


@data.command("info")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option(
    "--root",
    default=None,
    help="Dataset folder (default: the config's data.root, or CONVTRAIN_DATA_ROOT).",
)
def info(config: str | None, overrides: tuple[str, ...], root: str | None) -> None:
    """Classes, images per class, sizes, grayscale count, imbalance, skipped files."""
    if config is None and overrides:
        raise ConvtrainError(
            f"--set {overrides[0]}: expected a CONFIG to override (convtrain data info CONFIG "
            f"--set ...), received none"
        )
    data = load_config(config, overrides).data if config else DataConfig()
    index = index_dataset(data, root=Path(root) if root else None)
    width = shutil.get_terminal_size((100, 24)).columns
    click.echo(describe(index, data, recorded_failures(index.root, data), width))


@data.command("preview")
@config_arg
@set_option
@click.option("--out", default=None, help="PNG to write (default: preview-<name>.png).")
@click.option("--count", default=32, show_default=True, type=click.IntRange(1, 256))
def preview(config: str, overrides: tuple[str, ...], out: str | None, count: int) -> None:
    """Write a PNG grid of augmented training samples with their labels."""
    run_preview(config, overrides, out, count)


def run_preview(
    config: str, overrides: Sequence[str] = (), out: str | None = None, count: int = 32
) -> Path:
    experiment = load_config(config, overrides)
    split = make_split(experiment, Console())
    import_tensorflow()  # only now: a config or data mistake is reported without its start-up
    # matplotlib costs 0.7 s at import (measured): `data fetch` and `data info` never draw.
    from convtrain.plots.grid import image_grid

    images, titles = augmented_samples(experiment, split, count)
    path = Path(out) if out else Path(f"preview-{experiment.name}.png")
    image_grid(images, titles, path, preview_title(experiment, count))  # a failed write: one line
    click.echo(f"wrote {path} ({count} augmented training images)")
    return path
