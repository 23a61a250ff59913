"""`convtrain compare RUN_DIR... | SWEEP_DIR`: one row per run, what differs and what it cost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from convtrain.evaluate.summary import METRICS
from convtrain.experiments import compare as comparison
from convtrain.experiments.html import sweep_report
from convtrain.explain.compare import compare_section
from convtrain.search.report import compare_sweep

LEGACY_SWEEP = "sweep.json"  # convtrain's earlier sweep engine: its trials are compared as runs
STUDY_SWEEP = "study.json"  # a sweep on an Optuna study (convtrain.search)

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
    return (path / LEGACY_SWEEP).is_file() or (path / STUDY_SWEEP).is_file()


def _compare_study(path: Path, sort_by: str, fmt: str, out: str | None) -> Path:
    out_dir = Path(out) if out is not None else path
    result = compare_sweep(path, out_dir, sort_by)
    click.echo(FORMATS[fmt](result["header"], result["rows"]).rstrip("\n"))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(result["cost"], err=True)
    click.echo(f"report: {result['page']}", err=True)
    figures = ", ".join(p.name for p in result["figures"])
    click.echo(
        f"wrote {out_dir / 'compare.md'}, compare.csv{', ' + figures if figures else ''}", err=True
    )
    return out_dir


def run_compare(
    paths: list[str], sort_by: str = "accuracy", fmt: str = "table", out: str | None = None
) -> Path:
    if len(paths) == 1 and (Path(paths[0]) / STUDY_SWEEP).is_file():
        return _compare_study(Path(paths[0]), sort_by, fmt, out)
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
    if len(paths) == 1 and (Path(paths[0]) / LEGACY_SWEEP).is_file():
        # issue 16: the same test images across the trials, in the sweep's report.
        names = comparison.labels(runs)
        trials = [(r.run.path, names[r.name]) for r in runs]
        compare_section(trials, comparison.differing(runs) if len(runs) > 1 else [], out_dir)
        page = sweep_report(out_dir, header, rows, comparison.cell)
        click.echo(f"report: {page}", err=True)
    # stdout holds only the table, so `--format csv > table.csv` gives a clean file
    click.echo(
        f"wrote {out_dir / 'compare.md'}, compare.csv, compare_cost.png, compare_curves.png",
        err=True,
    )
    return out_dir
