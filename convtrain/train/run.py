"""`convtrain train`: validate everything, create the run directory, train, evaluate.

Everything that can fail on the user's input (config, data, model) is checked before the run
directory is created, so a mistake never leaves an empty run behind. `--resume` reads the run's
own config.yaml, split.json and state.json and continues from the last committed epoch.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convtrain.config.load import dump_config, load_config
from convtrain.config.schema import Experiment
from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.io import atomic_write_json, atomic_write_text
from convtrain.rundir import RunDir
from convtrain.search.hook import study_callbacks
from convtrain.tfquiet import import_tensorflow
from convtrain.train import checkpoints, distribute
from convtrain.train.distribute import Cluster, Placement
from convtrain.train.environment import environment, session
from convtrain.train.optim import PlateauState
from convtrain.train.state import Monitor, TrainState, write_history

# train.mixed_precision -> Keras dtype policy (variables stay float32 in the mixed policies).
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def run_train(
    config: str | None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    runs_dir: str = "runs",
    resume: str | None = None,
    workers: str | None = None,
    worker_index: int | None = None,
) -> RunDir:
    """Train a config (or resume a run); `workers`/`worker_index` name a multi-worker cluster."""
    if resume is not None:
        given = [
            what for what, v in (("CONFIG", config), ("--set", overrides), ("--name", name)) if v
        ]
        if given:
            raise ConvtrainError(
                f"--resume {resume}: a resumed run uses its own config.yaml and name; expected "
                f"no CONFIG, --set or --name, received {' and '.join(given)}"
            )
        return resume_run(resume, workers, worker_index)
    if config is None:
        raise ConvtrainError(
            "train: expected a CONFIG file (or --resume RUN_DIR to continue a run), received neither"
        )
    experiment = load_config(config, overrides)
    cluster = distribute.resolve_cluster(experiment.distribute.strategy, workers, worker_index)
    return start_run(experiment, _run_name(name), runs_dir, cluster)


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


@contextmanager
def keras_session(
    experiment: Experiment, seed: int, cluster: Cluster | None = None
) -> Iterator[Placement]:
    """Strategy, seed, determinism and dtype policy, set before anything is built.

    The strategy comes first: TensorFlow configures devices and collectives only before its
    first operation. Model, optimizer and metrics are then created in the strategy's scope.
    """
    import keras
    import tensorflow as tf

    if experiment.train.threads is not None:
        # Like the strategy, only possible before TensorFlow's first operation.
        tf.config.threading.set_intra_op_parallelism_threads(experiment.train.threads)
    placement = distribute.create_strategy(experiment, cluster)
    keras.utils.set_random_seed(seed)
    if experiment.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[experiment.train.mixed_precision])
    try:
        with placement.strategy.scope():
            yield placement
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _with_data_root(experiment: Experiment) -> Experiment:
    """The experiment with data.root the folder actually read (CONVTRAIN_DATA_ROOT applied)."""
    from convtrain.data.index import resolve_root

    data = experiment.data.model_copy(update={"root": str(resolve_root(experiment.data))})
    return experiment.model_copy(update={"data": data})


def start_run(
    experiment: Experiment, name: str | None, runs_dir: str, cluster: Cluster | None = None
) -> RunDir:
    import_tensorflow()  # the config is valid: now TensorFlow may start (quietly)
    from convtrain.data.pipeline import make_datasets
    from convtrain.data.split import make_split, save_split
    from convtrain.model.build import build_model
    from convtrain.train.fit import compile_model

    experiment = _with_data_root(experiment)
    with keras_session(experiment, experiment.seed, cluster) as placement:
        distribute.per_replica_batch(experiment.train.batch_size, placement.replicas)
        trained = distribute.scaled_for_replicas(experiment, placement.replicas)
        split = make_split(experiment)
        datasets = distribute.shard(make_datasets(experiment, split), placement)
        model = build_model(experiment, len(split.classes))
        compile_model(model, trained, len(split.classes))
        monitor, note = Monitor.resolve(experiment.train.monitor, datasets.val is not None)

        # Every worker has validated its part before the chief creates the run directory.
        placement.agree("", "waiting for the other workers to be ready")
        created = ""
        if placement.is_chief:
            run = RunDir.create(runs_dir, name or experiment.name)
            with _removed_on_write_failure(run):
                atomic_write_text(run.config, dump_config(experiment))
                save_split(split, run.split)
                atomic_write_json(
                    run.environment,
                    {
                        **environment(experiment.seed),
                        "distribute": _placement_json(placement, trained),
                    },
                )
            created = run.path.name
        # Every worker names the run by the chief's directory (a timestamp is no shared clock).
        run = RunDir(Path(runs_dir) / placement.agree(created, "agreeing on the run directory"))
        state = TrainState(
            status="running",
            epochs=experiment.train.epochs,
            monitor=monitor,
            plateau=_plateau(trained),
        )
        with _workspace(run, placement) as work:
            with _removed_on_write_failure(work if placement.is_chief else None):
                state.save(work)
                write_history(work, state)
                # issue 16: explain's change from initialisation. Every worker saves, as for the
                # other checkpoints: a multi-worker save is a collective operation.
                checkpoints.save_initial(work, model)
            print(f"run directory: {run.path}", file=sys.stderr, flush=True)
            if note:
                print(note, file=sys.stderr, flush=True)
            state = _fit(model, datasets, trained, run, work, state, placement)
    _finish(run, experiment, state, placement)
    return run


@contextmanager
def _removed_on_write_failure(run: RunDir | None) -> Iterator[None]:
    """A new run directory the disk could not take up to its first state.json has nothing to resume."""
    try:
        yield
    except WriteFailed:
        if run is not None:
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def _placement_json(placement: Placement, trained: Experiment) -> dict[str, Any]:
    return placement.to_json(trained.train.batch_size, trained.train.optimizer.learning_rate)


@contextmanager
def _workspace(run: RunDir, placement: Placement) -> Iterator[RunDir]:
    """Where this process writes: the run directory on the chief, a scratch folder elsewhere.

    The other workers of a multi-worker run train and save exactly as the chief does (Keras's
    multi-worker practice), into a folder of their own that is removed at the end, so they never
    touch the chief's files.
    """
    if placement.is_chief:
        yield run
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"convtrain-{run.path.name}-worker-"))
    print(
        f"multi-worker: the chief writes the run directory; this worker's checkpoints go to "
        f"{scratch} (removed at the end)",
        file=sys.stderr,
        flush=True,
    )
    try:
        yield RunDir(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fit(
    model: Any,
    datasets: Any,
    trained: Experiment,
    run: RunDir,
    work: RunDir,
    state: TrainState,
    placement: Placement,
) -> TrainState:
    """fit, with a lost worker turned into a failed (resumable) run and a one-line error."""
    from convtrain.train.fit import fit, settle

    try:
        with placement.waiting("training"):
            return fit(
                model,
                datasets,
                trained,
                work,
                state,
                extra_callbacks=[
                    *distribute.watchdog_callback(placement),
                    *study_callbacks(work.path),  # convtrain sweep: report epochs, prune
                ],
            )
    except distribute.peer_errors() as exc:
        if placement.cluster is None or not placement.multi_worker:
            raise
        message = distribute.lost_peer_message(
            placement.cluster, exc, f"convtrain train --resume {run.path}"
        )
        if sys.stdout.isatty():
            print(file=sys.stdout, flush=True)  # end Keras's half-drawn progress bar
        settle(work, "failed", lambda _: message)
        raise ConvtrainError(message) from None


def _plateau(experiment: Experiment) -> PlateauState | None:
    if experiment.train.schedule.type != "plateau":
        return None
    return PlateauState(lr=experiment.train.optimizer.learning_rate)


def resume_run(path: str, workers: str | None = None, worker_index: int | None = None) -> RunDir:
    from convtrain.data.split import load_split
    from convtrain.evaluate.reports import METRICS

    run = RunDir.open(path, need=("config", "split", "state"))
    experiment = load_config(run.config)
    cluster = distribute.resolve_cluster(experiment.distribute.strategy, workers, worker_index)
    chief = cluster is None or cluster.is_chief
    split = load_split(run.split)
    state = TrainState.load(run)
    if state.status == "completed":
        if (run.reports / METRICS).is_file():
            raise ConvtrainError(
                f"{run.path}: nothing to resume, the run completed {state.completed_epochs} of "
                f"{state.epochs} epochs; evaluate it with `convtrain evaluate {run.path}`"
            )
        # Killed after its last epoch, while evaluating: what is left is the evaluation.
        print(
            f"resuming {run.path}: training completed {state.completed_epochs} of "
            f"{state.epochs} epochs, the evaluation did not",
            file=sys.stderr,
            flush=True,
        )
        import_tensorflow()
        _report(run, experiment, state)
        return run
    pid = state.alive_elsewhere() if chief else None  # the other workers never write the run
    if pid is not None:
        raise ConvtrainError(
            f"{run.path}: still being trained by process {pid} on this machine; wait for it, "
            f"or stop it (Ctrl-C or kill {pid}) before resuming"
        )
    if state.epochs != experiment.train.epochs:
        raise ConvtrainError(
            f"{run.state}: epochs: expected {experiment.train.epochs} (train.epochs in "
            f"{run.config}), received {state.epochs}; the run directory was edited"
        )
    env = run.read_json(run.environment) if run.environment.is_file() else None
    import_tensorflow()  # the run directory is valid: now TensorFlow may start (quietly)
    from convtrain.data.pipeline import make_datasets
    from convtrain.model.build import build_model
    from convtrain.model.fused_bn import fuse_batch_norm
    from convtrain.train.fit import compile_model

    if chief:
        checkpoints.recover(run, state.completed_epochs)
    # A different seed per resume point: restarting with the first epoch's seed would replay
    # its dropout and augmentation draws.
    seed = experiment.seed + state.completed_epochs
    with keras_session(experiment, seed, cluster) as placement:
        distribute.per_replica_batch(experiment.train.batch_size, placement.replicas)
        trained = distribute.scaled_for_replicas(experiment, placement.replicas)
        datasets = distribute.shard(make_datasets(experiment, split), placement)
        # The chief has recovered the checkpoints before any worker passes this point.
        placement.agree("", "waiting for the other workers to be ready")
        if state.completed_epochs:
            model = checkpoints.load_checkpoint(run.checkpoint("last"))
            if experiment.train.fused_batch_norm:
                fuse_batch_norm(model)  # a saved model is plain Keras: route it again
            compile_model(model, trained, len(split.classes), optimizer=model.optimizer)
        else:
            model = build_model(experiment, len(split.classes))
            compile_model(model, trained, len(split.classes))
        if chief:
            if not isinstance(env, dict):
                env = environment(experiment.seed)
            env.setdefault("resumed", []).append(
                {
                    **session(),
                    "seed": seed,
                    "completed_epochs": state.completed_epochs,
                    "distribute": _placement_json(placement, trained),
                }
            )
            atomic_write_json(run.environment, env)
            write_history(run, state)
        print(
            f"resuming {run.path} at epoch {state.completed_epochs + 1} of {state.epochs}",
            file=sys.stderr,
            flush=True,
        )
        with _workspace(run, placement) as work:
            state = _fit(model, datasets, trained, run, work, state, placement)
    _finish(run, experiment, state, placement)
    return run


def _headline(metrics: dict[str, Any]) -> str:
    """The evaluator's headline figures, in one line."""
    names = {
        "accuracy": "accuracy",
        "mean_per_class_accuracy": "mean per-class accuracy",
        "top_k_accuracy": f"top-{metrics.get('top_k', 'k')} accuracy",
    }
    parts = [
        f"{label} {metrics[key]:.4f}"
        for key, label in names.items()
        if isinstance(metrics.get(key), float)
    ]
    return ", ".join(parts) or "no metrics"


