"""The layout of a run directory, shared by train, evaluate, predict and resume.

runs/<name>-<YYYYmmdd-HHMMSS>/
  config.yaml            the fully resolved config
  split.json             class names and the file lists actually used
  environment.json       versions, seed, devices, command line
  state.json             status, completed epochs, best epoch and value
  history.csv            one row per completed epoch
  checkpoints/last.keras checkpoints/best.keras   (with optimizer state)
  tensorboard/
  model.keras            the final model
  reports/  plots/       written by evaluate
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from convtrain.errors import ConvtrainError
from convtrain.io import write_failure
from convtrain.safeload import read_json


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def environment(self) -> Path:
        return self.path / "environment.json"

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str) -> Path:
        return self.checkpoints / f"{which}.keras"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def final_model(self) -> Path:
        return self.path / "model.keras"

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> RunDir:
        """A new, empty run directory; never reuses (and so never overwrites) an existing one."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(runs_dir) / f"{name}-{stamp}"
        path, n = base, 1
        while True:
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                n += 1
                path = base.with_name(f"{base.name}-{n}")
            except OSError as exc:  # a full disk, a read-only or unwritable runs folder
                raise write_failure(path, exc) from None
        return cls(path)

    @classmethod
    def open(cls, path: str | Path, need: tuple[str, ...] = ("config", "split")) -> RunDir:
        """An existing run directory, checked to hold what the caller needs (attribute names)."""
        p = Path(path)
        if not p.exists():
            raise ConvtrainError(f"{p}: no such run directory")
        if not p.is_dir():
            raise ConvtrainError(f"{p}: expected a run directory, received a file")
        run = cls(p)
        if not run.config.is_file() and not run.state.is_file():
            raise ConvtrainError(
                f"{p}: not a convtrain run directory (expected config.yaml and state.json, as "
                f"written by `convtrain train`)"
            )
        for item in need:
            target = getattr(run, item) if item != "checkpoint" else run.checkpoints
            if not target.exists():
                raise ConvtrainError(
                    f"{p}: incomplete run directory: {target.relative_to(p)} is missing"
                )
        return run

    def read_json(self, path: Path) -> Any:
        try:
            return read_json(path)  # within the size and depth budget
        except FileNotFoundError:
            raise ConvtrainError(f"{path}: missing from the run directory") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConvtrainError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from None
