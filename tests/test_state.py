"""state.json (the training state) and history.csv derived from it."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from convtrain.config.schema import EarlyStopping
from convtrain.errors import ConvtrainError
from convtrain.history import HISTORY_COLUMNS, history_csv
from convtrain.rundir import RunDir
from convtrain.train.state import Monitor, PlateauState, TrainState, write_history


def row(epoch: int, **metrics: float) -> dict:
    return {
        "epoch": epoch,
        "loss": 1.0 / epoch,
        "lr": 0.01,
        "epoch_time": 1.0,
        "images_per_s": 10.0,
        **metrics,
    }


def test_monitor_falls_back_to_the_training_metric_without_val_split() -> None:
    assert Monitor.resolve("val_accuracy", has_val=True) == (Monitor("val_accuracy", "max"), None)
    monitor, note = Monitor.resolve("val_loss", has_val=False)
    assert monitor == Monitor("loss", "min")
    assert note == (
        "note: train.monitor is val_loss but the split has no validation images; "
        "monitoring the training loss instead"
    )


def test_record_tracks_the_best_epoch_by_mode() -> None:
    state = TrainState.begin(4, Monitor("val_loss", "min"))
    assert state.record(row(1, val_loss=0.9)) is True
    assert state.record(row(2, val_loss=0.5)) is True
    assert state.record(row(3, val_loss=0.7)) is False
    assert (state.completed_epochs, state.best_epoch, state.best_value) == (3, 2, 0.5)
    with pytest.raises(ValueError, match="expected epoch 4, received 2"):
        state.record(row(2, val_loss=0.1))


def test_early_stopping_is_replayed_from_the_history() -> None:
    rule = EarlyStopping(patience=2, min_delta=0.05)
    state = TrainState.begin(10, Monitor("accuracy", "max"))
    due = []
    for acc in [0.5, 0.6, 0.63, 0.64, 0.9, 0.91, 0.92]:
        state.record(row(len(state.history) + 1, accuracy=acc))
        due.append(state.early_stop_due(rule))
    # 0.63 and 0.64 do not beat 0.6 by min_delta: stop due after the second of them.
    assert due == [False, False, False, True, False, False, True]
    assert state.early_stop_due(None) is False


def test_json_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    state = TrainState.begin(3, Monitor("loss", "min"), plateau=PlateauState(lr=0.1))
    state.record(row(1))
    state.record(row(2))
    state.status = "interrupted"
    state.save(run)
    loaded = TrainState.load(run)
    assert loaded.owner is not None
    assert (loaded.owner.hostname, loaded.owner.pid) == (socket.gethostname(), os.getpid())
    assert loaded == state
    data = json.loads(run.state.read_text())
    assert (
        data["status"] == "interrupted"
        and data["completed_epochs"] == 2
        and data["best_epoch"] == 2
    )


GOOD = {"status": "running", "epochs": 3, "completed_epochs": 0, "monitor": "loss", "mode": "min"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object, received list"),
        ({"status": "running"}, "expected the keys epochs, monitor, mode, received none"),
        (
            {**GOOD, "status": "done"},
            "status: expected one of running, interrupted, failed, completed, received 'done'",
        ),
        ({**GOOD, "epochs": "3"}, "epochs: expected an integer, received '3'"),
        (
            {**GOOD, "completed_epochs": 5},
            "completed_epochs: expected an integer in 0..epochs, received 5 of 3",
        ),
        (
            {**GOOD, "completed_epochs": 2, "history": [{"epoch": 1}]},
            "history: expected one row per completed epoch 1..2, received epochs [1]",
        ),
        (
            {**GOOD, "completed_epochs": 1, "history": [{"epoch": 1, "loss": "low"}]},
            "history[0].loss: expected a number or an integer, received 'low'",
        ),
        ({**GOOD, "plateau": {"lr": "fast"}}, "plateau.lr: expected a number, received 'fast'"),
    ],
)
def test_malformed_state_names_the_file_and_the_field(data: object, message: str) -> None:
    with pytest.raises(ConvtrainError) as info:
        TrainState.parse(json.dumps(data), "runs/x/state.json")
    assert str(info.value) == f"runs/x/state.json: {message}"


def test_unreadable_state_is_one_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.state.write_text('{"status": "runn')
    with pytest.raises(ConvtrainError) as info:
        TrainState.load(run)
    assert str(info.value).startswith(f"{run.state}: expected JSON, received invalid text (")
    assert "\n" not in str(info.value)


def test_history_csv_has_one_row_per_epoch_and_blank_missing_values(tmp_path: Path) -> None:
    state = TrainState.begin(2, Monitor("loss", "min"))
    state.record(row(1, accuracy=0.5))
    state.record(row(2, accuracy=0.75, val_loss=0.3))
    write_history(RunDir(tmp_path), state)
    with open(tmp_path / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == HISTORY_COLUMNS
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["val_loss"] == "" and rows[1]["val_loss"] == "0.3"
    assert rows[1]["accuracy"] == "0.75"
    assert history_csv([]) == ",".join(HISTORY_COLUMNS) + "\n"


HOLD = (
    "import sys; from convtrain.rundir import RunDir\n"
    "with RunDir(sys.argv[1]).owned():\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


def test_a_run_held_by_a_live_process_is_refused_and_freed_when_it_dies(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ConvtrainError) as info, run.owned():
            pass
        assert str(info.value) == (
            f"{tmp_path}: still being trained by process {holder.pid} on this machine; wait for "
            f"it, or stop it (Ctrl-C or kill {holder.pid}) before resuming"
        )
        holder.send_signal(signal.SIGKILL)
        assert holder.wait() == -signal.SIGKILL
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the lock with the process: no pid to check, no stale file to remove.
    with run.owned():
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_run_is_held_once_by_its_own_process_too(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with run.owned():
        with pytest.raises(ConvtrainError, match="still being trained by process"), run.owned():
            pass
    with run.owned():  # released at the end of the block
        pass
