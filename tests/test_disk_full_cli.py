"""Commands onto a real small disk (a tmpfs) that fills up, or is read-only.

Each ends with one error line naming the file and what it needed, exit code 1, no traceback;
what was committed stays valid, and the command asked for succeeds once there is room.
Needs root (or CAP_SYS_ADMIN) to mount; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from conftest import make_dataset, tiny_config

from convtrain.rundir import RunDir

pytestmark = pytest.mark.slow

Mount = Callable[[int], Path]


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """mount(size in KiB) -> a fresh tmpfs folder, unmounted at the end of the test."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and the mount command")
    mounted: list[Path] = []

    def mount(kib: int) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def convtrain(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def the_error(result: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a command that failed with exit code 1."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert line == result.stderr.splitlines()[-1]
    return line


def write_config(path: Path, layers: list | None = None, epochs: int = 2) -> Path:
    config = tiny_config("disk", 0, epochs)
    if layers is not None:
        config["model"]["layers"] = layers
    path.write_text(yaml.safe_dump(config))
    return path


SPACE = r"needs about [\d.,]+ (?:bytes|KiB|MiB), [\d.,]+ (?:bytes|KiB|MiB) free"


def test_training_onto_a_disk_that_fills_up_then_resume(
    tiny_data_env: dict[str, str], tmpfs: Mount, tmp_path: Path
) -> None:
    # A model whose checkpoint (weights and Adam's two slots, ~12 bytes a parameter) is
    # most of the disk: epoch 1 commits last and best (2 checkpoints), epoch 2's third does
    # not fit in 2.5.
    layers = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 256, "activation": "relu"},
    ]
    config = write_config(tmp_path / "full.yaml", layers)
    plan = convtrain(
        "inspect", str(config), "--format", "json", "--classes", "3", env=tiny_data_env
    )
    checkpoint = 12 * json.loads(plan.stdout)["totals"]["params"]
    disk = tmpfs(int(2.5 * checkpoint) // 1024)

    line = the_error(convtrain("train", str(config), "--runs-dir", str(disk), env=tiny_data_env))
    (run,) = [RunDir(p) for p in disk.iterdir()]
    assert re.fullmatch(
        rf"error: {run.checkpoints}/last\.keras: cannot write it \(no space left on device: "
        rf"{SPACE}\); free some space, then resume with: convtrain train --resume {run.path}",
        line,
    ), line
    state = json.loads(run.state.read_text())
    assert (state["status"], state["completed_epochs"]) == ("failed", 1)
    assert state["message"] == line.removeprefix("error: ")
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [
        "best.keras",
        "initial.keras",  # explain's change from initialisation, saved before epoch 1
        "last.keras",
    ]
    with zipfile.ZipFile(run.checkpoint("last")) as committed:
        assert committed.testzip() is None  # complete: the epoch-1 checkpoint

    remount(disk, "size=64m")
    resumed = convtrain("train", "--resume", str(run.path), env=tiny_data_env)
    assert resumed.returncode == 0, resumed.stderr
    state = json.loads(run.state.read_text())
    assert (state["status"], state["completed_epochs"]) == ("completed", 2)
    assert [row["epoch"] for row in state["history"]] == [1, 2]
    assert (run.reports / "metrics.json").is_file()


def test_an_evaluation_onto_a_full_disk_then_evaluate(
    tiny_data_env: dict[str, str], tmpfs: Mount, tmp_path: Path
) -> None:
    # Training needs ~150 KiB here, its reports and plots ~500 KiB more.
    disk = tmpfs(300)
    config = write_config(tmp_path / "tiny.yaml")
    line = the_error(convtrain("train", str(config), "--runs-dir", str(disk), env=tiny_data_env))
    (run,) = [RunDir(p) for p in disk.iterdir()]
    assert re.fullmatch(
        rf"error: {run.path}/\S+: cannot write it \(no space left on device: {SPACE}\); free "
        rf"some space, then evaluate the run with: convtrain evaluate {run.path}",
        line,
    ), line
    assert json.loads(run.state.read_text())["status"] == "completed"

    remount(disk, "size=64m")
    evaluated = convtrain("evaluate", str(run.path), env=tiny_data_env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (run.path / "report.html").is_file() and (run.plots / "learning_curves.png").is_file()


def test_a_read_only_runs_folder(
    tiny_data_env: dict[str, str], tmpfs: Mount, tmp_path: Path
) -> None:
    disk = tmpfs(1024)
    (disk / "runs").mkdir()
    remount(disk, "ro")
    config = write_config(tmp_path / "tiny.yaml")
    line = the_error(
        convtrain("train", str(config), "--runs-dir", str(disk / "runs"), env=tiny_data_env)
    )
    assert re.fullmatch(
        rf"error: {disk}/runs/disk-[\d-]+: cannot write it \(read-only file system\); {disk}/runs "
        r"is on a read-only file system: write somewhere else, then run the command again",
        line,
    ), line
    assert list((disk / "runs").iterdir()) == []


def test_a_fetch_onto_a_full_disk_changes_nothing(tmpfs: Mount, tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", {"alpha": 6, "beta": 6}, size_range=(60, 80))
    archive = tmp_path / "101_ObjectCategories.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root, arcname="101_ObjectCategories")
    disk = tmpfs(32)
    data_dir = disk / "data"
    result = convtrain(
        "data", "fetch", "--source", str(archive), "--data-dir", str(data_dir), env=dict(os.environ)
    )
    line = the_error(result)
    assert re.fullmatch(
        rf"error: {data_dir}/\.convtrain-staging-\w+/101_ObjectCategories/\w+/image_\d+\.jpg: "
        rf"cannot write it \(no space left on device: {SPACE}\); free some space, then run the "
        r"command again \(nothing was changed\)",
        line,
    ), line
    assert sorted(p.name for p in data_dir.iterdir()) == [".convtrain-fetch.lock"]


def test_an_image_cache_onto_a_full_disk_is_one_line_not_a_crash(
    tiny_data_env: dict[str, str], tmpfs: Mount, tmp_path: Path
) -> None:
    """A memory map written on a full disk kills the process (SIGBUS): the cache reserves first."""
    disk = tmpfs(16)
    config = write_config(tmp_path / "tiny.yaml")
    env = {**tiny_data_env, "CONVTRAIN_CACHE_DIR": str(disk / "cache")}
    line = the_error(convtrain("train", str(config), "--runs-dir", str(tmp_path / "runs"), env=env))
    assert re.fullmatch(
        rf"error: {disk}/cache/[\w.-]+: cannot write it \(no space left on device: {SPACE}\); "
        r"free some space, or point data.cache_dir or CONVTRAIN_CACHE_DIR at a writable folder "
        r"with room for [\d.,]+ \w+, then run the command again",
        line,
    ), line
    assert not (tmp_path / "runs").exists()  # found before the run directory was made


def fill(disk: Path) -> None:
    """Take every free byte of `disk` (bounded by its size)."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def test_tensorboard_events_on_a_full_disk(tmpfs: Mount) -> None:
    import keras

    from convtrain.errors import WriteFailed
    from convtrain.train.callbacks import EpochSummaries

    disk = tmpfs(64)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    summaries = EpochSummaries(disk / "tensorboard")
    summaries.set_model(model)
    summaries.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})  # room enough: written
    fill(disk)
    with pytest.raises(WriteFailed) as info:
        for epoch in range(1, 100_000):  # each epoch adds ~100 bytes to a 4 KiB page
            summaries.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 2.0})
    assert info.value.exit_code == 1
    assert info.value.path.parent in (
        disk / "tensorboard" / "train",
        disk / "tensorboard" / "validation",
    )
    assert info.value.path.name.startswith("events.out.tfevents.")
    assert str(info.value).endswith(
        "cannot write it (no space left on device: 0 bytes free); free some space, then run "
        "the command again"
    )
    summaries.on_train_end()  # closing after the failure raises no OpError
    # A writer created on the full disk fails as cleanly.
    fresh = EpochSummaries(disk / "tensorboard2")
    fresh.set_model(model)
    with pytest.raises(WriteFailed) as info:
        fresh.on_epoch_end(0, {"loss": 1.0})
    assert info.value.path.parent == disk / "tensorboard2" / "train"
