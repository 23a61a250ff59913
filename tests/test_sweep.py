"""`convtrain sweep` end to end: trials as runs, a failing trial, kill -9 and resume, compare."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import pausing, tiny_config, wait_until_paused

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tiny_data_env: dict[str, str]) -> dict[str, str]:
    return tiny_data_env


def config(path: Path, epochs: int = 2) -> Path:
    sweep = {"grid": {"model.layers[0].filters": [4, 8]}}
    path.write_text(yaml.safe_dump(tiny_config("sw", 5, epochs, sweep=sweep)))
    return path


def cli(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def trials(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "sweep.json").read_text())["trials"]


def test_sweep_runs_trials_records_a_failure_and_compares(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    args = [
        "sweep",
        str(config(tmp_path / "c.yaml")),
        "--grid",
        "data.classes=[alpha, beta],[alpha, nosuch]",
        "--sweep-dir",
        str(sweep_dir),
    ]
    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    recorded = trials(sweep_dir)
    assert [t["overrides"] for t in recorded] == [
        ["model.layers[0].filters=4", "data.classes=[alpha, beta]"],
        ["model.layers[0].filters=4", "data.classes=[alpha, nosuch]"],
        ["model.layers[0].filters=8", "data.classes=[alpha, beta]"],
        ["model.layers[0].filters=8", "data.classes=[alpha, nosuch]"],
    ]
    assert [t["status"] for t in recorded] == ["completed", "failed", "completed", "failed"]
    assert recorded[1]["error"].startswith("error: ") and "nosuch" in recorded[1]["error"]
    assert "sweep " in proc.stdout and "2 completed, 2 failed of 4" in proc.stdout
    for t in recorded:
        if t["status"] == "completed":
            run = Path(t["run_dir"])
            assert (run / "reports" / "metrics.json").is_file()
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            assert cfg["model"]["layers"][0]["filters"] == int(t["overrides"][0].split("=")[1])
        else:
            assert t["run_dir"] is None  # refused before a run directory was created

    # started again: nothing re-runs
    again = cli(*args, env=env)
    assert again.returncode == 0
    assert again.stdout.count("skipped") == 4

    # compare reads the completed trials; its figures are the runs' own
    cmp = cli("compare", str(sweep_dir), "--format", "csv", env=env)
    assert cmp.returncode == 0, cmp.stderr
    rows = list(csv.DictReader(line for line in cmp.stdout.splitlines() if "," in line))
    assert len(rows) == 2
    for row in rows:
        metrics = json.loads(
            (sweep_dir / "trials" / row["run"] / "reports" / "metrics.json").read_text()
        )
        assert float(row["accuracy"]) == pytest.approx(metrics["accuracy"])
    assert (sweep_dir / "report.html").stat().st_size > 20_000
    assert "data:image/png;base64," in (sweep_dir / "report.html").read_text()


def test_sweep_killed_mid_trial_resumes_it(tmp_path, env):
    sweep_dir, hold = tmp_path / "sweep", tmp_path / "hold"
    # The first trial stops once its epoch 2 is committed: the kill lands in its training (a kill
    # during the evaluation is test_train's test_resume_after_a_kill_during_the_evaluation...).
    cfg = config(tmp_path / "c.yaml", epochs=4)
    args = ["sweep", str(cfg), "--sweep-dir", str(sweep_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "convtrain", *args],
        env=pausing(env, 2, hold),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_paused(proc, hold)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    (history,) = (sweep_dir / "trials").glob("t001-*/history.csv")
    assert len(history.read_text().splitlines()) == 3  # header + 2 epochs
    assert trials(sweep_dir)[0]["status"] == "running"

    done = cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    recorded = trials(sweep_dir)
    assert [t["status"] for t in recorded] == ["completed", "completed"], recorded
    assert len(list((sweep_dir / "trials").glob("t001-*"))) == 1  # resumed, not restarted
    epochs = [int(r["epoch"]) for r in csv.DictReader(history.open())]
    assert epochs == [1, 2, 3, 4]


def test_sweep_with_a_bad_grid_value_fails_before_running(tmp_path, env):
    proc = cli(
        "sweep",
        str(config(tmp_path / "c.yaml")),
        "--grid",
        "model.layers[0].kernel_size=3,0",
        "--sweep-dir",
        str(tmp_path / "s"),
        env=env,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "trial 2 (model.layers[0].filters=4 model.layers[0].kernel_size=0)" in proc.stderr
    assert "model.layers[0].kernel_size" in proc.stderr
    assert not (tmp_path / "s").exists()


SWEEPS = sorted((Path(__file__).resolve().parents[1] / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_example_sweep_plans_valid_trials(path, capsys):
    from convtrain.experiments.sweep import run_sweep

    assert run_sweep(str(path), (), None, (), None, dry_run=True) is None
    out = capsys.readouterr().out.splitlines()
    trials_listed = [line for line in out if line.startswith("trial ")]
    assert 2 <= len(trials_listed) <= 3
    assert out[-1] == f"{len(trials_listed)} trials, all configs valid (dry run: nothing trained)"


def test_dry_run_creates_nothing(tmp_path, monkeypatch):
    from convtrain.commands import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(SWEEPS[0]), "--dry-run"])
    assert exc.value.code == 0
    assert list(tmp_path.iterdir()) == []


def test_the_conv2d_guide_covers_every_example_sweep():
    """`make sweeps` / `make guide` run every sweep of configs/sweeps/, and the guide shows each
    one's comparison: its table and both plots, written by `convtrain compare`."""
    repo = Path(__file__).resolve().parents[1]
    makefile = (repo / "Makefile").read_text()
    listed = re.search(r"^GUIDE_SWEEPS \?= (.+)$", makefile, re.M).group(1).split()
    assert sorted(listed) == sorted(p.stem for p in SWEEPS)
    guide = (repo / "docs" / "conv2d-guide.md").read_text()
    assert "<!--" not in guide
    for name in listed:
        assert f"configs/sweeps/{name}.yaml" in guide
        assert f"`convtrain compare runs/sweeps/{name}`" in guide
        for png in ("compare_cost.png", "compare_curves.png"):
            assert f"(conv2d-guide/{name}/{png})" in guide
            assert (repo / "docs" / "conv2d-guide" / name / png).stat().st_size > 10_000
