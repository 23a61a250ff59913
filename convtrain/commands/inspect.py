"""`convtrain inspect CONFIG`: the model's layers, shapes, parameters and costs, without TensorFlow."""

from __future__ import annotations

import click

from convtrain.commands.options import config_arg, set_option


@click.command()
@config_arg
@set_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--classes",
    "num_classes",
    type=int,
    default=None,
    help="Number of classes for the head (default: from data.classes, or the dataset).",
)
def inspect(config: str, overrides: tuple[str, ...], fmt: str, num_classes: int | None) -> None:
    """Per layer: output shape, parameters, multiply-accumulates, receptive field, jump."""
    from convtrain.model.inspect import run_inspect

    run_inspect(config, overrides, fmt=fmt, num_classes=num_classes)
