"""The former home of the command line, kept as an alias: `from convtrain.cli import main`.

The commands live in convtrain.commands (one module per command).
"""

from convtrain.commands import cli, main

__all__ = ["cli", "main"]
