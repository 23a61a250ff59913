"""benchmarks/: each piece on a tiny synthetic dataset (correctness of the measurements' plumbing,
never their speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, make_dataset

sys.path.insert(0, str(REPO))  # benchmarks/ is a folder of the repository, not installed

from benchmarks import measure  # noqa: E402
from benchmarks.handloop import steady_rate  # noqa: E402

TINY_CONFIG = """\
name: tiny
seed: 1
data:
  root: {root}
  image_size: 16
  split: {{method: stratified, val: 0.2, test: 0.25}}
augment: {{rotation: 10, horizontal_flip: true}}
model:
  layers:
    - {{type: conv2d, filters: 4, kernel_size: 3, strides: 2, activation: relu}}
    - {{type: global_avg_pool}}
train: {{epochs: 1, batch_size: 8}}
"""


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(config, dataset root): three classes of 16 images, caches under tmp_path."""
    root = make_dataset(tmp_path / "ds", {"alpha": 16, "beta": 16, "gamma": 16})
    monkeypatch.setenv("CONVTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=root))
    return config, root


def test_steady_rate_drops_the_first_epoch() -> None:
    assert steady_rate(100, [10.0, 1.0, 2.0, 4.0]) == 50.0
    assert steady_rate(100, [4.0]) == 25.0


def test_preparation_cold_then_warm(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", {"a": 5, "b": 7})
    (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    prep = measure.preparation(root, 16, tmp_path / "work")
    assert prep["images"] == 12 and prep["skipped"] == 1
    assert prep["cache_mb"] == round(13 * 16 * 16 * 3 / 1e6, 1)
    assert prep["cold_s"] > 0 and prep["warm_s"] > 0


def test_child_failure_names_the_command() -> None:
    with pytest.raises(RuntimeError, match=r"benchmarks\.measure matmul x 1 failed"):
        measure.child("matmul", "x", "1")


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    config, root = tiny
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--tiny", "--config", str(config)]
        + ["--prep-size", "16", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*-tiny.json")
    result = json.loads(path.read_text())
    assert f"results: {path}" in done.stdout
    assert "ratio convtrain / hand loop (target >= 1.0)" in done.stdout

    base = result["variants"]["default"]
    # 48 images: stratified test 0.25 and val 0.2 of each class of 16 leave 9 to train.
    assert base["train_images"] == 27 and base["test_images"] == 12
    assert len(base["convtrain_epoch_seconds"]) == len(base["hand_epoch_seconds"]) == 2
    assert set(result["variants"]) == {"default", "no_augment"}
    assert result["variants"]["no_augment"]["overrides"] == ["augment={}"]
    summary = result["summary"]
    assert summary["convtrain_over_hand_loop"] == round(
        base["convtrain_images_per_s"] / base["hand_images_per_s"], 3
    )
    # FLOPs per image from inspect: the valid 3x3 conv, stride 2 (7x7x4 outputs, 27 MACs each), and the 4->3 head.
    forward = 2 * (7 * 7 * 4 * 27 + 4 * 3)
    assert result["flops"] == {"forward_per_image": forward, "train_per_image": 3 * forward}
    assert result["matmul_flops"]["float32"] > 0
    assert [p["images"] for p in result["preparation"]] == [48]
    assert result["streaming"]["images"] == 48
    assert result["training_run"]["peak_rss_mb"] > 0
    assert 0.0 <= result["training_run"]["test_accuracy"] <= 1.0
    assert set(result["startup_s"]) == {"convtrain --help", f"convtrain inspect {config}"}
    assert len(result["loadavg_before"]) == len(result["loadavg_after"]) == 3
    for name in result["variants"]:
        assert f"  {name} " in done.stdout
