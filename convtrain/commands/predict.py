"""`convtrain predict RUN_DIR IMAGE...`: the top-k classes of a few images."""

from __future__ import annotations

import click

from convtrain.commands.options import run_arg
from convtrain.rundir import RunDir
from convtrain.tfquiet import import_tensorflow


@click.command()
@run_arg
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True
)
def predict(run_dir: str, images: tuple[str, ...], top_k: int, fmt: str, checkpoint: str) -> None:
    """Top-k classes with probabilities for each image, with the run's own preprocessing."""
    run = RunDir.open(run_dir, need=("config", "split", "checkpoint"))
    import_tensorflow()
    # Prediction loads a Keras model: TensorFlow's import (about 5 s, measured) only from here.
    from convtrain.evaluate.predict import FORMATS, predict_images

    click.echo(FORMATS[fmt](predict_images(run, images, top_k, checkpoint)))
