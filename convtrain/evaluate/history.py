"""history.csv as typed columns, and the best epoch by the run's monitored metric."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtrain.errors import ConvtrainError

# A metric's better direction; `monitor` falls back to the training metric without validation.
_MODE = {"val_accuracy": max, "val_loss": min, "accuracy": max, "loss": min}
_FALLBACK = {"val_accuracy": "accuracy", "val_loss": "loss"}


@dataclass(frozen=True)
class History:
    epochs: np.ndarray  # int [E], 1-based as written by the trainer
    columns: dict[str, np.ndarray]  # float [E] per column; NaN where a value is absent

    def has(self, name: str) -> bool:
        return name in self.columns and bool(np.isfinite(self.columns[name]).any())

    def best_epoch(self, monitor: str) -> tuple[int, str] | None:
        """(epoch, metric actually used), or None when no epoch has the metric."""
        name = monitor if self.has(monitor) else _FALLBACK.get(monitor, monitor)
        if not self.has(name):
            return None
        values = self.columns[name]
        finite = [i for i in range(len(values)) if np.isfinite(values[i])]
        best = _MODE[name](finite, key=lambda i: values[i])
        return int(self.epochs[best]), name


def _number(text: str | None) -> float:
    if text is None or text.strip() == "":
        return math.nan
    return float(text)


def read_history(path: Path) -> History | None:
    """The history of a run; None when the file is absent or has no epoch yet."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConvtrainError(f"{path}: unreadable ({exc})") from None
    if not rows:
        return None
    if "epoch" not in rows[0]:
        raise ConvtrainError(
            f"{path}: expected a CSV with an 'epoch' column, received columns {list(rows[0])}"
        )
    names = [n for n in rows[0] if n and n != "epoch"]
    try:
        epochs = np.array([int(r["epoch"]) for r in rows])
        columns = {n: np.array([_number(r.get(n)) for r in rows]) for n in names}
    except (TypeError, ValueError) as exc:
        raise ConvtrainError(f"{path}: expected numbers in every column, {exc}") from None
    return History(epochs=epochs, columns=columns)
