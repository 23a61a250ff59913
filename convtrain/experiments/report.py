"""`convtrain compare` and `convtrain report`: the commands' glue over compare and html."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from convtrain.experiments import compare, html

FORMATS = {"table": compare.to_text, "markdown": compare.to_markdown, "csv": compare.to_csv}
LEGACY_SWEEP = "sweep.json"  # convtrain's earlier sweep engine: its trials are compared as runs
STUDY_SWEEP = "study.json"  # a sweep on an Optuna study (convtrain.search)


def _is_sweep(path: Path) -> bool:
    return (path / LEGACY_SWEEP).is_file() or (path / STUDY_SWEEP).is_file()


def _compare_study(path: Path, sort_by: str, fmt: str, out: str | None) -> Path:
    from convtrain.search.report import compare_sweep

    out_dir = Path(out) if out is not None else path
    result = compare_sweep(path, out_dir, sort_by)
    click.echo(FORMATS[fmt](result["header"], result["rows"]).rstrip("\n"))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
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
    runs = compare.collect(paths)
    if out is not None:
        out_dir = Path(out)
    elif len(paths) == 1 and _is_sweep(Path(paths[0])):
        out_dir = Path(paths[0])
    else:
        out_dir = Path("runs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    header, rows = compare.write_outputs(out_dir, runs, sort_by)
    click.echo(FORMATS[fmt](header, rows).rstrip("\n"))
    if len(paths) == 1 and (Path(paths[0]) / LEGACY_SWEEP).is_file():
        # issue 16: the same test images across the trials, in the sweep's report.
        from convtrain.explain.compare import compare_section

        names = compare.labels(runs)
        trials = [(r.run.path, names[r.name]) for r in runs]
        compare_section(trials, compare.differing(runs) if len(runs) > 1 else [], out_dir)
        page = html.sweep_report(out_dir, header, rows, compare.cell)
        click.echo(f"report: {page}", err=True)
    # stdout holds only the table, so `--format csv > table.csv` gives a clean file
    click.echo(
        f"wrote {out_dir / 'compare.md'}, compare.csv, compare_cost.png, compare_curves.png",
        err=True,
    )
    return out_dir


def run_report(path: str) -> Path:
    p = Path(path)
    if _is_sweep(p):
        run_compare([path], out=path)
        return p / "report.html"
    page = html.run_report(p)
    click.echo(f"report: {page}")
    return page
