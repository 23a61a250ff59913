"""Compile a model and train it into a run directory, turning faults into a settled state.

`fit` takes the model and datasets as arguments, so it runs the same on a hand-made model and
tf.data pipeline as on the configured ones, and on a fresh model as on a resumed checkpoint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import keras

from convtrain.config.schema import Experiment
from convtrain.data.pipeline import Datasets
from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.history import Row
from convtrain.rundir import RunDir
from convtrain.train import checkpoints
from convtrain.train.callbacks import (
    EpochRecorder,
    EpochSummaries,
    NanGuard,
    NonFiniteLoss,
    Validation,
)
from convtrain.train.optim import make_optimizer
from convtrain.train.state import TrainState, write_history


class Interrupted(Exception):
    """Ctrl-C during `fit`: the run is settled as interrupted; `state` is what was committed."""

    def __init__(self, state: TrainState) -> None:
        super().__init__(_interrupted_message(state))
        self.state = state


def compile_model(
    model: Any, experiment: Experiment, num_classes: int, optimizer: Any = None
) -> None:
    """Loss, metrics and optimizer from the config; pass `optimizer` to keep a restored one's state."""
    train = experiment.train
    model.compile(
        optimizer=optimizer if optimizer is not None else make_optimizer(train.optimizer),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(
                k=min(experiment.eval.top_k, num_classes), name="top_k"
            ),
        ],
        jit_compile=train.jit_compile,
        steps_per_execution=train.steps_per_execution,
    )


def fit_data(datasets: Datasets) -> dict[str, Any]:
    """model.fit's training data: the pipeline repeated, so one iterator serves every epoch.

    Given a finite tf.data pipeline, Keras makes a new iterator every epoch, and on CPU the
    first batch of some epochs then stalled for seconds (docs/performance.md). shuffle and
    random inside the pipeline still redraw at every repetition: the batches are the same.
    Validation is the `Validation` callback's, for the same reason (`validation`).
    """
    return {"x": datasets.train.repeat(), "steps_per_epoch": datasets.steps_per_epoch}


def validation(datasets: Datasets, listeners: Sequence[Any] = ()) -> list[Validation]:
    """The callback validating each epoch, first in the list so every later one sees val_ logs."""
    if datasets.val is None:
        return []
    steps = int(datasets.val.cardinality())  # known: the pipeline batches a fixed list
    return [Validation(datasets.val, steps, listeners)] if steps > 0 else []


def balanced_class_weights(labels: Sequence[int]) -> dict[int, float]:
    """scikit-learn's 'balanced' weights, n / (k * count), over the classes present."""
    counts = Counter(labels)
    n, k = len(labels), len(counts)
    return {label: n / (k * count) for label, count in sorted(counts.items())}


def settle(run: RunDir, status: str, message: Callable[[TrainState], str]) -> TrainState:
    """Mark the run stopped, from what state.json committed (an epoch may have been half-saved)."""
    state = TrainState.load(run)
    checkpoints.recover(run, state.completed_epochs)
    state.status, state.message = status, message(state)
    state.save(run)
    write_history(run, state)
    return state


def _interrupted_message(state: TrainState) -> str:
    return f"interrupted by the user after {state.completed_epochs} of {state.epochs} epochs"


def _nan_message(exc: NonFiniteLoss, run: RunDir, lr: float, state: TrainState) -> str:
    kept = (
        f"the last good checkpoint is {run.checkpoint('last')} (epoch {state.completed_epochs})"
        if state.completed_epochs
        else "no epoch completed, so there is no checkpoint"
    )
    return (
        f"training diverged: the loss became {exc.value} at epoch {exc.epoch}, batch {exc.batch} "
        f"(learning rate {lr:.3g}); {kept}. Likely causes: a learning rate too high "
        f"(train.optimizer.learning_rate), inputs not normalised, or no batch normalisation "
        f"(batch_norm layers) in a deep stack"
    )


def fit(
    model: Any,
    datasets: Datasets,
    experiment: Experiment,
    run: RunDir,
    state: TrainState,
    *,
    progress_bar: bool = False,
    on_row: Callable[[Row], None] | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> TrainState:
    """Train the compiled `model` from `state.completed_epochs` to `state.epochs`, save model.keras.

    `progress_bar` draws Keras's bar (on stdout); `on_row` is told each committed epoch's row.
    Ctrl-C raises Interrupted after settling the run as interrupted; a non-finite loss raises
    ConvtrainError after settling it as failed. Either way last.keras holds the last complete
    epoch and `convtrain train --resume` continues from there.
    """
    labels = [label for _, label in datasets.split.train]
    recorder = EpochRecorder(run, state, experiment.train, len(labels), on_row=on_row)
    callbacks = [
        *validation(datasets, listeners=[recorder, *extra_callbacks]),
        NanGuard(),
        recorder,
        EpochSummaries(run.tensorboard),
        *extra_callbacks,
    ]
    weights = (
        balanced_class_weights(labels) if experiment.train.class_weight == "balanced" else None
    )
    state.status, state.message = "running", None
    try:
        state.save(run)
        if state.completed_epochs < state.epochs and not state.stopped_early:
            model.fit(
                **fit_data(datasets),
                epochs=state.epochs,
                initial_epoch=state.completed_epochs,
                callbacks=callbacks,
                class_weight=weights,
                verbose=1 if progress_bar else 0,
                shuffle=False,  # the pipeline shuffles (seeded); Keras cannot reshuffle a tf.data
            )
        checkpoints.save_final(run, model)
        state.status = "completed"
        state.save(run)
        write_history(run, state)
    except KeyboardInterrupt:
        # The epoch in progress is discarded; a resumed run starts it again.
        raise Interrupted(settle(run, "interrupted", _interrupted_message)) from None
    except NonFiniteLoss as exc:
        settled = settle(run, "failed", partial(_nan_message, exc, run, recorder.lr))
        raise ConvtrainError(settled.message) from None
    except WriteFailed as exc:
        failed = exc.replace(then=f"resume with: convtrain train --resume {run.path}")
        try:  # say so in state.json if the disk lets us; as last committed it is valid anyway
            settle(run, "failed", lambda _: failed.lines()[0])
        except WriteFailed:
            pass
        raise failed from None
    return state
