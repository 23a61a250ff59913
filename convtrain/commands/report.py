"""`convtrain report RUN_DIR | SWEEP_DIR`: a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

import click

from convtrain.commands.common import planned, read_or_warn
from convtrain.commands.compare import is_sweep, run_compare
from convtrain.commands.console import Console
from convtrain.config.load import load_config
from convtrain.data.split import Split
from convtrain.experiments.html import run_report
from convtrain.rundir import RunDir
from convtrain.train.state import TrainState


@click.command()
@click.argument("path", type=click.Path(file_okay=False))
def report(path: str) -> None:
    """Write a self-contained report.html for a run or a sweep directory."""
    if is_sweep(Path(path)):
        run_compare([path], out=path)
        return
    run = RunDir.open(path, need=("config", "split"))
    experiment = load_config(run.config)
    plan = planned(experiment, len(run.read(Split).classes), str(run.config))
    state = read_or_warn(
        lambda: run.read(TrainState) if run.file(TrainState).is_file() else None,
        Console(),
        "the report leaves out the training",
    )
    click.echo(f"report: {run_report(run, plan, state)}")
