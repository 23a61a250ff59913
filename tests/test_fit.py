"""fit() on a hand-made model and tf.data: interrupts at any moment, resume, NaN, compile options."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from convtrain.config.schema import Experiment
from convtrain.data.pipeline import Datasets
from convtrain.data.split import Split
from convtrain.errors import ConvtrainError
from convtrain.rundir import RunDir
from convtrain.train import checkpoints
from convtrain.train.callbacks import format_row
from convtrain.train.fit import Interrupted, balanced_class_weights, compile_model, fit
from convtrain.train.session import keras_session
from convtrain.train.state import Monitor, TrainState

N, BATCH = 24, 8
STEPS = N // BATCH


def experiment(**train: object) -> Experiment:
    return Experiment.model_validate(
        {
            "data": {"image_size": 8},
            "model": {"layers": [{"type": "global_avg_pool"}]},
            "train": {"epochs": 3, "batch_size": BATCH, **train},
            "eval": {"top_k": 5},
        }
    )


def datasets() -> Datasets:
    rng = np.random.default_rng(0)
    x = rng.random((N, 8, 8, 3), dtype=np.float32)
    labels = np.arange(N) % 3
    y = keras.utils.to_categorical(labels, 3).astype("float32")

    def items(part: str) -> tuple[tuple[str, int], ...]:
        return tuple((f"c{label}/{part}{i}.jpg", int(label)) for i, label in enumerate(labels))

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    split = Split(classes=("c0", "c1", "c2"), train=items("t"), val=items("v"), test=items("e"))
    return Datasets(split=split, train=data, val=data, test=data, steps_per_epoch=STEPS)


def model(exp: Experiment) -> keras.Model:
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    compile_model(m, exp, 3)
    return m


def new_state(exp: Experiment) -> TrainState:
    return TrainState.begin(exp.train.epochs, Monitor("val_loss", "min"))


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def resume(run: RunDir, exp: Experiment) -> keras.Model:
    state = TrainState.load(run)
    restored = checkpoints.load_checkpoint(run.checkpoint("last"))
    compile_model(restored, exp, 3, optimizer=restored.optimizer)
    fit(restored, datasets(), exp, run, state)
    return restored


def iterations(path: Path) -> int:
    return int(checkpoints.load_checkpoint(path).optimizer.iterations)


def test_fit_completes_and_writes_the_final_model(tmp_path: Path) -> None:
    exp, run, rows = experiment(), RunDir(tmp_path), []
    state = fit(model(exp), datasets(), exp, run, new_state(exp), on_row=rows.append)
    assert (state.status, state.completed_epochs) == ("completed", 3)
    assert TrainState.load(run).status == "completed"
    assert iterations(run.final_model) == 3 * STEPS
    assert [format_row(row, 3).split()[1] for row in rows] == ["1/3", "2/3", "3/3"]
    assert rows == state.history  # told each committed epoch's row


def test_ctrl_c_during_an_epoch_settles_interrupted_then_resume_finishes(
    tmp_path: Path, monkeypatch
) -> None:
    exp, run = experiment(), RunDir(tmp_path)
    m = model(exp)
    monkeypatch.setattr("convtrain.train.fit.EpochSummaries", lambda log_dir: Interrupt(epoch=3))
    with pytest.raises(Interrupted) as info:
        fit(m, datasets(), exp, run, new_state(exp))
    assert info.value.state == TrainState.load(run)
    state = TrainState.load(run)
    assert (state.status, state.completed_epochs, state.message) == (
        "interrupted",
        2,
        "interrupted by the user after 2 of 3 epochs",
    )
    assert iterations(run.checkpoint("last")) == 2 * STEPS
    monkeypatch.undo()

    resume(run, exp)
    state = TrainState.load(run)
    assert (state.status, [r["epoch"] for r in state.history]) == ("completed", [1, 2, 3])
    assert iterations(run.checkpoint("last")) == 3 * STEPS


def test_ctrl_c_before_the_state_commit_discards_the_staged_epoch(
    tmp_path: Path, monkeypatch
) -> None:
    exp, run = experiment(), RunDir(tmp_path)
    saves = {"n": 0}
    real_save = TrainState.save

    def save(self: TrainState, run: RunDir) -> None:
        saves["n"] += 1
        if saves["n"] == 3:  # 1: start of fit, 2: epoch 1, 3: epoch 2 (already staged)
            raise KeyboardInterrupt
        real_save(self, run)

    monkeypatch.setattr(TrainState, "save", save)
    with pytest.raises(Interrupted):
        fit(model(exp), datasets(), exp, run, new_state(exp))
    state = TrainState.load(run)
    assert (state.status, state.completed_epochs) == ("interrupted", 1)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["best.keras", "last.keras"]
    assert iterations(run.checkpoint("last")) == STEPS
    assert run.history.read_text().count("\n") == 2  # header + epoch 1


def test_ctrl_c_after_the_state_commit_keeps_the_epoch(tmp_path: Path, monkeypatch) -> None:
    exp, run = experiment(), RunDir(tmp_path)
    calls = {"n": 0}
    real_recover = checkpoints.recover

    def recover(run: RunDir, completed: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2: state.json written, checkpoints not yet promoted
            raise KeyboardInterrupt
        real_recover(run, completed)

    monkeypatch.setattr(checkpoints, "recover", recover)
    with pytest.raises(Interrupted):
        fit(model(exp), datasets(), exp, run, new_state(exp))
    state = TrainState.load(run)
    assert (state.status, state.completed_epochs) == ("interrupted", 2)
    assert iterations(run.checkpoint("last")) == 2 * STEPS
    assert run.history.read_text().count("\n") == 3


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    exp, run = experiment(), RunDir(tmp_path)
    m = model(exp)

    class PoisonAfterEpoch1(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                m.layers[-1].kernel.assign(np.full((m.layers[-1].kernel.shape), np.nan, "float32"))

    monkeypatch.setattr("convtrain.train.fit.EpochSummaries", lambda log_dir: PoisonAfterEpoch1())
    with pytest.raises(ConvtrainError) as info:
        fit(m, datasets(), exp, run, new_state(exp))
    message = str(info.value)
    assert message.startswith(
        "training diverged: the loss became nan at epoch 2, batch 1 (learning rate 0.001); "
    )
    assert f"the last good checkpoint is {run.checkpoint('last')} (epoch 1)" in message
    state = TrainState.load(run)
    assert (state.status, state.completed_epochs, state.message) == ("failed", 1, message)
    assert np.isfinite(checkpoints.load_checkpoint(run.checkpoint("last")).get_weights()[-2]).all()


def test_balanced_class_weights_are_sklearn_style() -> None:
    weights = balanced_class_weights([0, 0, 0, 1, 2, 2])
    assert weights == pytest.approx({0: 6 / 9, 1: 2.0, 2: 1.0})


def test_compile_model_reads_the_config() -> None:
    exp = experiment(
        label_smoothing=0.1, jit_compile=False, optimizer={"type": "sgd", "learning_rate": 0.05}
    )
    m = model(exp)
    assert m.loss.label_smoothing == pytest.approx(0.1)
    assert type(m.optimizer).__name__ == "SGD"
    m.fit(datasets().train, epochs=1, verbose=0)
    top_k = [metric for metric in m.metrics[-1].metrics if metric.name == "top_k"]
    assert top_k and top_k[0]._fn_kwargs["k"] == 3  # eval.top_k 5, but only 3 classes


def test_keras_session_sets_and_restores_the_dtype_policy() -> None:
    before = keras.mixed_precision.global_policy().name
    with keras_session(experiment(mixed_precision="bfloat16"), seed=1):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before


def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch
) -> None:
    # Unshuffled data and no dropout: the only state is weights, optimizer moments and the rate.
    exp = experiment(epochs=4, schedule={"type": "cosine", "warmup_epochs": 1})
    whole = model(exp)
    fit(
        whole,
        datasets(),
        exp,
        RunDir(tmp_path / "a"),
        new_state(exp),
    )

    run = RunDir(tmp_path / "b")
    monkeypatch.setattr("convtrain.train.fit.EpochSummaries", lambda log_dir: Interrupt(epoch=3))
    with pytest.raises(Interrupted):
        fit(model(exp), datasets(), exp, run, new_state(exp))
    monkeypatch.undo()
    resumed = resume(run, exp)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    rates = [r["lr"] for r in TrainState.load(run).history]
    assert rates == [r["lr"] for r in TrainState.load(RunDir(tmp_path / "a")).history]


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("auto", "_DefaultDistributionStrategy"),
        ("one_device", "OneDeviceStrategy"),
        ("mirrored", "MirroredStrategy"),
    ],
)
def test_keras_session_enters_the_distribution_strategy(name: str, cls: str) -> None:
    exp = Experiment.model_validate(
        {**experiment().model_dump(mode="json"), "distribute": {"strategy": name}}
    )
    with keras_session(exp, seed=1):
        assert type(tf.distribute.get_strategy()).__name__ == cls
    assert not tf.distribute.has_strategy()
