"""`convtrain train CONFIG` / `convtrain train --resume RUN_DIR`: one path for both.

A fresh run and a resumed one differ only in where they start (a config, or a run directory's
config.yaml, split.json and state.json): both are loaded into a Job, planned once with the real
class count, trained by the same code and evaluated the same way. Everything that can fail on
the user's input is checked before the run directory is created or written to, and before
TensorFlow starts; the run is held (RunDir.owned) by the process training it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import click

from convtrain.commands.common import planned
from convtrain.commands.console import Console
from convtrain.commands.evaluate import evaluate_and_report
from convtrain.commands.options import set_option
from convtrain.config.load import dump_config, load_config
from convtrain.config.schema import Experiment
from convtrain.data.index import with_data_root
from convtrain.data.split import Split, make_split, split_classes
from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.evaluate.summary import MetricsRecord
from convtrain.io import atomic_write_text
from convtrain.model.plan import Plan
from convtrain.rundir import RunDir
from convtrain.search.hook import study_callbacks
from convtrain.tfquiet import import_tensorflow
from convtrain.train.cluster import Cluster, resolve_cluster
from convtrain.train.environment import Environment
from convtrain.train.loading import load_experiment
from convtrain.train.state import Monitor, TrainState, write_history


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option("--name", default=None, help="Run name (default: the config's name).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--resume",
    "resume",
    default=None,
    type=click.Path(file_okay=False),
    help="Continue an interrupted run directory.",
)
@click.option(
    "--workers",
    default=None,
    metavar="HOST:PORT,...",
    help="Multi-worker cluster (distribute.strategy multi_worker), the same list on every worker; instead of TF_CONFIG.",
)
@click.option(
    "--worker-index",
    type=click.IntRange(0),
    default=None,
    help="This worker's position in --workers (0 is the chief).",
)
def train(
    config: str | None,
    overrides: tuple[str, ...],
    name: str | None,
    runs_dir: str,
    resume: str | None,
    workers: str | None,
    worker_index: int | None,
) -> None:
    """Validate CONFIG, train, and write a run directory with reports and plots.

    `convtrain train --resume RUN_DIR` (no CONFIG) continues an interrupted run.
    Several GPUs and machines: see docs/distribute.md.
    """
    console = Console()
    with ExitStack() as held:  # the run directory's hold, kept until its reports are written
        if resume is not None:
            job = resumed(resume, config, overrides, name, workers, worker_index, held)
        else:
            job = fresh(config, overrides, name, workers, worker_index)
        plan = planned(job.experiment, len(job.classes), job.source)
        if job.state is not None and job.state.status == "completed":
            # Killed after its last epoch, while evaluating: what is left is the evaluation.
            console.note(
                f"resuming {job.run.path}: training completed {job.state.completed_epochs} of "
                f"{job.state.epochs} epochs, the evaluation did not"
            )
            finish(job.run, job.experiment, job.split, plan, job.state, console)
            return
        split = job.split or make_split(job.experiment, console)
        run, state, chief = fit(job, split, plan, runs_dir, console, held)
        if chief:
            finish(run, job.experiment, split, plan, state, console)
        else:
            console.note(
                f"multi-worker: trained {state.completed_epochs} epochs; the chief evaluates "
                f"and writes the reports of {run.path}"
            )


@dataclass
class Job:
    """Where a training starts: a validated config, and for a resume its run directory."""

    experiment: Experiment
    source: str  # the config file, which the config's errors name
    cluster: Cluster | None
    seed: int
    classes: tuple[str, ...]
    name: str | None = None  # the fresh run's --name
    run: RunDir | None = None  # None until a fresh run's directory is created
    split: Split | None = None  # None until a fresh run's split is made from the data
    state: TrainState | None = None
    environment: Environment | None = None

    @property
    def chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief


def fresh(
    config: str | None,
    overrides: Sequence[str],
    name: str | None,
    workers: str | None,
    worker_index: int | None,
) -> Job:
    if config is None:
        raise ConvtrainError(
            "train: expected a CONFIG file (or --resume RUN_DIR to continue a run), received neither"
        )
    experiment = load_config(config, overrides)
    cluster = resolve_cluster(experiment.distribute.strategy, workers, worker_index)
    name = _run_name(name)
    experiment = with_data_root(experiment)
    classes = split_classes(experiment)
    return Job(experiment, str(config), cluster, experiment.seed, classes, name=name)


def resumed(
    path: str,
    config: str | None,
    overrides: Sequence[str],
    name: str | None,
    workers: str | None,
    worker_index: int | None,
    held: ExitStack,
) -> Job:
    given = [what for what, v in (("CONFIG", config), ("--set", overrides), ("--name", name)) if v]
    if given:
        raise ConvtrainError(
            f"--resume {path}: a resumed run uses its own config.yaml and name; expected "
            f"no CONFIG, --set or --name, received {' and '.join(given)}"
        )
    run = RunDir.open(path, need=("config", "split", "state"))
    experiment = load_experiment(run)  # its images where its split was made, if moved from
    cluster = resolve_cluster(experiment.distribute.strategy, workers, worker_index)
    split = run.read(Split)
    state = run.read(TrainState)
    if state.status == "completed" and run.file(MetricsRecord).is_file():
        raise ConvtrainError(
            f"{run.path}: nothing to resume, the run completed {state.completed_epochs} of "
            f"{state.epochs} epochs; evaluate it with `convtrain evaluate {run.path}`"
        )
    job = Job(experiment, str(run.config), cluster, experiment.seed, split.classes, run=run)
    job.split, job.state = split, state
    if job.chief:  # the other workers never write the run
        held.enter_context(run.owned())
    if state.epochs != experiment.train.epochs:
        raise ConvtrainError(
            f"{run.state}: epochs: expected {experiment.train.epochs} (train.epochs in "
            f"{run.config}), received {state.epochs}; the run directory was edited"
        )
    if run.file(Environment).is_file():
        job.environment = run.read(Environment)
    # A different seed per resume point: restarting with the first epoch's seed would replay
    # its dropout and augmentation draws.
    job.seed = experiment.seed + state.completed_epochs
    return job


def _run_name(name: str | None) -> str | None:
    """--name, held to the rule of the config's `name` (it becomes a folder name)."""
    if name is None:
        return None
    field = Experiment.model_fields["name"]
    pattern = next(m.pattern for m in field.metadata if getattr(m, "pattern", None))
    if not re.fullmatch(pattern, name) or len(name) > 80:
        raise ConvtrainError(
            f"--name: expected a name of letters, digits, '_', '.' or '-' (at most 80 "
            f"characters, starting with a letter or digit), received {name!r}"
        )
    return name


