"""Keras callbacks: per-epoch rate, bookkeeping and checkpoints; a guard against a diverging loss."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from convtrain.config.schema import TrainConfig
from convtrain.history import Row
from convtrain.io import ENVIRONMENT, write_failure
from convtrain.rundir import RunDir
from convtrain.train import checkpoints
from convtrain.train.optim import learning_rate
from convtrain.train.state import TrainState, write_history

# What TensorBoard's scalars plugin expects on a scalar summary.
_SCALARS = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite; `epoch` and `batch` are 1-based."""

    def __init__(self, epoch: int, batch: int, value: float):
        super().__init__(f"loss {value} at epoch {epoch}, batch {batch}")
        self.epoch, self.batch, self.value = epoch, batch, value


class NanGuard(keras.callbacks.Callback):
    """Stop at the first batch whose loss is not finite (Keras's TerminateOnNaN, but it says where)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(self.epoch + 1, batch + 1, float(loss))


def _metric(logs: dict, key: str) -> float | None:
    value = logs.get(key)
    return None if value is None else round(float(value), 6)


class EpochRecorder(keras.callbacks.Callback):
    """Sets each epoch's learning rate, then commits the finished epoch to the run directory.

    The commit order (stage checkpoints, write state.json, promote checkpoints, rewrite
    history.csv) is what lets `--resume` continue exactly after a kill at any moment.
    """

    def __init__(
        self,
        run: RunDir,
        state: TrainState,
        train: TrainConfig,
        train_images: int,
        on_row: Callable[[Row], None] | None = None,
    ) -> None:
        super().__init__()
        self.run, self.state, self.train = run, state, train
        self.train_images = train_images
        self.on_row = on_row
        self.epoch = state.completed_epochs  # 0-based index of the epoch in progress
        self.lr = 0.0
        self._start = 0.0
        self._train_time: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.lr = learning_rate(self.train, epoch, self.state.plateau)
        self.model.optimizer.learning_rate = self.lr
        self._start, self._train_time = time.perf_counter(), None

    def on_test_begin(self, logs: dict | None = None) -> None:
        # Validation runs inside the epoch; images/s counts the training part only.
        if self._train_time is None:
            self._train_time = time.perf_counter() - self._start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        elapsed = time.perf_counter() - self._start
        train_time = self._train_time if self._train_time is not None else elapsed
        row: Row = {
            "epoch": epoch + 1,
            "loss": _metric(logs, "loss"),
            "accuracy": _metric(logs, "accuracy"),
            "val_loss": _metric(logs, "val_loss"),
            "val_accuracy": _metric(logs, "val_accuracy"),
            "lr": self.lr,
            "epoch_time": round(elapsed, 3),
            "images_per_s": round(self.train_images / max(train_time, 1e-9), 1),
            "top_k": _metric(logs, "top_k"),
            "val_top_k": _metric(logs, "val_top_k"),
        }
        state = self.state
        improved = state.record(row)
        monitored = row.get(state.monitor)
        if state.plateau is not None and monitored is not None:
            state.plateau.update(self.train.schedule, monitored, state.mode)
        if state.early_stop_due(self.train.early_stopping):
            state.stopped_early = True
            self.model.stop_training = True
        checkpoints.stage(self.run, self.model, state.completed_epochs, best=improved)
        state.save(self.run)  # the commit point
        checkpoints.recover(self.run, state.completed_epochs)
        write_history(self.run, state)
        if self.on_row is not None:
            self.on_row(row)


class Validation(keras.callbacks.Callback):
    """Validates at each epoch's end from one iterator kept for the whole fit.

    Given validation data, Keras's fit makes a new iterator over it at every epoch, and on CPU
    the epoch after that at times trained at half speed (docs/performance.md). The pipeline
    is not shuffled, so repeating it gives the same batches every epoch. The figures are
    model.evaluate's: the compiled test step, its metrics reset first, as `val_` logs that the
    callbacks after this one (and Keras's history and progress bar) see. `listeners` are told
    when validation begins, each batch and the end, as Keras's own validation tells them.
    """

    def __init__(self, dataset: tf.data.Dataset, steps: int, listeners: Sequence[Any] = ()) -> None:
        super().__init__()
        self.dataset, self.steps, self.listeners = dataset, steps, tuple(listeners)
        self._iterator: Any = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        model = self.model
        for listener in self.listeners:
            listener.on_test_begin()
        per_call = model.steps_per_execution
        if self.steps % per_call:
            # A last call of fewer steps would run on into the next repetition: Keras's own
            # evaluation, on a fresh iterator, stops at the data's end.
            figures = model.evaluate(self.dataset, return_dict=True, verbose=0)
        else:
            if self._iterator is None:
                strategy = model.distribute_strategy
                dataset = strategy.experimental_distribute_dataset(self.dataset.repeat())
                self._iterator = iter(dataset)
            model.make_test_function()
            model.reset_metrics()
            for step in range(0, self.steps, per_call):
                model.test_function(self._iterator)
                for listener in self.listeners:
                    listener.on_test_batch_end(step)
            figures = model.get_metrics_result()
        results = {f"val_{k}": float(v) for k, v in figures.items()}
        for listener in self.listeners:
            listener.on_test_end(results)
        if logs is not None:
            logs.update(results)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._iterator = None


class EpochSummaries(keras.callbacks.Callback):
    """Per-epoch scalars for TensorBoard, in Keras's layout (train/ and validation/ runs).

    Written with TensorFlow's core summary ops, which need no `tensorboard` package at training
    time; `tensorboard --logdir RUN_DIR/tensorboard` reads them.
    """

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = log_dir
        self._writers: dict[str, Any] = {}

    def _writer(self, name: str) -> Any:
        if name not in self._writers:
            with _summary_writing(self.log_dir / name):
                self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def _scalar(self, run: str, tag: str, value: float, step: int) -> None:
        with self._writer(run).as_default():
            tf.summary.write(
                f"epoch_{tag}", tf.constant(value, tf.float32), step=step, metadata=_SCALARS
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = epoch + 1  # as in history.csv
        with _summary_writing(self.log_dir):
            for key, value in (logs or {}).items():
                if key.startswith("val_"):
                    self._scalar("validation", key.removeprefix("val_"), float(value), step)
                else:
                    self._scalar("train", key, float(value), step)
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self._scalar("train", "learning_rate", lr, step)
            for writer in self._writers.values():
                writer.flush()  # a kill -9 loses at most the epoch in progress

    def on_train_end(self, logs: dict | None = None) -> None:
        writers, self._writers = list(self._writers.values()), {}
        with _summary_writing(self.log_dir):
            for writer in writers:
                writer.close()


# TensorFlow's C++ file writer reports an OSError as an OpError whose message ends in strerror.
_ERRNO_OF = {os.strerror(c): c for c in sorted(ENVIRONMENT)}


@contextmanager
def _summary_writing(log_dir: Path) -> Iterator[None]:
    """A failed TensorBoard write as convtrain.io's one line, naming the events file."""
    try:
        yield
    except tf.errors.OpError as exc:
        first = exc.message.splitlines()[0] if exc.message else type(exc).__name__
        where, _, reason = first.rpartition("; ")
        path = where.rpartition("}} ")[2] or str(log_dir)
        code = _ERRNO_OF.get(reason)
        error = OSError(code, reason) if code else OSError(first)
        raise write_failure(path, error) from None


def format_row(row: Row, epochs: int) -> str:
    """One line per epoch for logs and pipes (the progress bar's stand-in off a terminal)."""

    def num(key: str, label: str) -> str:
        value = row.get(key)
        return f"{label} {value:.4f}" if value is not None else ""

    parts = [
        f"epoch {row['epoch']}/{epochs}",
        num("loss", "loss"),
        num("accuracy", "acc"),
        num("val_loss", "val_loss"),
        num("val_accuracy", "val_acc"),
        f"lr {row['lr']:.3g}",
        f"{row['epoch_time']:.1f}s",
        f"{row['images_per_s']:.0f} img/s",
    ]
    return "  ".join(p for p in parts if p)
