"""`convtrain data fetch|info|preview`: get CALTECH-101, describe it, preview augmentation."""

from __future__ import annotations

import click

from convtrain.commands.options import config_arg, set_option


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
    from convtrain.data.fetch import run_fetch

    run_fetch(source=source, data_dir=data_dir)


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
    from convtrain.data.info import run_info

    run_info(config, overrides, root=root)


@data.command("preview")
@config_arg
@set_option
@click.option("--out", default=None, help="PNG to write (default: preview-<name>.png).")
@click.option("--count", default=32, show_default=True, type=click.IntRange(1, 256))
def preview(config: str, overrides: tuple[str, ...], out: str | None, count: int) -> None:
    """Write a PNG grid of augmented training samples with their labels."""
    from convtrain.data.preview import run_preview

    run_preview(config, overrides, out=out, count=count)
