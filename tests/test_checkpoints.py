"""Checkpoints agree with state.json after a crash between any two steps of an epoch's commit."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from convtrain.errors import ConvtrainError
from convtrain.rundir import RunDir
from convtrain.train import checkpoints


def model_with(value: float) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer="adam", loss="mse")
    model.layers[0].kernel.assign(np.full((2, 1), value, dtype="float32"))
    return model


def kernel(path: Path) -> float:
    return float(checkpoints.load_checkpoint(path).layers[0].kernel.numpy()[0, 0])


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path)
    # Epoch 1 fully committed: last and best hold it.
    checkpoints.stage(run, model_with(1.0), 1, best=True)
    checkpoints.recover(run, 1)
    return run


def names(run: RunDir) -> list[str]:
    return sorted(p.name for p in run.checkpoints.iterdir())


def test_commit_leaves_only_last_and_best(run: RunDir) -> None:
    assert names(run) == ["best.keras", "last.keras"]
    assert kernel(run.checkpoint("last")) == kernel(run.checkpoint("best")) == 1.0


def test_crash_before_the_state_commit_discards_the_staged_epoch(run: RunDir) -> None:
    checkpoints.stage(run, model_with(2.0), 2, best=True)
    (run.checkpoints / ".last.abc.tmp.keras").write_bytes(b"torn")  # a save killed midway
    checkpoints.recover(run, completed=1)  # state.json still says 1 epoch
    assert names(run) == ["best.keras", "last.keras"]
    assert kernel(run.checkpoint("last")) == kernel(run.checkpoint("best")) == 1.0


def test_crash_after_the_state_commit_promotes_the_staged_epoch(run: RunDir) -> None:
    checkpoints.stage(run, model_with(2.0), 2, best=False)
    checkpoints.recover(run, completed=2)  # state.json already says 2 epochs
    assert names(run) == ["best.keras", "last.keras"]
    assert kernel(run.checkpoint("last")) == 2.0
    assert kernel(run.checkpoint("best")) == 1.0


def test_optimizer_state_survives(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    model = model_with(0.5)
    model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=2, batch_size=4, verbose=0)
    checkpoints.stage(run, model, 2, best=False)
    checkpoints.recover(run, 2)
    restored = checkpoints.load_checkpoint(run.checkpoint("last"))
    assert int(restored.optimizer.iterations) == 4
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))


def test_truncated_checkpoint_is_a_one_line_error(run: RunDir) -> None:
    path = run.checkpoint("last")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ConvtrainError) as info:
        checkpoints.load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(
        f"{path}: cannot load the checkpoint (expected a complete .keras file"
    )
    assert "\n" not in message


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConvtrainError, match=r"last.keras: missing from the run directory$"):
        checkpoints.load_checkpoint(RunDir(tmp_path).checkpoint("last"))
