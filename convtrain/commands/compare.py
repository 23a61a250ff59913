"""`convtrain compare RUN_DIR... | SWEEP_DIR`: one row per run, what differs and what it cost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from convtrain.evaluate.summary import METRICS
from convtrain.experiments import compare as comparison
from convtrain.experiments.html import sweep_report
from convtrain.experiments.sweep import SWEEP_FILE

FORMATS = {
    "table": comparison.to_text,
    "markdown": comparison.to_markdown,
    "csv": comparison.to_csv,
}


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--sort", "sort_by", type=click.Choice(METRICS), default="accuracy", show_default=True
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
    run_compare(list(paths), sort_by=sort_by, fmt=fmt, out=out)


def is_sweep(path: Path) -> bool:
    return (path / SWEEP_FILE).is_file()


def run_compare(
    paths: list[str], sort_by: str = "accuracy", fmt: str = "table", out: str | None = None
) -> Path:
    runs = comparison.collect(paths)
    sweep = len(paths) == 1 and is_sweep(Path(paths[0]))
    if out is not None:
        out_dir = Path(out)
    elif sweep:
        out_dir = Path(paths[0])
    else:
        out_dir = Path("runs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    header, rows = comparison.write_outputs(out_dir, runs, sort_by)
    click.echo(FORMATS[fmt](header, rows).rstrip("\n"))
    if sweep:
        page = sweep_report(out_dir, header, rows, comparison.cell)
        click.echo(f"report: {page}", err=True)
    # stdout holds only the table, so `--format csv > table.csv` gives a clean file
    click.echo(
        f"wrote {out_dir / 'compare.md'}, compare.csv, compare_cost.png, compare_curves.png",
        err=True,
    )
    return out_dir
