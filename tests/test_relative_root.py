"""A run trained with a relative data.root is read back from any working directory.

`convtrain evaluate`, `explain` and a sweep's `compare` find the run's images through the
folder its split.json was made from (written absolute), as a user who trained in the repo and
then works from elsewhere expects; CONVTRAIN_DATA_ROOT and an existing data.root still win.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_dataset, tiny_config

pytestmark = pytest.mark.slow


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convtrain", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_a_run_with_a_relative_data_root_is_evaluated_and_explained_from_elsewhere(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_dataset(project / "data", {"alpha": 10, "beta": 10}, size_range=(16, 20))
    config = tiny_config("rel", 1, 1) | {"data": {"root": "data", "image_size": 16,
                                                  "split": {"method": "stratified", "val": 0.2, "test": 0.3}}}  # fmt: skip
    (project / "c.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "CONVTRAIN_DATA_ROOT"}
    env |= {"CONVTRAIN_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    train = cli("train", "c.yaml", "--runs-dir", "runs", cwd=project, env=env)
    assert train.returncode == 0, train.stderr
    (run,) = (project / "runs").iterdir()
    made_from = json.loads((run / "split.json").read_text())["protocol"]["root"]
    assert (
        Path(made_from).is_absolute()
        and Path(made_from) == project / "data" / "101_ObjectCategories"
    )

    evaluate = cli("evaluate", str(run), cwd=elsewhere, env=env)
    assert evaluate.returncode == 0, evaluate.stderr
    explain = cli("explain", str(run), "--split", "test", "--per-class", "1", "--format", "json",
                  "--out", str(tmp_path / "explained"), cwd=elsewhere, env=env)  # fmt: skip
    assert explain.returncode == 0, explain.stderr
    assert len(json.loads(explain.stdout)["images"]) == 2

    # Without the recorded folder, the one-line error names data.root, as before.
    (project / "data").rename(tmp_path / "moved")
    gone = cli("evaluate", str(run), cwd=elsewhere, env=env)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1
    assert "dataset folder not found (from data.root=data/101_ObjectCategories)" in gone.stderr
