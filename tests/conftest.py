"""Shared fixtures: small synthetic CALTECH-101-shaped folders made with Pillow."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# As convtrain sets it on import (convtrain/__init__.py), for tests that import Keras first.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

REPO = Path(__file__).resolve().parents[1]
REAL_ARCHIVE = REPO.parent / "shared" / "datasets" / "caltech-101" / "101_ObjectCategories.tar.gz"


def make_dataset(
    root: Path,
    classes: dict[str, int],
    *,
    size_range: tuple[int, int] = (24, 60),
    seed: int = 0,
    extras: bool = False,
) -> Path:
    """Write `root/101_ObjectCategories/<class>/image_%04d.jpg`, one colour pattern per class.

    Classes are separable (each has its own dominant colour and stripe direction) so a tiny
    model learns them in a few epochs. With `extras`, also a grayscale image, a truncated JPEG,
    an empty file, a text file and a JPEG without extension (like BACKGROUND_Google/tmp).
    """
    rng = np.random.default_rng(seed)
    base = root / "101_ObjectCategories"
    for ci, (name, count) in enumerate(sorted(classes.items())):
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array([(ci * 97) % 256, (ci * 57 + 80) % 256, (ci * 151 + 40) % 256])
        for i in range(count):
            h, w = rng.integers(size_range[0], size_range[1] + 1, size=2)
            yy, xx = np.mgrid[0:h, 0:w]
            stripes = ((xx if ci % 2 else yy) // 4 % 2)[..., None]
            img = colour * (0.6 + 0.4 * stripes) + rng.normal(0, 12, (h, w, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                folder / f"image_{i + 1:04d}.jpg", quality=90
            )
    if extras:
        first = base / sorted(classes)[0]
        gray = rng.integers(0, 255, (40, 30), dtype=np.uint8)
        Image.fromarray(gray, mode="L").save(first / "image_gray.jpg")
        good = (first / "image_0001.jpg").read_bytes()
        (first / "image_truncated.jpg").write_bytes(good[: len(good) // 3])
        (first / "image_empty.jpg").write_bytes(b"")
        (first / "notes.txt").write_text("not an image\n")
        (first / "tmp").write_bytes(good)  # a JPEG without extension: still an image
    return base


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    """Three classes of 12 images each, plus the awkward files CALTECH-101 users meet."""
    return make_dataset(tmp_path / "ds", {"alpha": 12, "beta": 12, "gamma": 12}, extras=True)


@pytest.fixture
def real_archive() -> Path:
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"real CALTECH-101 archive not present at {REAL_ARCHIVE}")
    return REAL_ARCHIVE


@pytest.fixture(scope="session")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real archive extracted once per test session; its 101_ObjectCategories/ folder."""
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"real CALTECH-101 archive not present at {REAL_ARCHIVE}")
    import tarfile

    dest = tmp_path_factory.mktemp("caltech101")
    with tarfile.open(REAL_ARCHIVE) as archive:
        archive.extractall(dest, filter="data")
    return dest / "101_ObjectCategories"


# What `convtrain train` leaves in a run directory (checked by the train and distribute tests).
RUN_LAYOUT = (
    "config.yaml",
    "split.json",
    "environment.json",
    "state.json",
    "history.csv",
    "model.keras",
    "checkpoints/last.keras",
    "checkpoints/best.keras",
    "checkpoints/initial.keras",
    "tensorboard",
    "reports/metrics.json",
    "plots",
    "report.html",
)


def tiny_config(
    name: str, seed: int, epochs: int, val: float = 0.2, test: float = 0.2, **sections: object
) -> dict:
    """A config that trains in seconds on 16x16 synthetic images; `sections` replace defaults."""
    config: dict = {
        "name": name,
        "seed": seed,
        "data": {"image_size": 16, "split": {"method": "stratified", "val": val, "test": test}},
        "model": {
            "layers": [
                {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
                {"type": "global_avg_pool"},
            ]
        },
        "train": {
            "epochs": epochs,
            "batch_size": 8,
            "optimizer": {"type": "adam", "learning_rate": 0.01},
        },
        "eval": {"top_k": 2},
    }
    config.update(sections)
    return config


@pytest.fixture(scope="module")
def tiny_data_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for a `convtrain` subprocess training on three tiny synthetic classes."""
    base = tmp_path_factory.mktemp("tinydata")
    root = make_dataset(base, {"alpha": 16, "beta": 16, "gamma": 16}, size_range=(16, 24))
    return {
        **os.environ,
        "CONVTRAIN_DATA_ROOT": str(root),
        "CONVTRAIN_CACHE_DIR": str(base / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


HOOKS = Path(__file__).resolve().parent / "hooks"


def pausing(env: dict[str, str], after_epochs: int, folder: Path) -> dict[str, str]:
    """`env` for a convtrain process (and the ones it starts) that stops after committing epoch
    `after_epochs` until `folder/go` exists (tests/hooks/sitecustomize.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = [str(HOOKS), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(path),
        "CONVTRAIN_TEST_PAUSE": f"{after_epochs}:{folder}",
    }


def wait_until_paused(proc: subprocess.Popen, folder: Path) -> int:
    """Wait for the process started with `pausing` to reach its pause; the pid that paused."""
    while not (folder / "paused").exists():
        assert proc.poll() is None, "the process ended before reaching the pause"
        time.sleep(0.02)
    return int((folder / "paused").read_text())


def exit_code_or_stacks(proc: subprocess.Popen, stderr: Path, timeout: float) -> int:
    """The exit code of a process started with `pausing`; if it has not exited after `timeout`
    seconds, fail with the stacks of all its threads (the hook dumps them on SIGUSR1)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        try:
            proc.wait(timeout=10)  # the dump is written at once; the process stays hung
        except subprocess.TimeoutExpired:
            pass
        proc.kill()
        pytest.fail(
            f"still running after {timeout:g} s; its threads:\n{stderr.read_text()[-6000:]}"
        )


def sigint_default() -> None:
    """preexec_fn for the convtrain processes the tests start: SIGINT at its default, as for a
    command in a terminal. A test run started in the background by a script inherits SIGINT
    ignored (POSIX shells do that to background commands), and a Ctrl-C test then waits forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