def _finish(run: RunDir, experiment: Experiment, state: TrainState, placement: Placement) -> None:
    if not placement.is_chief:
        print(
            f"multi-worker: trained {state.completed_epochs} epochs; the chief evaluates and "
            f"writes the reports of {run.path}",
            file=sys.stderr,
        )
        return
    _report(run, experiment, state)


def _report(run: RunDir, experiment: Experiment, state: TrainState) -> None:
    """Evaluate the trained run and print its summary line (the chief's last step)."""
    from convtrain.evaluate.run import evaluate_run

    if state.stopped_early and experiment.train.early_stopping is not None:
        print(
            f"early stopping after epoch {state.completed_epochs}: no {state.monitor.name} "
            f"improvement in {experiment.train.early_stopping.patience} epochs",
            file=sys.stderr,
        )
    ev = experiment.eval
    print(f"evaluating the {ev.checkpoint} checkpoint on the {ev.split} split", file=sys.stderr)
    try:
        metrics = evaluate_run(run, ev.checkpoint, ev.split)
    except WriteFailed as exc:  # the training is committed: only the evaluation is left to do
        raise exc.replace(then=f"evaluate the run with: convtrain evaluate {run.path}") from None
    best = (
        f"best {state.monitor.name} {state.best_value:.4f} at epoch {state.best_epoch}"
        if state.best_value is not None
        else "no best epoch"
    )
    print(
        f"{run.path.name}: {state.completed_epochs} epochs, {best}; "
        f"{ev.split} ({ev.checkpoint} checkpoint): {_headline(metrics)}"
    )
