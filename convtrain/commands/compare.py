"""`convtrain compare RUN_DIR... | SWEEP_DIR`: one row per run, what differs and what it cost."""

from __future__ import annotations

import click


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(["accuracy", "mean_per_class_accuracy", "top_k_accuracy"]),
    default="accuracy",
    show_default=True,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Where to write compare.md/.csv and plots (default: the sweep directory, else the current directory).",
)
def compare(paths: tuple[str, ...], sort_by: str, fmt: str, out: str | None) -> None:
    """Compare runs (RUN_DIR... or a SWEEP_DIR): what differs, what it scored, what it cost."""
    from convtrain.experiments.report import run_compare

    run_compare(list(paths), sort_by=sort_by, fmt=fmt, out=out)
