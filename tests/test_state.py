"""state.json (the training state) and history.csv derived from it."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from convtrain.config.schema import EarlyStopping
from convtrain.errors import ConvtrainError
from convtrain.rundir import RunDir
from convtrain.train.optim import PlateauState
from convtrain.train.state import HISTORY_COLUMNS, Monitor, TrainState, history_csv, write_history


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
    state = TrainState(status="running", epochs=4, monitor=Monitor("val_loss", "min"))
    assert state.record(row(1, val_loss=0.9)) is True
    assert state.record(row(2, val_loss=0.5)) is True
    assert state.record(row(3, val_loss=0.7)) is False
    assert (state.completed_epochs, state.best_epoch, state.best_value) == (3, 2, 0.5)
    with pytest.raises(ValueError, match="expected epoch 4, received 2"):
        state.record(row(2, val_loss=0.1))


def test_early_stopping_is_replayed_from_the_history() -> None:
    rule = EarlyStopping(patience=2, min_delta=0.05)
    state = TrainState(status="running", epochs=10, monitor=Monitor("accuracy", "max"))
    due = []
    for acc in [0.5, 0.6, 0.63, 0.64, 0.9, 0.91, 0.92]:
        state.record(row(len(state.history) + 1, accuracy=acc))
        due.append(state.early_stop_due(rule))
    # 0.63 and 0.64 do not beat 0.6 by min_delta: stop due after the second of them.
    assert due == [False, False, False, True, False, False, True]
    assert state.early_stop_due(None) is False


def test_json_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    state = TrainState(
        status="running", epochs=3, monitor=Monitor("loss", "min"), plateau=PlateauState(lr=0.1)
    )
    state.record(row(1))
    state.record(row(2))
    state.status = "interrupted"
    state.save(run)
    loaded = TrainState.load(run)
    assert loaded.owner is not None
    assert {k: loaded.owner[k] for k in ("hostname", "pid")} == {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
    loaded.owner = None
    assert loaded == state
    data = json.loads(run.state.read_text())
    assert (
        data["status"] == "interrupted"
        and data["completed_epochs"] == 2
        and data["best_epoch"] == 2
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object, received list"),
        ({"status": "running"}, "missing key 'epochs'"),
        (
            {
                "status": "done",
                "epochs": 3,
                "completed_epochs": 1,
                "monitor": "loss",
                "mode": "min",
                "history": [],
            },
            "status: expected one of running, interrupted, failed, completed, received 'done'",
        ),
        (
            {
                "status": "running",
                "epochs": 3,
                "completed_epochs": 5,
                "monitor": "loss",
                "mode": "min",
                "history": [],
            },
            "completed_epochs: expected an integer in 0..epochs, received 5 of 3",
        ),
        (
            {
                "status": "running",
                "epochs": 3,
                "completed_epochs": 2,
                "monitor": "loss",
                "mode": "min",
                "history": [{"epoch": 1}],
            },
            "history: expected one row per completed epoch 1..2",
        ),
    ],
)
def test_malformed_state_names_the_file(data: object, message: str) -> None:
    with pytest.raises(ConvtrainError) as info:
        TrainState.from_json(data, "runs/x/state.json")
    assert str(info.value) == f"runs/x/state.json: {message}"


def test_unreadable_state_is_one_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.state.write_text('{"status": "runn')
    with pytest.raises(ConvtrainError, match=r"state.json: unreadable \(JSONDecodeError"):
        TrainState.load(run)


def test_history_csv_has_one_row_per_epoch_and_blank_missing_values(tmp_path: Path) -> None:
    state = TrainState(status="running", epochs=2, monitor=Monitor("loss", "min"))
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


def test_alive_elsewhere_finds_a_live_training_process_on_this_host() -> None:
    here = socket.gethostname()
    state = TrainState(status="running", epochs=3, monitor=Monitor("loss", "min"))
    live = subprocess.Popen(["sleep", "30"])
    try:
        state.owner = {"hostname": here, "pid": live.pid}
        assert state.alive_elsewhere() == live.pid
        state.status = "interrupted"
        assert state.alive_elsewhere() is None
        state.status = "running"
        state.owner = {"hostname": here + "-other", "pid": live.pid}
        assert state.alive_elsewhere() is None  # cannot tell for another machine
    finally:
        live.kill()
        live.wait()
    state.owner = {"hostname": here, "pid": live.pid}
    assert state.alive_elsewhere() is None  # killed: its run can be resumed
    state.owner = {"hostname": here, "pid": os.getpid()}
    assert state.alive_elsewhere() is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_but_unreaped_trainer_does_not_block_resume() -> None:
    """kill -9 of a trainer whose parent died too leaves a zombie where init does not reap
    (containers): that pid still answers kill(pid, 0) but trains nothing."""
    import signal
    import time

    parent = subprocess.Popen(
        ["bash", "-c", "sleep 60 & echo $!; wait"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.killpg(parent.pid, signal.SIGKILL)
    parent.wait()
    time.sleep(0.5)
    state = TrainState(status="running", epochs=3, monitor=Monitor("loss", "min"))
    state.owner = {"hostname": socket.gethostname(), "pid": child}
    assert state.alive_elsewhere() is None


def test_a_reused_pid_is_not_the_trainer() -> None:
    state = TrainState(status="running", epochs=3, monitor=Monitor("loss", "min"))
    live = subprocess.Popen(["sleep", "30"])
    try:
        state.owner = {"hostname": socket.gethostname(), "pid": live.pid, "started": "1"}
        assert state.alive_elsewhere() is None  # same number, another start time
    finally:
        live.kill()
        live.wait()
