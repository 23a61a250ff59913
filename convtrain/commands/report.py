"""`convtrain report RUN_DIR | SWEEP_DIR`: a self-contained report.html."""

from __future__ import annotations

import click


@click.command()
@click.argument("path", type=click.Path(file_okay=False))
def report(path: str) -> None:
    """Write a self-contained report.html for a run or a sweep directory."""
    from convtrain.experiments.report import run_report

    run_report(path)
