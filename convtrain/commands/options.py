"""Options and arguments shared by several commands."""

from __future__ import annotations

import click

SET_HELP = "Override a config value: dotted path, YAML value (repeatable), e.g. model.layers[0].filters=64."
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
config_arg = click.argument("config", type=click.Path(dir_okay=False))
run_arg = click.argument("run_dir", type=click.Path(file_okay=False))
