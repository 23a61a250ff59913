"""`convtrain train`: the run directory, Ctrl-C, kill -9 and --resume, NaN, broken run directories.

Runs tiny models (16x16 images, 3 classes) on a synthetic CALTECH-101-shaped folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    RUN_LAYOUT,
    exit_code_or_stacks,
    make_dataset,
    pausing,
    sigint_default,
    tiny_config,
    wait_until_paused,
)

from convtrain.commands import main
from convtrain.config.load import dump_config, load_config
from convtrain.rundir import RunDir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("data")
    root = make_dataset(base, {"alpha": 20, "beta": 20, "gamma": 20}, size_range=(16, 24))
    return {"CONVTRAIN_DATA_ROOT": str(root), "CONVTRAIN_CACHE_DIR": str(base / "cache")}


@pytest.fixture
def env(data_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in data_env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **data_env, "TF_CPP_MIN_LOG_LEVEL": "3"}


def write_config(path: Path, epochs: int = 2, layers: list | None = None, **train: object) -> Path:
    config = tiny_config("tiny", 3, epochs)
    if layers:
        config["model"]["layers"] = layers
    config["train"].update(train)
    path.write_text(yaml.safe_dump(config))
    return path


def convtrain(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def start(*args: str, env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen, Path]:
    """`convtrain ARGS` in the background, its stderr in a file."""
    err = tmp / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convtrain", *args],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            env=env,
            preexec_fn=sigint_default,  # noqa: PLW1509 - one system call
        )
    return proc, err


def only_run(runs: Path) -> RunDir:
    (path,) = list(runs.iterdir())
    return RunDir(path)


def history_epochs(run: RunDir) -> list[int]:
    with open(run.history, newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


def cli(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


# --- a normal run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, data_env: dict[str, str]
) -> tuple[RunDir, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("trained")
    config = write_config(tmp / "cfg.yaml", epochs=2)
    result = convtrain(
        "train", str(config), "--runs-dir", str(tmp / "runs"), env={**os.environ, **data_env}
    )
    return only_run(tmp / "runs"), config, result


def test_train_writes_the_whole_run_directory(trained, data_env: dict[str, str]) -> None:
    run, config, result = trained
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for name in RUN_LAYOUT:
        assert (run.path / name).exists(), name
    assert run.path.name.startswith("tiny-")
    assert history_epochs(run) == [1, 2]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["1/2", "2/2"]  # not a terminal: one line per epoch
    assert f"{run.path.name}: 2 epochs, best val_accuracy" in result.stdout
    assert "test (best checkpoint): accuracy " in result.stdout

    state = json.loads(run.state.read_text())
    assert (state["status"], state["completed_epochs"], state["epochs"]) == ("completed", 2, 2)
    assert state["best_epoch"] in (1, 2)
    env_json = json.loads(run.environment.read_text())
    for key in (
        "convtrain",
        "tensorflow",
        "keras",
        "python",
        "numpy",
        "seed",
        "cpu",
        "gpus",
        "command_line",
        "start_time",
        "hostname",
    ):
        assert key in env_json, key
    assert env_json["seed"] == 3 and env_json["command_line"].startswith("convtrain train ")
    split = json.loads(run.split.read_text())
    assert split["classes"] == ["alpha", "beta", "gamma"]
    assert list((run.tensorboard / "train").iterdir()) and list(
        (run.tensorboard / "validation").iterdir()
    )
    assert not [p for p in run.path.rglob(".*") if p.is_file()], "temporary files left behind"

    # config.yaml is the resolved config: it loads, and re-dumps to itself.
    resolved = load_config(run.config)
    assert dump_config(resolved) == run.config.read_text()
    original = load_config(config)
    assert resolved.train == original.train and resolved.model == original.model
    assert resolved.data.root == data_env["CONVTRAIN_DATA_ROOT"]


def test_a_config_mistake_creates_no_run_directory(env, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "cfg.yaml")
    runs = tmp_path / "runs"
    code, _, err = cli(
        "train", str(config), "--runs-dir", str(runs), "--set", "train.epochs=0", capsys=capsys
    )
    assert code == 2
    assert err == f"error: {config}: train.epochs: expected a number >= 1, received 0\n"
    assert not runs.exists()


def test_missing_data_creates_no_run_directory(env, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CONVTRAIN_DATA_ROOT", str(tmp_path / "nowhere"))
    runs = tmp_path / "runs"
    code, _, err = cli(
        "train", str(write_config(tmp_path / "cfg.yaml")), "--runs-dir", str(runs), capsys=capsys
    )
    assert code == 2
    assert (
        err.count("\n") == 1 and "convtrain data fetch" in err and str(tmp_path / "nowhere") in err
    )
    assert not runs.exists()


# --- faults ---------------------------------------------------------------------------------


def test_ctrl_c_checkpoints_and_exits_130(env, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", epochs=3)
    runs, hold = tmp_path / "runs", tmp_path / "hold"
    paused = pausing(env, 1, hold)  # stops once epoch 1 is committed: Ctrl-C lands in epoch 2
    proc, err = start("train", str(config), "--runs-dir", str(runs), env=paused, tmp=tmp_path)
    try:
        wait_until_paused(proc, hold)
        proc.send_signal(signal.SIGINT)
        assert exit_code_or_stacks(proc, err, 120) == 130
    finally:
        proc.kill()
    stderr = err.read_text()
    assert "Traceback" not in stderr
    run = only_run(runs)
    state = json.loads(run.state.read_text())
    assert f"interrupted at epoch 2; resume with: convtrain train --resume {run.path}\n" in stderr
    assert (state["status"], state["completed_epochs"]) == ("interrupted", 1)
    assert history_epochs(run) == [1]
    assert run.checkpoint("last").is_file() and run.checkpoint("best").is_file()
    assert not run.final_model.exists()


def test_kill_9_then_resume_finishes_with_a_continuous_history(env, tmp_path: Path) -> None:
    import keras

    # No validation images: the monitor falls back to the training accuracy, with a note.
    split = {"method": "per_class", "train_per_class": 10, "val_per_class": 0, "test_per_class": 5}
    config = write_config(tmp_path / "cfg.yaml", epochs=5)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["split"] = split
    config.write_text(yaml.safe_dump(raw))
    runs, hold = tmp_path / "runs", tmp_path / "hold"
    paused = pausing(env, 2, hold)  # stops once epoch 2 is committed: the kill lands in epoch 3
    proc, err = start("train", str(config), "--runs-dir", str(runs), env=paused, tmp=tmp_path)
    try:
        wait_until_paused(proc, hold)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
    assert "monitoring the training accuracy instead" in err.read_text()
    run = only_run(runs)
    killed = json.loads(run.state.read_text())
    assert (killed["status"], killed["completed_epochs"]) == ("running", 2)

    result = convtrain("train", "--resume", str(run.path), env=env)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run.path} at epoch 3 of 5" in result.stderr
    assert history_epochs(run) == [1, 2, 3, 4, 5]
    state = json.loads(run.state.read_text())
    assert (state["status"], state["completed_epochs"], state["monitor"]) == (
        "completed",
        5,
        "accuracy",
    )
    assert len(json.loads(run.environment.read_text())["resumed"]) == 1
    # The optimizer state went on from the checkpoint: one step count across both sessions.
    steps = math.ceil(30 / 8)
    last = keras.models.load_model(run.checkpoint("last"), safe_mode=True)
    assert int(last.optimizer.iterations) == 5 * steps
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [
        "best.keras",
        "initial.keras",
        "last.keras",
    ]

    again = convtrain("train", "--resume", str(run.path), env=env)
    assert again.returncode == 2
    assert again.stderr.strip().endswith(
        f"{run.path}: nothing to resume, the run completed 5 of 5 epochs; "
        f"evaluate it with `convtrain evaluate {run.path}`"
    )


def test_a_nan_loss_stops_with_epoch_and_batch(env, tmp_path: Path, capsys) -> None:
    layers = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 16, "activation": "relu"},
    ]
    config = write_config(tmp_path / "cfg.yaml", epochs=3, layers=layers)
    runs = tmp_path / "runs"
    code, _, err = cli(
        "train", str(config), "--runs-dir", str(runs),
        "--set", "train.optimizer={type: sgd, learning_rate: 1e12}",
        capsys=capsys,
    )  # fmt: skip
    assert code == 2
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: training diverged: the loss became nan at epoch ")
    assert ", batch " in line and "learning rate too high" in line and "batch norm" in line
    run = only_run(runs)
    state = json.loads(run.state.read_text())
    assert state["status"] == "failed" and state["message"] == line.removeprefix("error: ")
    assert history_epochs(run) == list(range(1, state["completed_epochs"] + 1))


# --- broken run directories for --resume ----------------------------------------------------


def interrupted_copy(trained, tmp_path: Path) -> RunDir:
    """A copy of the trained run, marked interrupted after its first epoch."""
    run = RunDir(Path(shutil.copytree(trained[0].path, tmp_path / "run")))
    state = json.loads(run.state.read_text())
    state.update(status="interrupted", completed_epochs=1, history=state["history"][:1])
    run.state.write_text(json.dumps(state))
    return run


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda run: shutil.rmtree(run.path), "{path}: no such run directory"),
        (
            lambda run: [p.unlink() for p in (run.config, run.state)],
            "{path}: not a convtrain run directory",
        ),
        (lambda run: run.state.unlink(), "{path}: incomplete run directory: state.json is missing"),
        (lambda run: run.split.unlink(), "{path}: incomplete run directory: split.json is missing"),
        (
            lambda run: run.state.write_text("{"),
            "{path}/state.json: expected JSON, received invalid text",
        ),
        (lambda run: run.config.write_text("model: [oops"), "{path}/config.yaml:"),
        (
            lambda run: run.checkpoint("last").write_bytes(
                run.checkpoint("last").read_bytes()[:2000]
            ),
            "{path}/checkpoints/last.keras: cannot load the checkpoint",
        ),
    ],
    ids=[
        "missing",
        "not-a-run",
        "no-state",
        "no-split",
        "garbage-state",
        "garbage-config",
        "truncated-checkpoint",
    ],
)
def test_a_broken_run_directory_is_one_line(
    trained, tmp_path: Path, env, capsys, damage, expected
) -> None:
    run = interrupted_copy(trained, tmp_path)
    damage(run)
    code, out, err = cli("train", "--resume", str(run.path), capsys=capsys)
    assert code == 2
    assert err.startswith("error: " + expected.format(path=run.path)), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_resume_with_a_config_is_refused(trained, capsys) -> None:
    code, _, err = cli(
        "train",
        "cfg.yaml",
        "--set",
        "train.epochs=3",
        "--resume",
        str(trained[0].path),
        capsys=capsys,
    )
    assert code == 2
    assert err == (
        f"error: --resume {trained[0].path}: a resumed run uses its own config.yaml and name; "
        "expected no CONFIG, --set or --name, received CONFIG and --set\n"
    )


def test_train_without_config_or_resume(capsys) -> None:
    code, _, err = cli("train", capsys=capsys)
    assert code == 2
    assert (
        err
        == "error: train: expected a CONFIG file (or --resume RUN_DIR to continue a run), received neither\n"
    )


def test_a_bad_run_name_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "cfg.yaml")
    code, _, err = cli(
        "train", str(config), "--name", "../up", "--runs-dir", str(runs), capsys=capsys
    )
    assert code == 2
    assert err == (
        "error: --name: expected a name of letters, digits, '_', '.' or '-' (at most 80 "
        "characters, starting with a letter or digit), received '../up'\n"
    )
    assert not runs.exists()


HOLD = (
    "import sys; from convtrain.rundir import RunDir\n"
    "with RunDir(sys.argv[1]).owned():\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


def test_a_run_still_training_is_not_resumed(trained, tmp_path: Path, capsys) -> None:
    run = interrupted_copy(trained, tmp_path)
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    # Stands in for the live trainer: a process holding the run, as `train` does while it trains.
    trainer = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert trainer.stdout is not None and trainer.stdout.readline() == "held\n"
        code, _, err = cli("train", "--resume", str(run.path), capsys=capsys)
    finally:
        trainer.kill()
        trainer.wait()
    assert code == 2
    assert err == (
        f"error: {run.path}: still being trained by process {trainer.pid} on this machine; "
        f"wait for it, or stop it (Ctrl-C or kill {trainer.pid}) before resuming\n"
    )
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before


def test_resume_after_a_kill_during_the_evaluation_writes_the_reports(
    trained, tmp_path: Path, capsys
) -> None:
    # A kill after the last epoch's commit, while the test split is evaluated: state.json says
    # completed, reports/ was never written. Resuming finishes the evaluation and nothing else.
    run = RunDir(Path(shutil.copytree(trained[0].path, tmp_path / "run")))
    shutil.rmtree(run.reports)
    shutil.rmtree(run.plots)
    before = run.state.read_text(), run.history.read_text(), run.final_model.read_bytes()
    code, out, err = cli("train", "--resume", str(run.path), capsys=capsys)
    assert code == 0, err
    assert err.startswith(
        f"resuming {run.path}: training completed 2 of 2 epochs, the evaluation did not\n"
    )
    assert f"{run.path.name}: 2 epochs, best val_accuracy" in out
    metrics = json.loads((run.reports / "metrics.json").read_text())
    assert metrics == json.loads((trained[0].reports / "metrics.json").read_text())
    assert (run.plots / "confusion_matrix.png").is_file()
    assert (run.state.read_text(), run.history.read_text(), run.final_model.read_bytes()) == before

    again = cli("train", "--resume", str(run.path), capsys=capsys)
    assert again[0] == 2 and "nothing to resume, the run completed 2 of 2 epochs" in again[2]


def test_the_config_is_validated_once_and_planned_once(
    env, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Today's train loads the config once and plans the model once, with the classes the data
    has (3 here, not the 101 a config with `data.classes: all` would be assumed to have)."""
    import convtrain.commands.common as common
    import convtrain.model.build as build
    from convtrain.config.schema import Experiment

    validated, planned = [], []
    real_validate, real_plan = Experiment.model_validate.__func__, common.plan_model

    def model_validate(cls, *args, **kwargs):
        validated.append(cls)
        return real_validate(cls, *args, **kwargs)

    def plan_model(experiment, num_classes):
        planned.append(num_classes)
        return real_plan(experiment, num_classes)

    monkeypatch.setattr(Experiment, "model_validate", classmethod(model_validate))
    monkeypatch.setattr(common, "plan_model", plan_model)
    monkeypatch.setattr(build, "plan_model", plan_model)  # the builder takes the command's plan
    config = write_config(tmp_path / "cfg.yaml", epochs=1)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["classes"] = "all"
    config.write_text(yaml.safe_dump(raw))
    code, out, err = cli("train", str(config), "--runs-dir", str(tmp_path / "runs"), capsys=capsys)
    assert code == 0, err
    assert validated == [Experiment] and planned == [3]
    assert "3 classes" in out
