"""EpochRecorder (rate per epoch, commit per epoch), Validation, NanGuard and the per-epoch line."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from convtrain.config.schema import TrainConfig
from convtrain.rundir import RunDir
from convtrain.train.callbacks import (
    EpochRecorder,
    NanGuard,
    NonFiniteLoss,
    Validation,
    format_row,
)
from convtrain.train.state import Monitor, PlateauState, TrainState


def tiny_model(lr: float = 0.01) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def tiny_data(n: int = 24, batch: int = 8) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 3), dtype=np.float32)
    y = keras.utils.to_categorical(np.arange(n) % 3, 3).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


class Listener(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.ended: dict = {}

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.events.append("begin")

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.events.append(f"batch {batch}")

    def on_test_end(self, logs: dict | None = None) -> None:
        self.events.append("end")
        self.ended = dict(logs or {})


@pytest.mark.parametrize("steps_per_execution", [1, 2, 3])
def test_validation_gives_model_evaluate_figures_every_epoch(steps_per_execution: int) -> None:
    """One iterator for the whole fit: each epoch validates on the same batches, and the
    figures are model.evaluate's (lr 0: the weights, hence the figures, do not change)."""
    model = tiny_model(lr=0.0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )
    val = tiny_data(n=30, batch=8)  # 4 batches, the last one short
    listener = Listener()
    history = model.fit(
        tiny_data().repeat(),
        steps_per_epoch=3,
        epochs=3,
        callbacks=[Validation(val, 4, listeners=[listener])],
        verbose=0,
    )
    expected = model.evaluate(val, return_dict=True, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key in ("loss", "accuracy"):
        assert history.history[f"val_{key}"] == pytest.approx([expected[key]] * 3, rel=1e-6)
    # 4 steps in calls of 3 would run into the next epoch's batches: Keras's evaluate then.
    every = steps_per_execution
    batches = [f"batch {s}" for s in range(0, 4, every)] if 4 % every == 0 else []
    assert listener.events == ["begin", *batches, "end"] * 3
    assert listener.ended == pytest.approx(
        {"val_loss": expected["loss"], "val_accuracy": expected["accuracy"]}, rel=1e-6
    )


def test_recorder_sets_the_rate_and_commits_each_epoch(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    train = TrainConfig(
        epochs=3,
        optimizer={"type": "sgd", "learning_rate": 0.4},
        schedule={"type": "step", "step_epochs": 1, "gamma": 0.5},
    )
    state = TrainState.begin(3, Monitor("val_accuracy", "max"))
    lines: list[str] = []
    recorder = EpochRecorder(run, state, train, 24, on_row=lambda r: lines.append(format_row(r, 3)))
    model = tiny_model()
    model.fit(tiny_data(), validation_data=tiny_data(), epochs=3, callbacks=[recorder], verbose=0)

    assert [r["lr"] for r in state.history] == pytest.approx([0.4, 0.2, 0.1])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert state.completed_epochs == 3 and state.best_epoch is not None
    saved = TrainState.load(run)
    assert saved.history == state.history and saved.completed_epochs == 3
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["best.keras", "last.keras"]
    with open(run.history, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(float(r["images_per_s"]) > 0 and float(r["epoch_time"]) > 0 for r in rows)
    assert all(r["val_accuracy"] != "" for r in rows)
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3  loss ")
    assert "val_acc " in lines[0] and "lr 0.4" in lines[0] and lines[0].endswith("img/s")
    # last.keras is the model after the last epoch, with its optimizer state.
    restored = keras.models.load_model(run.checkpoint("last"), safe_mode=True)
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 9
    np.testing.assert_allclose(restored.get_weights()[0], model.get_weights()[0])


def test_recorder_early_stops_and_updates_plateau(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    train = TrainConfig(
        epochs=10,
        optimizer={"type": "sgd", "learning_rate": 0.1},
        schedule={"type": "plateau", "patience": 1, "factor": 0.5},
        # No epoch can beat the first by 10: training stops after 1 + patience epochs.
        early_stopping={"patience": 2, "min_delta": 10.0},
    )
    state = TrainState.begin(10, Monitor("val_loss", "min"), plateau=PlateauState(lr=0.1))
    model = tiny_model()
    model.fit(
        tiny_data(),
        validation_data=tiny_data(),
        epochs=10,
        callbacks=[EpochRecorder(run, state, train, 24)],
        verbose=0,
    )

    assert state.completed_epochs == 3 and state.stopped_early
    saved = TrainState.load(run)
    assert saved.stopped_early and saved.plateau == state.plateau
    replay, expected = PlateauState(lr=0.1), []
    for row in state.history:
        expected.append(replay.lr)
        replay.update(train.schedule, row["val_loss"], "min")
    assert [r["lr"] for r in state.history] == pytest.approx(expected)
    assert replay == state.plateau


def test_nan_guard_names_epoch_and_batch() -> None:
    model = tiny_model(lr=1e30)
    with pytest.raises(NonFiniteLoss) as info:
        model.fit(tiny_data(n=48), epochs=3, callbacks=[NanGuard()], verbose=0)
    assert info.value.epoch >= 1 and 1 <= info.value.batch <= 6
    assert str(info.value).endswith(f"at epoch {info.value.epoch}, batch {info.value.batch}")


def test_format_row_skips_missing_metrics() -> None:
    row = {
        "epoch": 2,
        "loss": 0.5,
        "accuracy": 0.75,
        "val_loss": None,
        "val_accuracy": None,
        "lr": 0.001,
        "epoch_time": 1.25,
        "images_per_s": 812.4,
    }
    assert format_row(row, 10) == "epoch 2/10  loss 0.5000  acc 0.7500  lr 0.001  1.2s  812 img/s"
