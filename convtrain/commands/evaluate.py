"""`convtrain evaluate RUN_DIR`: reports and plots of a run's checkpoint on one split.

Also the last step of `convtrain train` (evaluate_and_report). A damaged history.csv or
state.json costs only what is drawn from it (the learning curves, the best-epoch mark, the
training summary), with one warning line; the evaluation itself needs neither.
"""

from __future__ import annotations

import click

from convtrain.commands.common import planned, read_or_warn
from convtrain.commands.console import Console
from convtrain.commands.options import run_arg
from convtrain.config.schema import Experiment
from convtrain.data.split import Split
from convtrain.evaluate.summary import MetricsRecord
from convtrain.experiments.html import run_report
from convtrain.history import History
from convtrain.model.plan import Plan
from convtrain.rundir import RunDir
from convtrain.tfquiet import import_tensorflow
from convtrain.train.loading import load_experiment
from convtrain.train.state import TrainState


@click.command()
@run_arg
@click.option(
    "--checkpoint",
    type=click.Choice(["best", "last"]),
    default=None,
    help="Default: the config's eval.checkpoint.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default=None,
    help="Default: the config's eval.split.",
)
def evaluate(run_dir: str, checkpoint: str | None, split: str | None) -> None:
    """Re-evaluate a run: classification report, metrics and plots."""
    run = RunDir.open(run_dir, need=("config", "split", "checkpoint"))
    experiment = load_experiment(run)  # the config's mistakes first, then the split's
    saved = run.read(Split)
    plan = planned(experiment, len(saved.classes), str(run.config))
    checkpoint = checkpoint or experiment.eval.checkpoint
    evaluate_and_report(run, experiment, saved, plan, checkpoint, split or experiment.eval.split)


def _state(run: RunDir) -> TrainState | None:
    return run.read(TrainState) if run.file(TrainState).is_file() else None


def evaluate_and_report(
    run: RunDir,
    experiment: Experiment,
    split: Split,
    plan: Plan,
    checkpoint: str,
    part: str,
    console: Console | None = None,
) -> MetricsRecord:
    """Evaluate, print the summary, write report.html; the content of metrics.json."""
    console = console or Console()
    state = read_or_warn(
        lambda: _state(run), console, "the report leaves out the training and the best epoch"
    )
    history: History | None = read_or_warn(
        run.read_history, console, "the learning curves are left out"
    )
    if state is not None:
        best = None if state.best_epoch is None else (state.best_epoch, state.monitor)
    else:
        best = None if history is None else history.best_epoch(experiment.train.monitor)
    import_tensorflow()  # the run directory is valid: now TensorFlow may start (quietly)
    # The evaluation imports TensorFlow (about 5 s, measured): only once the run is checked.
    from convtrain.evaluate.reports import format_summary
    from convtrain.evaluate.run import evaluate_checkpoint

    result = evaluate_checkpoint(
        run, experiment, split, checkpoint, part, history=history, best=best, reporter=console
    )
    click.echo(format_summary(result.summary, result.pairs, run.path))
    click.echo(f"report: {run_report(run, plan, state)}")
    return result.summary
