"""The training state kept in state.json, and history.csv derived from it.

state.json is the single source of truth for a run's progress: it holds every completed epoch's
row, so history.csv is rewritten from it (never appended to) and a resumed run cannot duplicate
or lose an epoch. Only committed through convtrain.io's atomic writes.
"""

from __future__ import annotations

import csv
import io
import math
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from convtrain.config.schema import EarlyStopping
from convtrain.errors import ConvtrainError
from convtrain.io import atomic_write_json, atomic_write_text
from convtrain.rundir import RunDir
from convtrain.train.optim import PlateauState

STATUSES = ("running", "interrupted", "failed", "completed")

# The evaluator's learning curves read these by name; top-k columns come last.
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "epoch_time",
    "images_per_s",
    "top_k",
    "val_top_k",
)

Row = dict[str, float | int | None]


@dataclass(frozen=True)
class Monitor:
    """The metric choosing the best checkpoint (and driving early stopping and plateau)."""

    name: str
    mode: str  # "max" or "min"

    @classmethod
    def resolve(cls, requested: str, has_val: bool) -> tuple[Monitor, str | None]:
        """The monitor to use, and a note when a val_* metric falls back to the training one."""
        name, note = requested, None
        if requested.startswith("val_") and not has_val:
            name = requested.removeprefix("val_")
            note = (
                f"note: train.monitor is {requested} but the split has no validation images; "
                f"monitoring the training {name} instead"
            )
        return cls(name, "min" if name.endswith("loss") else "max"), note

    def better(self, value: float, than: float | None, min_delta: float = 0.0) -> bool:
        if than is None:
            return True
        return value > than + min_delta if self.mode == "max" else value < than - min_delta


@dataclass
class TrainState:
    status: str
    epochs: int
    monitor: Monitor
    completed_epochs: int = 0
    best_epoch: int | None = None  # 1-based, as in history.csv
    best_value: float | None = None
    stopped_early: bool = False
    plateau: PlateauState | None = None
    history: list[Row] = field(default_factory=list)
    message: str | None = None
    # The process that last wrote the state: a run still training is not resumed twice.
    owner: dict[str, Any] | None = None

    def record(self, row: Row) -> bool:
        """Add a completed epoch's row; True when it is the new best epoch."""
        if row["epoch"] != self.completed_epochs + 1:
            raise ValueError(f"expected epoch {self.completed_epochs + 1}, received {row['epoch']}")
        self.history.append(row)
        self.completed_epochs = int(row["epoch"])
        value = row.get(self.monitor.name)
        if value is None or not math.isfinite(value):
            return False
        if self.monitor.better(value, self.best_value):
            self.best_epoch, self.best_value = self.completed_epochs, float(value)
            return True
        return False

    def early_stop_due(self, rule: EarlyStopping | None) -> bool:
        """Keras's EarlyStopping rule, replayed over the whole history so resume needs no state."""
        if rule is None:
            return False
        best, wait = None, 0
        for row in self.history:
            value = row.get(self.monitor.name)
            if value is not None and self.monitor.better(value, best, rule.min_delta):
                best, wait = value, 0
            else:
                wait += 1
        return wait >= rule.patience

    # --- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "epochs": self.epochs,
            "completed_epochs": self.completed_epochs,
            "monitor": self.monitor.name,
            "mode": self.monitor.mode,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "stopped_early": self.stopped_early,
            "plateau": None if self.plateau is None else self.plateau.to_json(),
            "message": self.message,
            "owner": {
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "started": (_proc_stat(os.getpid()) or (None, None))[1],
            },
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "history": self.history,
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> TrainState:
        def bad(what: str, got: Any) -> ConvtrainError:
            return ConvtrainError(f"{source}: {what}: expected {got}")

        if not isinstance(data, dict):
            raise ConvtrainError(
                f"{source}: expected a JSON object, received {type(data).__name__}"
            )
        try:
            status = data["status"]
            epochs, completed = data["epochs"], data["completed_epochs"]
            monitor = Monitor(str(data["monitor"]), str(data["mode"]))
            history = data["history"]
        except KeyError as exc:
            raise ConvtrainError(f"{source}: missing key {exc.args[0]!r}") from None
        if status not in STATUSES:
            raise bad("status", f"one of {', '.join(STATUSES)}, received {status!r}")
        if (
            not isinstance(epochs, int)
            or not isinstance(completed, int)
            or not 0 <= completed <= epochs
        ):
            raise bad(
                "completed_epochs", f"an integer in 0..epochs, received {completed!r} of {epochs!r}"
            )
        rows = isinstance(history, list) and all(isinstance(r, dict) for r in history)
        if not rows or [r.get("epoch") for r in history] != list(range(1, completed + 1)):
            raise bad("history", f"one row per completed epoch 1..{completed}")
        plateau = data.get("plateau")
        return cls(
            status=status,
            epochs=epochs,
            monitor=monitor,
            completed_epochs=completed,
            best_epoch=data.get("best_epoch"),
            best_value=data.get("best_value"),
            stopped_early=bool(data.get("stopped_early", False)),
            plateau=None if plateau is None else PlateauState.from_json(plateau, source),
            history=history,
            message=data.get("message"),
            owner=data.get("owner") if isinstance(data.get("owner"), dict) else None,
        )

    def alive_elsewhere(self) -> int | None:
        """The pid of another live process on this host still training the run, if any."""
        owner = self.owner or {}
        pid = owner.get("pid")
        if self.status != "running" or owner.get("hostname") != socket.gethostname():
            return None
        if not isinstance(pid, int) or pid == os.getpid():
            return None
        stat = _proc_stat(pid)
        if stat is not None:
            state, started = stat
            # A zombie (killed, not yet reaped: common in containers) is not training, and a
            # pid with another start time is a new process that reused the number.
            if state in ("Z", "X") or (owner.get("started") and started != owner["started"]):
                return None
            return pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid  # exists, owned by another user
        return pid

    def save(self, run: RunDir) -> None:
        atomic_write_json(run.state, self.to_json())

    @classmethod
    def load(cls, run: RunDir) -> TrainState:
        return cls.from_json(run.read_json(run.state), str(run.state))


def history_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})
    return buf.getvalue()


def write_history(run: RunDir, state: TrainState) -> None:
    atomic_write_text(run.history, history_csv(state.history))


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from Linux's /proc; None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces
    return fields[0], fields[19]
