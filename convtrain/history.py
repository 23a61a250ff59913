"""history.csv: one row per completed epoch, written from state.json and read as typed columns.

The trainer rewrites the whole file from state.json after every epoch (never appends), so it
cannot hold an epoch twice; the evaluator's learning curves and `compare` read it back here.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtrain.errors import ConvtrainError

# The learning curves read these by name; top-k columns come last.
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

# A metric's better direction; `monitor` falls back to the training metric without validation.
_MODE = {"val_accuracy": max, "val_loss": min, "accuracy": max, "loss": min}
_FALLBACK = {"val_accuracy": "accuracy", "val_loss": "loss"}


def history_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})
    return buf.getvalue()


@dataclass(frozen=True)
class History:
    epochs: np.ndarray  # int [E], 1-based as written by the trainer
    columns: dict[str, np.ndarray]  # float [E] per column; NaN where a value is absent

    def has(self, name: str) -> bool:
        return name in self.columns and bool(np.isfinite(self.columns[name]).any())

    def column(self, name: str) -> np.ndarray:
        """The column's values, NaN throughout when the file has no such column."""
        return self.columns.get(name, np.full(len(self.epochs), math.nan))

    def best_epoch(self, monitor: str) -> tuple[int, str] | None:
        """(epoch, metric actually used), or None when no epoch has the metric."""
        name = monitor if self.has(monitor) else _FALLBACK.get(monitor, monitor)
        if not self.has(name):
            return None
        values = self.columns[name]
        finite = [i for i in range(len(values)) if np.isfinite(values[i])]
        best = _MODE[name](finite, key=lambda i: values[i])
        return int(self.epochs[best]), name


def _number(text: str | None, path: Path, line: int, column: str) -> float:
    if text is None or text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ConvtrainError(
            f"{path}: line {line}, column {column}: expected a number, received {text!r}"
        ) from None


def read_history(path: Path) -> History | None:
    """The history of a run; None when the file is absent or has no epoch yet."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConvtrainError(
            f"{path}: expected a CSV file, received unreadable text ({exc})"
        ) from None
    if not rows:
        return None
    if "epoch" not in rows[0]:
        raise ConvtrainError(
            f"{path}: expected a CSV with an 'epoch' column, received columns {list(rows[0])}"
        )
    names = [n for n in rows[0] if n and n != "epoch"]
    epochs, columns = [], {n: [] for n in names}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        epoch = _number(row.get("epoch"), path, line, "epoch")
        if not (epoch >= 1 and epoch == int(epoch)):
            raise ConvtrainError(
                f"{path}: line {line}, column epoch: expected an epoch number >= 1, received "
                f"{row.get('epoch')!r}"
            )
        epochs.append(int(epoch))
        for name in names:
            columns[name].append(_number(row.get(name), path, line, name))
    return History(epochs=np.array(epochs), columns={n: np.array(v) for n, v in columns.items()})
