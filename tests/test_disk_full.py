"""A full disk or an unwritable folder, met by every writer: one line, exit 1, nothing lost.

Two ways: a fault-injecting disk (Python's file writes and posix_fallocate fail with ENOSPC once
a byte budget is spent) shows that each writer goes through convtrain.io's one handler and
leaves the previous file as it was; a real, small tmpfs shows the whole command doing so.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import make_dataset

from convtrain.config.schema import DataConfig
from convtrain.data.cache import open_cache
from convtrain.data.extract import extract_archive
from convtrain.data.index import index_dataset
from convtrain.data.split import Split
from convtrain.data.verify import MARKER_NAME, Marker
from convtrain.errors import WriteFailed, human_size
from convtrain.evaluate.metrics import Predictions, compute_metrics, confused_pairs
from convtrain.evaluate.reports import metrics_summary, write_reports
from convtrain.io import atomic_write_text
from convtrain.plots.save import save_figure
from convtrain.rundir import RunDir
from convtrain.train.state import Monitor, TrainState, write_history

# --- a disk that fills up --------------------------------------------------------------------


class Disk:
    """Bytes left before every write fails with ENOSPC (None: unlimited)."""

    def __init__(self) -> None:
        self.left: int | None = None
        self.failures = 0

    def take(self, n: int) -> int:
        if self.left is None:
            return n
        allowed = min(n, self.left)
        self.left -= allowed
        if allowed < n:
            self.failures += 1
        return allowed


class FaultyFile:
    """A file opened for writing on the Disk: a write past its budget writes what fits, then fails."""

    def __init__(self, raw: Any, disk: Disk) -> None:
        self._raw, self._disk = raw, disk

    def write(self, data: Any) -> int:
        n = len(data.encode()) if isinstance(data, str) else memoryview(data).nbytes
        allowed = self._disk.take(n)
        if allowed < n:
            if allowed and not isinstance(data, str):
                self._raw.write(memoryview(data).cast("B")[:allowed])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._raw.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._raw)

    def __enter__(self) -> FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    """Every Python-level file write, and posix_fallocate, draws on one Disk."""
    disk = Disk()
    real_open, real_fallocate = io.open, os.posix_fallocate

    def faulty_open(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        fh = real_open(file, mode, *args, **kw)
        return FaultyFile(fh, disk) if any(c in mode for c in "wax+") else fh

    def faulty_fallocate(fd: int, offset: int, length: int) -> None:
        if disk.take(length) < length:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fallocate(fd, offset, length)

    monkeypatch.setattr(builtins, "open", faulty_open)
    monkeypatch.setattr(io, "open", faulty_open)
    monkeypatch.setattr(tarfile, "bltn_open", faulty_open)
    monkeypatch.setattr(os, "posix_fallocate", faulty_fallocate)
    monkeypatch.setattr(shutil, "_USE_CP_SENDFILE", False)  # copies through write(), not sendfile
    return disk


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def fails_cleanly(write: Callable[[], Any], disk: Disk, budget: int, folder: Path) -> WriteFailed:
    """Run `write` with `budget` bytes left: WriteFailed, exit 1, and `folder` as it was."""
    before = snapshot(folder)
    disk.left = budget
    with pytest.raises(WriteFailed) as info:
        write()
    disk.left = None
    assert disk.failures, "the write never reached the disk"
    assert info.value.exit_code == 1
    (line,) = info.value.lines()
    assert (
        "cannot write it (no space left on device: " in line and " free); free some space" in line
    )
    assert snapshot(folder) == before  # the previous files intact, no temporary file left
    return info.value


# --- every writer, on the fault-injecting disk -----------------------------------------------


def a_state(epochs: int) -> TrainState:
    state = TrainState.begin(5, Monitor("loss", "min"))
    for epoch in range(1, epochs + 1):
        state.record({"epoch": epoch, "loss": 1.0 / epoch, "lr": 0.1})
    return state


@pytest.mark.parametrize("budget", [0, 10, 100])
def test_state_and_history(tmp_path: Path, disk: Disk, budget: int) -> None:
    run = RunDir(tmp_path)
    a_state(1).save(run)
    write_history(run, a_state(1))
    three = a_state(3)
    error = fails_cleanly(lambda: three.save(run), disk, budget, tmp_path)
    assert error.path == run.state
    assert f"needs about {human_size(len(three.dumps()))}" in str(error)
    error = fails_cleanly(lambda: write_history(run, a_state(3)), disk, budget, tmp_path)
    assert error.path == run.history
    assert json.loads(run.state.read_text())["completed_epochs"] == 1


def test_split(tmp_path: Path, disk: Disk) -> None:
    split = Split(classes=("a", "b"), train=(("a/1.jpg", 0),), val=(), test=(("b/1.jpg", 1),))
    split.write(tmp_path / "split.json")
    many = tuple((f"a/{i}.jpg", 0) for i in range(50))
    bigger = Split(classes=("a", "b"), train=many, val=(), test=(("b/1.jpg", 1),))
    error = fails_cleanly(lambda: bigger.write(tmp_path / "split.json"), disk, 100, tmp_path)
    assert error.path == tmp_path / "split.json"


def test_reports(tmp_path: Path, disk: Disk) -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    pred = Predictions(("a", "b"), np.array([0, 1, 1]), probs)
    metrics = compute_metrics(pred, 1)
    files = ["a/1.jpg", "b/1.jpg", "b/2.jpg"]

    def write() -> None:
        summary = metrics_summary(metrics, "best", "test")
        write_reports(tmp_path / "reports", metrics, confused_pairs(metrics), pred, files, summary)

    write()
    error = fails_cleanly(write, disk, 300, tmp_path)
    assert error.path.parent == tmp_path / "reports"


def test_plot(tmp_path: Path, disk: Disk) -> None:
    def plot() -> None:
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        save_figure(fig, tmp_path / "plots" / "curve.png")

    plot()
    error = fails_cleanly(plot, disk, 1000, tmp_path)
    assert error.path == tmp_path / "plots" / "curve.png"


def test_sweep_record_and_dataset_marker(tmp_path: Path, disk: Disk) -> None:
    record = tmp_path / "study.json"
    atomic_write_text(record, '{"study": "old"}\n')
    error = fails_cleanly(
        lambda: atomic_write_text(record, '{"study": "new"}\n' * 20), disk, 50, tmp_path
    )
    assert error.path == record
    marker = Marker.create("somewhere", None, False, {"a": 3})
    marker.write(tmp_path / MARKER_NAME)
    error = fails_cleanly(lambda: marker.write(tmp_path / MARKER_NAME), disk, 20, tmp_path)
    assert error.path == tmp_path / MARKER_NAME


@pytest.mark.parametrize("budget", [0, 5000, "last+100"])
def test_checkpoint(tmp_path: Path, disk: Disk, budget: int | str) -> None:
    import keras

    from convtrain.train import checkpoints

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    run = RunDir(tmp_path)
    checkpoints.stage(run, model, 1, best=True)
    checkpoints.recover(run, 1)
    size = run.checkpoint("last").stat().st_size
    disk.left = 1 << 30  # what Keras writes for one checkpoint (more than its size: it seeks back)
    checkpoints.stage(run, model, 2, best=False)
    written, disk.left = (1 << 30) - disk.left, None
    checkpoints.recover(run, 1)
    left = written + 100 if budget == "last+100" else int(budget)
    # The last checkpoint fits in `last+100`: then the best one is what the disk refuses.
    which = "best" if budget == "last+100" else "last"
    before = snapshot(tmp_path)
    disk.left = left
    with pytest.raises(WriteFailed) as info:
        checkpoints.stage(run, model, 2, best=True)
    disk.left = None
    assert info.value.exit_code == 1
    assert info.value.path == run.checkpoint(which)
    assert f"needs about {human_size(size)}" in str(info.value)
    checkpoints.recover(run, 1)  # what `--resume` does with state.json still at epoch 1
    assert snapshot(tmp_path) == before


def test_image_cache(tmp_path: Path, disk: Disk) -> None:
    root = make_dataset(tmp_path / "ds", {"a": 4, "b": 4}, size_range=(20, 24))
    data = DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), image_size=16)
    open_cache(index_dataset(data), data)
    (root / "a" / "image_0001.jpg").write_bytes((root / "b" / "image_0001.jpg").read_bytes())
    os.utime(root / "a" / "image_0001.jpg", ns=(1, 1))  # changed: the cache is rebuilt
    error = fails_cleanly(
        lambda: open_cache(index_dataset(data), data), disk, 100, tmp_path / "cache"
    )
    assert "or point data.cache_dir or CONVTRAIN_CACHE_DIR at a writable folder" in str(error)
    assert f"needs about {human_size(8 * 16 * 16 * 3)}" in str(error)


def test_extraction(tmp_path: Path, disk: Disk) -> None:
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    archive = tmp_path / "ds.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root, arcname="101_ObjectCategories")
    staging = tmp_path / "staging"
    staging.mkdir()
    disk.left = 2000
    with pytest.raises(WriteFailed) as info:
        extract_archive(archive, "tar", staging)
    disk.left = None
    assert info.value.exit_code == 1
    assert str(info.value.path).startswith(str(staging / "101_ObjectCategories"))
    assert info.value.path.suffix == ".jpg"  # the file that did not fit, with its size
    with tarfile.open(archive) as tf:
        size = tf.getmember(str(info.value.path.relative_to(staging))).size
    assert f"needs about {human_size(size)}" in str(info.value)


def test_an_unwritable_folder_is_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kw: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(WriteFailed) as info:
        RunDir.create(tmp_path / "runs", "x")
    assert info.value.exit_code == 1
    (line,) = info.value.lines()
    assert line.startswith(f"{tmp_path / 'runs'}/x-")
    assert line.endswith(
        f": cannot write it (permission denied); make {tmp_path / 'runs'} writable for this user, "
        "or write somewhere else, then run the command again"
    )
    with pytest.raises(WriteFailed) as info:
        atomic_write_text(tmp_path / "sub" / "a.txt", "x")
    assert info.value.exit_code == 1 and "(permission denied)" in str(info.value)
