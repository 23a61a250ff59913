"""The `convtrain` command line: one module per command, each read top to bottom.

A command module loads what the user named, plans, reads the data, trains or evaluates, and
reports; the library packages below it compute, write files and raise ConvtrainError, and never
print. User mistakes are one line per problem on stderr, exit code 2, no traceback.

The command modules are imported only when their command runs: `convtrain --help` lists them
from COMMANDS without importing any of them (a test keeps COMMANDS equal to their help).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

import click

from convtrain import __version__
from convtrain.errors import ConvtrainError

# TensorFlow's C++ start-up chatter buries the real output; users can still set it to 0.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Command name -> the first line of its help (the module convtrain.commands.<name> defines it).
COMMANDS = {
    "compare": "Compare runs (RUN_DIR... or a SWEEP_DIR): what differs, what it scored, what it cost.",
    "data": "Get CALTECH-101, describe it, preview augmentation.",
    "evaluate": "Re-evaluate a run: classification report, metrics and plots.",
    "explain": "Grad-CAM, feature maps, receptive fields and filters of IMAGEs, as PNGs and explain.html.",
    "inspect": "Per layer: output shape, parameters, multiply-accumulates, receptive field, jump.",
    "predict": "Top-k classes with probabilities for each image, with the run's own preprocessing.",
    "report": "Write a self-contained report.html for a run or a sweep directory.",
    "schema": "Print the JSON Schema of a config, for editors (see docs/config.md).",
    "sweep": "Grid, random or smart search (Optuna) over config values; every trial is a normal run.",
    "train": "Validate CONFIG, train, and write a run directory with reports and plots.",
}


class Commands(click.Group):
    """A group whose commands are imported when run, not when listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"convtrain.commands.{cmd_name}")
        return getattr(module, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        # Shortened as click shortens a command's own help, from a stand-in holding the line.
        rows = [
            (name, click.Command(name, help=COMMANDS[name]).get_short_help_str(limit))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="convtrain")
def cli() -> None:
    """Convolutional-network experiments on CALTECH-101, one YAML config per experiment.

    \b
    Typical session:
      convtrain data fetch                      # get CALTECH-101 into data/
      convtrain inspect configs/stridednet.yaml # shapes, parameters, receptive fields
      convtrain train configs/stridednet.yaml   # writes runs/stridednet-<timestamp>/
      convtrain evaluate runs/stridednet-...    # reports and plots of a run
      convtrain explain runs/stridednet-... --split test  # where it looks, what each layer sees
    """


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="convtrain", standalone_mode=False)
    except ConvtrainError as exc:
        for line in exc.lines():
            click.echo(f"error: {line}", err=True)
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    else:
        sys.exit(code if isinstance(code, int) else 0)
    # The error's traceback kept what failed alive (for a lost multi-worker peer, TensorFlow's
    # all-reduce ThreadPool): collected now, while the interpreter is whole, its finalizer runs
    # cleanly instead of printing a traceback during shutdown.
    gc.collect()
    sys.exit(code)