def fit(
    job: Job, split: Split, plan: Plan, runs_dir: str, console: Console, held: ExitStack
) -> tuple[RunDir, TrainState, bool]:
    """Train the job under its strategy; (run directory, final state, whether this is the chief)."""
    import_tensorflow()  # everything the user gave is valid: now TensorFlow may start (quietly)
    # These modules import TensorFlow, about 5 s (measured): only once the input is checked.
    from convtrain.data.pipeline import make_datasets
    from convtrain.train import checkpoints, distribute
    from convtrain.train.callbacks import format_row
    from convtrain.train.fit import Interrupted
    from convtrain.train.session import (
        first_plateau,
        fit_placed,
        keras_session,
        removed_on_write_failure,
        trained_model,
        workspace,
    )

    experiment, run, state = job.experiment, job.run, job.state
    if run is not None and state is not None and job.chief:
        checkpoints.recover(run, state.completed_epochs)
    with keras_session(experiment, job.seed, job.cluster, console) as placement:
        distribute.per_replica_batch(experiment.train.batch_size, placement.replicas)
        trained = distribute.scaled_for_replicas(experiment, placement.replicas)
        datasets = distribute.shard(make_datasets(experiment, split, console), placement)
        # The chief has recovered the checkpoints before any worker loads the last one.
        placement.agree("", "waiting for the other workers to be ready")
        model = trained_model(experiment, trained, plan, run, state)
        # Every worker has validated its part before the chief creates or writes the run.
        placement.agree("", "waiting for the other workers' models")
        placed = placement.distribution(
            trained.train.batch_size, trained.train.optimizer.learning_rate
        )
        notes = []
        if state is None:  # a fresh run: its directory, made by the chief, named to every worker
            monitor, note = Monitor.resolve(experiment.train.monitor, datasets.val is not None)
            state = TrainState.begin(experiment.train.epochs, monitor, first_plateau(trained))
            created = ""
            if placement.is_chief:
                run = RunDir.create(runs_dir, job.name or experiment.name)
                held.enter_context(run.owned())
                with removed_on_write_failure(run):
                    atomic_write_text(run.config, dump_config(experiment))
                    run.write(split)
                    run.write(Environment.capture(experiment.seed, placed))
                created = run.path.name
            # Every worker names the run by the chief's directory (a timestamp is no shared clock).
            run = RunDir(Path(runs_dir) / placement.agree(created, "agreeing on the run directory"))
            notes = [f"run directory: {run.path}", *([note] if note else [])]
        else:
            assert run is not None
            if placement.is_chief:
                environment = job.environment or Environment.capture(experiment.seed)
                run.write(environment.resumed_at(job.seed, state.completed_epochs, placed))
            epoch = state.completed_epochs + 1
            notes = [f"resuming {run.path} at epoch {epoch} of {state.epochs}"]
        with workspace(run, placement, console) as work:
            fresh = job.run is None
            with removed_on_write_failure(work if fresh and placement.is_chief else None):
                state.save(work)
                write_history(work, state)
                if fresh:
                    # issue 16: explain's change from initialisation. Every worker saves, as for
                    # the other checkpoints: a multi-worker save is a collective operation.
                    checkpoints.save_initial(work, model)
            for note in notes:
                console.note(note)
            progress_bar = sys.stdout.isatty()  # Keras draws its bar on stdout
            epochs = state.epochs
            try:
                state = fit_placed(
                    model,
                    datasets,
                    trained,
                    run,
                    work,
                    state,
                    placement,
                    progress_bar=progress_bar,
                    on_row=None if progress_bar else lambda r: console.note(format_row(r, epochs)),
                    extra_callbacks=study_callbacks(work.path),  # in a sweep: report, prune
                )
            except (Interrupted, ConvtrainError) as exc:
                if progress_bar:
                    click.echo()  # end Keras's half-drawn bar: the message gets a line of its own
                if isinstance(exc, Interrupted):
                    epoch = min(exc.state.completed_epochs + 1, exc.state.epochs)
                    resume = f"convtrain train --resume {run.path}"
                    console.note(f"interrupted at epoch {epoch}; resume with: {resume}")
                    raise SystemExit(130) from None
                raise
    return run, state, placement.is_chief


def finish(
    run: RunDir,
    experiment: Experiment,
    split: Split,
    plan: Plan,
    state: TrainState,
    console: Console,
) -> None:
    """Evaluate the trained run and print its summary line (the chief's last step)."""
    if state.stopped_early and experiment.train.early_stopping is not None:
        console.note(
            f"early stopping after epoch {state.completed_epochs}: no {state.monitor} "
            f"improvement in {experiment.train.early_stopping.patience} epochs"
        )
    ev = experiment.eval
    console.note(f"evaluating the {ev.checkpoint} checkpoint on the {ev.split} split")
    try:
        metrics = evaluate_and_report(
            run, experiment, split, plan, ev.checkpoint, ev.split, console
        )
    except WriteFailed as exc:  # the training is committed: only the evaluation is left to do
        raise exc.replace(then=f"evaluate the run with: convtrain evaluate {run.path}") from None
    best = (
        f"best {state.monitor} {state.best_value:.4f} at epoch {state.best_epoch}"
        if state.best_value is not None
        else "no best epoch"
    )
    click.echo(
        f"{run.path.name}: {state.completed_epochs} epochs, {best}; "
        f"{ev.split} ({ev.checkpoint} checkpoint): {metrics.headline()}"
    )
