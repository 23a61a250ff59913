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

Its JSON files are typed records (convtrain.records), read and written through `read` and
`write`. A process training the run holds it with `owned`: an flock on the directory itself,
which the kernel releases when that process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from convtrain.errors import ConvtrainError
from convtrain.history import History, read_history
from convtrain.io import write_failure
from convtrain.records import Record

R = TypeVar("R", bound=Record)


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

    def file(self, record: type[Record]) -> Path:
        return self.path / record.FILE

    def read(self, record: type[R]) -> R:
        """The record's file, validated; one-line RecordError when missing or damaged."""
        return record.read(self.file(record))

    def write(self, record: Record) -> None:
        record.write(self.file(type(record)))

    def read_history(self) -> History | None:
        return read_history(self.history)

    @contextmanager
    def owned(self) -> Iterator[None]:
        """This process's hold on the run: refused while another live process holds it."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _flock_holder(fd)
                who, stop = (
                    (f"process {pid}", f" (Ctrl-C or kill {pid})")
                    if pid
                    else ("another process", "")
                )
                raise ConvtrainError(
                    f"{self.path}: still being trained by {who} on this machine; wait for it, "
                    f"or stop it{stop} before resuming"
                ) from None
            yield
        finally:
            os.close(fd)  # releases the lock


def _flock_holder(fd: int) -> int | None:
    """The pid holding an flock on the file behind `fd`, from Linux's /proc/locks."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146453 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
            return int(fields[4]) if fields[4].isdigit() else None
    return None
