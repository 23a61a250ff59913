"""The `convtrain` command line: one module per command, each read top to bottom.

A command module loads what the user named, plans, reads the data, trains or evaluates, and
reports; the library packages below it compute, write files and raise ConvtrainError, and never
print. User mistakes are one line per problem on stderr, exit code 2, no traceback.
stdout that cannot take the result (a full disk) is one line too, exit code 1; a reader that
stopped reading (`convtrain inspect CONFIG | head -1`) ends the command quietly.

The command modules are imported only when their command runs: `convtrain --help` lists them
from COMMANDS without importing any of them (a test keeps COMMANDS equal to their help).
"""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import io
import os
import sys

import click

from convtrain import __version__
from convtrain.errors import ConvtrainError, WriteFailed

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


class StdoutFailed(OSError):
    """A write to the process's stdout failed: told apart from every other OSError by type."""


class _Stdout(io.FileIO):
    def write(self, data: object) -> int | None:
        try:
            return super().write(data)  # type: ignore[arg-type]
        except OSError as exc:
            raise StdoutFailed(exc.errno, exc.strerror) from None


def _guard_stdout() -> None:
    """Put sys.stdout on a file descriptor whose failures are StdoutFailed.

    Only the process's own stdout (a test's captured stream is left alone). A failed write
    loses what was buffered, so a flush afterwards cannot tell whose the error was: the type can.
    """
    out = sys.stdout
    if out is None or out is not sys.__stdout__:
        return
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    out.flush()
    raw = _Stdout(fd, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=out.encoding,
        errors=out.errors,
        line_buffering=out.line_buffering,
        write_through=out.write_through,
    )


def _stdout_failed(exc: StdoutFailed) -> int:
    """One line for a full disk, nothing for a closed pipe; then stdout goes to /dev/null.

    As Python's docs on SIGPIPE advise, so the interpreter's last flush does not fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    if exc.errno == errno.EPIPE:
        return 1
    reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    remedy = "free some space or send the output elsewhere"
    failure = WriteFailed("stdout", reason, remedy)
    for line in failure.lines():
        click.echo(f"error: {line}", err=True)
    return failure.exit_code


def main(argv: list[str] | None = None) -> None:
    _guard_stdout()
    try:
        code = cli.main(args=argv, prog_name="convtrain", standalone_mode=False)
        sys.stdout.flush()  # what is still buffered fails here, not in the interpreter's exit
    except StdoutFailed as exc:
        sys.exit(_stdout_failed(exc))
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


def entry() -> None:
    """The `convtrain` program (console script, `python -m convtrain`): main(), then an exit
    that skips the interpreter's teardown.

    A training stopped in the middle of an epoch (a pruned trial, Ctrl-C) left TensorFlow's
    input pipeline to be torn down by the interpreter's last garbage collection: 36 s on the
    real data before the process ended, a sweep's slot idle all that time. Nothing convtrain
    writes waits for that teardown (every file is committed as it is written, so that a kill -9
    loses at most the epoch in progress), so after the atexit handlers and a flush of stdout
    and stderr the process ends at once, with main()'s exit code. main() itself only raises
    SystemExit, so the tests can call it in their own process.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"), as the interpreter would print it
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # noqa: SLF001 - what the interpreter's exit would run first
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(code)
