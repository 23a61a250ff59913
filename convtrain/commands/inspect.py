"""`convtrain inspect CONFIG`: the model's layers, shapes, parameters and costs, without TensorFlow."""

from __future__ import annotations

import json

import click

from convtrain.commands.options import config_arg, set_option
from convtrain.config.load import load_config
from convtrain.errors import ConfigError
from convtrain.model.inspect import format_table, report
from convtrain.model.plan import resolve_classes


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
    experiment = load_config(config, overrides)
    classes, note = resolve_classes(experiment, num_classes)
    try:
        data = report(experiment, classes, note)  # plans the model once
    except ConfigError as exc:  # the layer stack's problems are the config file's
        raise ConfigError(exc.problems, source=config) from None
    click.echo(json.dumps(data, indent=2) if fmt == "json" else format_table(data))
