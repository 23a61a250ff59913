"""`convtrain predict RUN_DIR IMAGE...`: the top-k classes of a few images."""

from __future__ import annotations

import click

from convtrain.commands.options import run_arg
from convtrain.config.load import load_config
from convtrain.data.decode import decode_images
from convtrain.data.split import Split
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
    experiment = load_config(run.config)
    classes = run.read(Split).classes
    # Every image is decoded before TensorFlow starts: a bad file fails fast, nothing printed.
    pixels = decode_images(images, experiment.data)
    import_tensorflow()
    # Prediction loads a Keras model: TensorFlow's import (about 5 s, measured) only from here.
    from convtrain.evaluate.predict import FORMATS
    from convtrain.evaluate.predict import predict as ranked

    click.echo(FORMATS[fmt](ranked(run, experiment, classes, images, pixels, top_k, checkpoint)))
