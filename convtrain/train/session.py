"""The Keras session a run trains in, where each worker writes, and training under a strategy."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from convtrain.config.schema import Experiment
from convtrain.data.pipeline import Datasets
from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.history import Row
from convtrain.model.build import build_model
from convtrain.model.fused_bn import fuse_batch_norm
from convtrain.model.plan import Plan
from convtrain.progress import QUIET, Reporter
from convtrain.rundir import RunDir
from convtrain.train import checkpoints, distribute
from convtrain.train.distribute import Cluster, Placement
from convtrain.train.fit import compile_model, fit, settle
from convtrain.train.state import PlateauState, TrainState

# train.mixed_precision -> Keras dtype policy (variables stay float32 in the mixed policies).
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextmanager
def keras_session(
    experiment: Experiment,
    seed: int,
    cluster: Cluster | None = None,
    reporter: Reporter = QUIET,
) -> Iterator[Placement]:
    """Strategy, seed, determinism and dtype policy, set before anything is built.

    The strategy comes first: TensorFlow configures devices and collectives only before its
    first operation. Model, optimizer and metrics are then created in the strategy's scope.
    """
    if experiment.train.threads is not None:
        # Like the strategy, only possible before TensorFlow's first operation.
        tf.config.threading.set_intra_op_parallelism_threads(experiment.train.threads)
    placement = distribute.create_strategy(experiment, cluster, reporter)
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


def first_plateau(experiment: Experiment) -> PlateauState | None:
    """The plateau schedule's state before the first epoch; None for the other schedules."""
    if experiment.train.schedule.type != "plateau":
        return None
    return PlateauState(lr=experiment.train.optimizer.learning_rate)


def trained_model(
    experiment: Experiment,
    trained: Experiment,
    plan: Plan,
    run: RunDir | None = None,
    state: TrainState | None = None,
) -> Any:
    """A new compiled model, or the run's last checkpoint with its optimizer state when resumed.

    `trained` is the experiment as trained (the learning rate scaled for the replicas); `plan`
    is the command's plan of its layer stack, built once.
    """
    num_classes = plan.num_classes
    if run is not None and state is not None and state.completed_epochs:
        model = checkpoints.load_checkpoint(run.checkpoint("last"))
        if experiment.train.fused_batch_norm:
            fuse_batch_norm(model)  # a saved model is plain Keras: route it again
        compile_model(model, trained, num_classes, optimizer=model.optimizer)
        return model
    model = build_model(experiment, num_classes, plan=plan)
    compile_model(model, trained, num_classes)
    return model


@contextmanager
def workspace(run: RunDir, placement: Placement, reporter: Reporter = QUIET) -> Iterator[RunDir]:
    """Where this process writes: the run directory on the chief, a scratch folder elsewhere.

    The other workers of a multi-worker run train and save exactly as the chief does (Keras's
    multi-worker practice), into a folder of their own that is removed at the end, so they never
    touch the chief's files.
    """
    if placement.is_chief:
        yield run
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"convtrain-{run.path.name}-worker-"))
    reporter.note(
        f"multi-worker: the chief writes the run directory; this worker's checkpoints go to "
        f"{scratch} (removed at the end)"
    )
    try:
        yield RunDir(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def removed_on_write_failure(run: RunDir | None) -> Iterator[None]:
    """A new run directory the disk could not take up to its first state.json has nothing to resume."""
    try:
        yield
    except WriteFailed:
        if run is not None:
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def fit_placed(
    model: Any,
    datasets: Datasets,
    trained: Experiment,
    run: RunDir,
    work: RunDir,
    state: TrainState,
    placement: Placement,
    *,
    progress_bar: bool = False,
    on_row: Callable[[Row], None] | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> TrainState:
    """`fit` under the placement: a lost worker becomes a failed (resumable) run and one line."""
    try:
        with placement.waiting("training"):
            return fit(
                model,
                datasets,
                trained,
                work,
                state,
                progress_bar=progress_bar,
                on_row=on_row,
                extra_callbacks=[*distribute.watchdog_callback(placement), *extra_callbacks],
            )
    except distribute.peer_errors() as exc:
        if placement.cluster is None or not placement.multi_worker:
            raise
        message = distribute.lost_peer_message(
            placement.cluster, exc, f"convtrain train --resume {run.path}"
        )
        settle(work, "failed", lambda _: message)
        raise ConvtrainError(message) from None
