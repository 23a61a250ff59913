"""`convtrain schema`: the JSON Schema of a config, for editors (docs/config.md)."""

from __future__ import annotations

import click

from convtrain.config.jsonschema import schema_text


@click.command()
def schema() -> None:
    """Print the JSON Schema of a config, for editors (see docs/config.md)."""
    click.echo(schema_text(), nl=False)
