"""The training state kept in state.json, and history.csv derived from it.

state.json is the single source of truth for a run's progress: it holds every completed epoch's
row, so history.csv is rewritten from it (never appended to) and a resumed run cannot duplicate
or lose an epoch. Only committed through convtrain.io's atomic writes.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field, model_validator

from convtrain.config.schema import EarlyStopping, PlateauSchedule
from convtrain.history import Row, history_csv
from convtrain.io import atomic_write_text
from convtrain.records import Record
from convtrain.rundir import RunDir

STATUSES = ("running", "interrupted", "failed", "completed")


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


class PlateauState(Record):
    """ReduceLROnPlateau's memory: the current rate, the best monitored value, epochs without gain."""

    lr: float
    best: float | None = None
    wait: int = Field(0, ge=0)

    def update(self, schedule: PlateauSchedule, value: float, mode: str) -> None:
        """Account for one finished epoch's monitored `value` ('max' or 'min' is better)."""
        improved = self.best is None or (value > self.best if mode == "max" else value < self.best)
        if improved:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= schedule.patience:
            self.lr = max(self.lr * schedule.factor, schedule.min_lr)
            self.wait = 0


class Owner(Record):
    """The process that last wrote the state (shown to whoever finds the run in use)."""

    hostname: str
    pid: int


class TrainState(Record):
    FILE = "state.json"

    status: Literal["running", "interrupted", "failed", "completed"]
    epochs: int = Field(ge=1)
    completed_epochs: int = Field(0, ge=0)
    monitor: str  # the monitored metric, named as in history.csv
    mode: Literal["max", "min"]
    best_epoch: int | None = None  # 1-based, as in history.csv
    best_value: float | None = None
    stopped_early: bool = False
    plateau: PlateauState | None = None
    message: str | None = None
    owner: Owner | None = None
    updated: str | None = None
    history: list[Row] = []

    @model_validator(mode="after")
    def _consistent(self) -> TrainState:
        if self.completed_epochs > self.epochs:
            raise ValueError(
                f"completed_epochs: expected an integer in 0..epochs, received "
                f"{self.completed_epochs} of {self.epochs}"
            )
        epochs = [row.get("epoch") for row in self.history]
        if epochs != list(range(1, self.completed_epochs + 1)):
            raise ValueError(
                f"history: expected one row per completed epoch 1..{self.completed_epochs}, "
                f"received epochs {epochs[:10]}{' ...' if len(epochs) > 10 else ''}"
            )
        return self

    @classmethod
    def begin(
        cls, epochs: int, monitor: Monitor, plateau: PlateauState | None = None
    ) -> TrainState:
        """The state of a run about to train its first epoch."""
        return cls(
            status="running",
            epochs=epochs,
            monitor=monitor.name,
            mode=monitor.mode,
            plateau=plateau,
        )

    @property
    def rule(self) -> Monitor:
        return Monitor(self.monitor, self.mode)

    def record(self, row: Row) -> bool:
        """Add a completed epoch's row; True when it is the new best epoch."""
        if row["epoch"] != self.completed_epochs + 1:
            raise ValueError(f"expected epoch {self.completed_epochs + 1}, received {row['epoch']}")
        self.history.append(row)
        self.completed_epochs = int(row["epoch"])
        value = row.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        if self.rule.better(value, self.best_value):
            self.best_epoch, self.best_value = self.completed_epochs, float(value)
            return True
        return False

    def early_stop_due(self, rule: EarlyStopping | None) -> bool:
        """Keras's EarlyStopping rule, replayed over the whole history so resume needs no state."""
        if rule is None:
            return False
        best, wait = None, 0
        for row in self.history:
            value = row.get(self.monitor)
            if value is not None and self.rule.better(value, best, rule.min_delta):
                best, wait = value, 0
            else:
                wait += 1
        return wait >= rule.patience

    def save(self, run: RunDir) -> None:
        self.owner = Owner(hostname=socket.gethostname(), pid=os.getpid())
        self.updated = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run.write(self)

    @classmethod
    def load(cls, run: RunDir) -> TrainState:
        return run.read(cls)


def write_history(run: RunDir, state: TrainState) -> None:
    atomic_write_text(run.history, history_csv(state.history))
