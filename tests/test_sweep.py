"""`convtrain sweep` on an Optuna study, end to end on tiny synthetic data.

Grid, random and TPE sweeps; an impossible sampled config and a crashing trial recorded as
failed; pruning; two sweep processes sharing one study; kill -9 of one of them, of the whole
sweep, and Ctrl-C, each followed by recovery; compare and report reading the study.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import pausing, sigint_default, tiny_config, wait_until_paused

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tiny_data_env: dict[str, str]) -> dict[str, str]:
    return tiny_data_env


def config(path: Path, epochs: int = 2, grid: dict | None = None, **sections) -> Path:
    sweep = {"grid": grid or {"model.layers[0].filters": [4, 8]}}
    path.write_text(yaml.safe_dump(tiny_config("sw", 5, epochs, sweep=sweep, **sections)))
    return path


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "convtrain", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,  # noqa: PLW1509 - one system call
    )


def study_of(sweep_dir: Path):
    from convtrain.search.results import configurations
    from convtrain.search.study import load_study

    _, study = load_study(sweep_dir)
    return study, configurations(study)


def states(sweep_dir: Path) -> list[str]:
    return [t.state.name for t in study_of(sweep_dir)[1]]


def epochs_of(run: Path) -> list[int]:
    return [int(r["epoch"]) for r in csv.DictReader((run / "history.csv").open())]


def test_grid_sweep_records_a_crashing_trial_resumes_and_compares(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    cfg = config(
        tmp_path / "c.yaml", grid={"data.classes": [["alpha", "beta"], ["alpha", "nosuch"]]}
    )
    args = ["sweep", str(cfg), "--sweep-dir", str(sweep_dir)]
    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    study, trials = study_of(sweep_dir)
    by_classes = {tuple(yaml.safe_load(t.params["data.classes"])): t for t in trials}
    ok, bad = by_classes[("alpha", "beta")], by_classes[("alpha", "nosuch")]
    assert ok.state.name == "COMPLETE" and bad.state.name == "FAIL"
    assert "nosuch" in bad.user_attrs["error"] and bad.user_attrs["error"].startswith("error: ")
    run = Path(ok.user_attrs["run_dir"])
    assert ok.value == json.loads((run / "state.json").read_text())["best_value"]
    metrics = json.loads((run / "reports" / "metrics.json").read_text())
    assert ok.user_attrs["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["classes"] == ["alpha", "beta"]
    assert "1 complete, 0 pruned, 1 failed of 2 trials" in proc.stdout
    assert "--set 'data.classes=[alpha, beta]'" in proc.stdout  # the best trial's command
    # TensorBoard's HParams: the experiment once, a session in the trial's run
    assert list((sweep_dir / "hparams").glob("events.out.tfevents.*"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    again = cli(*args, env=env)  # started again: nothing re-runs
    assert again.returncode == 0, again.stderr
    assert "started" not in again.stdout and len(study_of(sweep_dir)[1]) == 2

    cmp = cli("compare", str(sweep_dir), "--format", "csv", env=env)
    assert cmp.returncode == 0, cmp.stderr
    rows = list(csv.DictReader(cmp.stdout.splitlines()))
    assert [r["state"] for r in rows] == ["complete", "failed"]
    assert float(rows[0]["val_accuracy"]) == pytest.approx(ok.value)
    assert float(rows[0]["test_accuracy"]) == pytest.approx(metrics["accuracy"])
    for png in ("study_history", "study_parallel", "study_slices", "compare_curves"):
        assert (sweep_dir / f"{png}.png").stat().st_size > 5_000
    page = (sweep_dir / "report.html").read_text()
    assert "Best trial" in page and "convtrain train" in page and "data:image/png;base64," in page


def test_tpe_search_records_an_impossible_config_and_goes_on(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    cfg = config(tmp_path / "c.yaml")
    search = [
        "--search", "train.optimizer.learning_rate={float: [1.0e-3, 1.0e-1], log: true}",
        "--search", "model.layers[0].kernel_size={int: [3, 27], step: 4}",
    ]  # fmt: skip
    args = ["sweep", str(cfg), *search, "--trials", "4", "--sweep-dir", str(sweep_dir)]
    dry = cli(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "train.optimizer.learning_rate  float [0.001, 0.1], log" in dry.stdout
    assert "sampler: tpe (seed 5)" in dry.stdout and "budget: 4 trials" in dry.stdout
    assert not sweep_dir.exists()

    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    _, trials = study_of(sweep_dir)
    assert len(trials) == 4
    too_big = [t for t in trials if t.params["model.layers[0].kernel_size"] > 16]
    fine = [t for t in trials if t.params["model.layers[0].kernel_size"] <= 16]
    assert too_big and fine, [t.params for t in trials]  # the seed draws both kinds
    for t in too_big:
        assert t.state.name == "FAIL" and "run_dir" not in t.user_attrs
        assert "model.layers[0].kernel_size: expected a window no larger" in t.user_attrs["error"]
    assert all(t.state.name == "COMPLETE" for t in fine)
    assert {p.name[:5] for p in (sweep_dir / "trials").iterdir()} == {
        f"t{t.number:04d}" for t in fine
    }


def test_random_search_with_two_workers_splits_the_cores(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    args = [
        "sweep", str(config(tmp_path / "c.yaml")), "--sampler", "random", "--trials", "2",
        "--search", "train.optimizer.learning_rate={float: [1.0e-3, 1.0e-1], log: true}",
        "--workers", "2", "--sweep-dir", str(sweep_dir),
    ]  # fmt: skip
    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    study, trials = study_of(sweep_dir)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    rates = [t.params["train.optimizer.learning_rate"] for t in trials]
    assert len(set(rates)) == 2 and all(1e-3 <= r <= 1e-1 for r in rates)
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    for t in trials:
        run_config = yaml.safe_load((Path(t.user_attrs["run_dir"]) / "config.yaml").read_text())
        assert run_config["train"]["threads"] == threads
    assert "[trial 0] epoch 1/2" in proc.stderr or "[trial 1] epoch 1/2" in proc.stderr


def test_two_workers_with_gpus_visible_give_each_trial_process_one(tmp_path, env):
    """CUDA_VISIBLE_DEVICES=3,5 and --workers 2: each trial process sees one of the two (TF on
    this CPU-only machine ignores the numbers; each run's environment.json records them) and
    the cores are not split (a trial on a GPU keeps its threads)."""
    sweep_dir = tmp_path / "sweep"
    grid = {"model.layers[0].filters": [4, 6]}
    args = ["sweep", str(config(tmp_path / "c.yaml", epochs=1, grid=grid)), "--workers", "2",
            "--sweep-dir", str(sweep_dir)]  # fmt: skip
    gpus = env | {"CUDA_VISIBLE_DEVICES": "3,5"}
    dry = cli(*args, "--dry-run", env=gpus)
    assert "2 trial processes, one GPU each (3, 5)" in dry.stdout, dry.stdout
    proc = cli(*args, env=gpus)
    assert proc.returncode == 0, proc.stderr
    _, trials = study_of(sweep_dir)
    seen = []
    for t in trials:
        run = Path(t.user_attrs["run_dir"])
        seen.append(json.loads((run / "environment.json").read_text())["cuda_visible_devices"])
        assert yaml.safe_load((run / "config.yaml").read_text())["train"].get("threads") is None
    assert sorted(set(seen)) == ["3", "5"] and len(seen) == 2


def test_pruning_stops_a_trial_whose_metric_is_bad(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    grid = {"train.optimizer.learning_rate": [0.03, 0.05, 1.0e-7]}
    cfg = config(tmp_path / "c.yaml", epochs=3, grid=grid)
    train = yaml.safe_load(cfg.read_text())["train"] | {"monitor": "val_loss"}
    cfg.write_text(yaml.safe_dump(yaml.safe_load(cfg.read_text()) | {"train": train}))
    args = ["sweep", str(cfg), "--prune", "median", "--sweep-dir", str(sweep_dir)]
    dry = cli(*args, "--dry-run", env=env)
    # The seeded grid order puts the hopeless rate last, once two trials set the median.
    assert "trial 2: train.optimizer.learning_rate=1.0e-07" in dry.stdout, dry.stdout
    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    _, trials = study_of(sweep_dir)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = trials[2]
    run = Path(pruned.user_attrs["run_dir"])
    assert pruned.user_attrs["pruned_at_epoch"] == 2  # the earliest epoch judged
    assert epochs_of(run) == [1, 2] and pruned.user_attrs["epochs"] == 2
    assert (run / "reports" / "metrics.json").is_file()  # evaluated on what it had
    assert sorted(pruned.intermediate_values) == [1, 2]
    assert "pruned after epoch 2" in proc.stdout
    # What the search cost: the epochs in the runs' histories, against 3 full trainings.
    trained = sum(len(epochs_of(Path(t.user_attrs["run_dir"]))) for t in trials)
    assert trained == 8
    assert f"cost: {trained} epochs trained of the 9 that 3 configurations" in proc.stdout
    cmp = cli("compare", str(sweep_dir), env=env)
    assert cmp.returncode == 0, cmp.stderr
    seconds = sum(
        float(r["epoch_time"])
        for t in trials
        for r in csv.DictReader((Path(t.user_attrs["run_dir"]) / "history.csv").open())
    )
    line = f"(89%); {seconds / 3600:.2f} h of training in the 3 evaluated runs on this machine"
    assert line in cmp.stderr, cmp.stderr
    assert "Cost: 8 epochs trained of the 9" in (sweep_dir / "report.html").read_text()


def test_two_sweep_processes_share_one_study_without_running_a_trial_twice(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    grid = {"model.layers[0].filters": [4, 6, 8, 10]}
    args = ["sweep", str(config(tmp_path / "c.yaml", grid=grid)), "--sweep-dir", str(sweep_dir)]
    procs = [start(*args, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    study, trials = study_of(sweep_dir)
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.params["model.layers[0].filters"] for t in trials) == [4, 6, 8, 10]
    assert len(list((sweep_dir / "trials").iterdir())) == 4
    started = sum(o[0].count(" started: ") for o in outs)
    assert started == 4  # each configuration trained by exactly one of the two processes


def test_kill_9_of_one_sweep_process_its_trial_is_resumed_by_the_other(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    grid = {"model.layers[0].filters": [4, 6, 8]}
    cfg = config(tmp_path / "c.yaml", epochs=3, grid=grid)
    args = ["sweep", str(cfg), "--sweep-dir", str(sweep_dir)]
    # Each trial process stops after committing an epoch (the victim's after 2, the survivor's
    # after 1), so both train a trial when the victim is killed.
    held_victim, held_survivor = tmp_path / "victim", tmp_path / "survivor"
    victim = start(*args, env=pausing(env, 2, held_victim))
    wait_until_paused(victim, held_victim)
    survivor = start(*args, env=pausing(env, 1, held_survivor))
    wait_until_paused(survivor, held_survivor)

    def running(proc: subprocess.Popen) -> tuple[int, Path]:
        (trial,) = [
            t
            for t in study_of(sweep_dir)[0].get_trials(deepcopy=False)
            if t.state.name == "RUNNING" and f"-{proc.pid}-" in t.user_attrs["owner"]
        ]
        (run,) = (sweep_dir / "trials").glob(f"{trial.user_attrs['run_name']}-*")
        return trial.number, run

    number, run = running(victim)
    assert epochs_of(run) == [1, 2]
    running(survivor)  # one trial of its own, paused too
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    (held_survivor / "go").touch()  # its trial ends, then it reclaims the victim's
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    study, trials = study_of(sweep_dir)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    lost = next(t for t in study.trials if t.number == number)
    assert lost.state.name == "FAIL" and "died" in lost.user_attrs["error"]
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == number)
    assert retry.user_attrs["run_dir"] == str(run.resolve())  # resumed, not restarted
    assert sorted(retry.intermediate_values) == [1, 2, 3]  # every epoch reported once
    assert len(list((sweep_dir / "trials").iterdir())) == 3
    assert epochs_of(run) == [1, 2, 3]
    assert "resuming" in (sweep_dir / "logs" / f"{run.name[:5]}.log").read_text()


def test_ctrl_c_then_kill_9_of_the_whole_sweep_then_the_same_command_continues(tmp_path, env):
    sweep_dir = tmp_path / "sweep"
    cfg = config(tmp_path / "c.yaml", epochs=5, grid={"model.layers[0].filters": [4]})
    args = ["sweep", str(cfg), "--sweep-dir", str(sweep_dir)]

    held = tmp_path / "first"
    first = start(*args, env=pausing(env, 2, held))  # Ctrl-C lands in the trial's epoch 3
    wait_until_paused(first, held)
    (run,) = (sweep_dir / "trials").iterdir()
    os.kill(first.pid, signal.SIGINT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130, err
    assert f"resume with the same command: convtrain sweep {cfg} --sweep-dir {sweep_dir}" in err
    assert "Traceback" not in err
    assert epochs_of(run) == [1, 2]

    held = tmp_path / "second"
    second = start(*args, env=pausing(env, 4, held))  # the resumed trial: epochs 3 and 4
    wait_until_paused(second, held)
    assert epochs_of(run) == [1, 2, 3, 4]
    os.killpg(second.pid, signal.SIGKILL)  # everything: the sweep and its trial process
    second.wait(timeout=30)

    third = cli(*args, env=env)
    assert third.returncode == 0, third.stderr
    _, trials = study_of(sweep_dir)
    assert [t.state.name for t in trials] == ["COMPLETE"]
    assert len(list((sweep_dir / "trials").iterdir())) == 1  # the trial kept its run
    assert epochs_of(run) == [1, 2, 3, 4, 5]
    assert "lost their process: retried" in third.stdout


@pytest.mark.parametrize("moved", [False, True], ids=["same-dir", "carried-elsewhere"])
def test_every_trial_of_a_dead_two_worker_sweep_is_retried(tmp_path, env, moved):
    """kill -9 of a sweep running two trials, then the same command: both are retried, not just
    the first (the dead owner's lock goes with it). Carried elsewhere: the study's files copied
    to another folder and the original gone, as when a machine is replaced; the trials that were
    running there are retried from scratch instead of staying RUNNING for ever."""
    sweep_dir = tmp_path / "sweep"
    grid = {"model.layers[0].filters": [4, 6, 8]}
    cfg = config(tmp_path / "c.yaml", epochs=3, grid=grid)
    args = ["sweep", str(cfg), "--sweep-dir", str(sweep_dir), "--workers", "2"]
    first = start(*args, env=pausing(env, 1, tmp_path / "held"))
    # Both trial processes have committed their first epoch (a header and one line) and wait.
    histories = (sweep_dir / "trials").glob
    while [len(h.read_text().splitlines()) >= 2 for h in histories("*/history.csv")] != [True] * 2:
        assert first.poll() is None, first.communicate()[1]
        time.sleep(0.05)
    assert states(sweep_dir).count("RUNNING") == 2
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    if moved:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        for name in ("study.json", "base.yaml", "study.journal"):
            shutil.copy(sweep_dir / name, elsewhere / name)
        shutil.rmtree(sweep_dir)
        sweep_dir = elsewhere
        args[3] = str(sweep_dir)
    second = cli(*args[:-2], env=env)
    assert second.returncode == 0, second.stderr
    assert "lost their process: retried" in second.stdout
    study, trials = study_of(sweep_dir)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    lost = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(lost) == 2 and all("died" in t.user_attrs["error"] for t in lost)
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == [t.number for t in lost]
    for retry in retries:
        run = Path(retry.user_attrs["run_dir"])
        assert run.parent == (sweep_dir / "trials").resolve() and epochs_of(run) == [1, 2, 3]
        resumed = "resuming" in (sweep_dir / "logs" / f"{run.name[:5]}.log").read_text()
        assert resumed is not moved  # in place from its checkpoint, or trained again elsewhere
    assert len(list((sweep_dir / "trials").iterdir())) == 3


def test_a_search_without_a_validation_split_is_refused(tmp_path, env):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config("sw", 5, 2, val=0.0)))
    proc = cli("sweep", str(cfg), "--search", "train.optimizer.learning_rate={float: [1.0e-3, 1.0e-1]}",
               "--trials", "2", "--sweep-dir", str(tmp_path / "s"), env=env)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "selects on the validation split" in proc.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--search=train.optimizer.learning_rate={float: [0.1, 0.01]}", "expected lo < hi"),
        ("--search=train.optimizer.learning_rate={float: [0, 1], log: true}", "lo > 0 for a log"),
        ("--search=model.layers[0].filters={int: [8, 64], choice: [1]}", "exactly one of"),
        ("--search=model.layers[0].filters", "expected KEY=SPEC"),
        ("--timeout=soon", "expected a duration such as 90s"),
        ("--storage=redis://localhost", "expected a URL postgresql://"),
    ],
)
def test_bad_search_options_are_one_line_errors(tmp_path, option, expected):
    from convtrain.cli import main

    cfg = config(tmp_path / "c.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(cfg), option, "--trials", "3", "--dry-run"])
    assert exc.value.code == 2


def test_bad_search_options_name_what_was_expected(tmp_path, env):
    cfg = config(tmp_path / "c.yaml")
    proc = cli("sweep", str(cfg), "--search", "model.layers[0].filters={float: [0.1, 0.01]}",
               "--trials", "2", "--dry-run", env=env)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--search model.layers[0].filters={float: [0.1, 0.01]}: expected lo < hi" in proc.stderr
    grid = cli("sweep", str(cfg), "--grid", "model.layers[0].kernel_size=3,0", "--sweep-dir",
               str(tmp_path / "s"), env=env)  # fmt: skip
    assert grid.returncode == 2 and "Traceback" not in grid.stderr
    assert "model.layers[0].kernel_size" in grid.stderr and not (tmp_path / "s").exists()


def test_a_sweep_directory_of_the_earlier_engine_is_refused_with_what_to_do(tmp_path, env):
    old = tmp_path / "old"
    old.mkdir()
    (old / "sweep.json").write_text('{"config_sha256": "x", "axes": [], "trials": []}')
    proc = cli("sweep", str(config(tmp_path / "c.yaml")), "--sweep-dir", str(old), env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "earlier engine (sweep.json)" in proc.stderr and "new --sweep-dir" in proc.stderr


def test_a_sweep_directory_holding_another_sweep_is_refused(tmp_path, env):
    from convtrain.search.engine import prepare
    from convtrain.search.plan import Options
    from convtrain.search.study import prepare as prepare_dir

    cfg = config(tmp_path / "c.yaml")
    plan, _ = prepare(str(cfg), (), Options())
    prepare_dir(plan, tmp_path / "s", None, None)
    other, _ = prepare(str(cfg), ("train.epochs=3",), Options())
    from convtrain.errors import ConvtrainError

    with pytest.raises(ConvtrainError, match="holds another sweep"):
        prepare_dir(other, tmp_path / "s", None, None)


def test_a_comment_edited_in_the_config_is_the_same_sweep_a_value_is_not(tmp_path):
    from convtrain.search.engine import prepare
    from convtrain.search.plan import Options
    from convtrain.search.study import prepare as prepare_dir

    cfg = config(tmp_path / "c.yaml")
    plan, _ = prepare(str(cfg), (), Options())
    prepare_dir(plan, tmp_path / "s", None, None)
    text = cfg.read_text()
    cfg.write_text("# why this sweep: a note added later\n" + text.replace(": ", ":   "))
    edited, _ = prepare(str(cfg), (), Options())
    assert edited.digest == plan.digest and edited.study_name == plan.study_name
    assert edited.legacy_digest != plan.legacy_digest  # the bytes did change
    assert prepare_dir(edited, tmp_path / "s", None, None).study == plan.study_name
    assert "\nseed: 5\n" in text
    cfg.write_text(text.replace("\nseed: 5\n", "\nseed: 6\n"))
    assert prepare(str(cfg), (), Options())[0].digest != plan.digest


def test_a_sweep_directory_named_by_the_config_bytes_still_resumes(tmp_path):
    """Sweeps made before the identity read the config's content (study.json holds the digest
    of its bytes) resume with the same command; another config is still refused."""
    import json

    from convtrain.errors import ConvtrainError
    from convtrain.search.engine import prepare
    from convtrain.search.plan import Options
    from convtrain.search.study import prepare as prepare_dir

    cfg = config(tmp_path / "c.yaml")
    plan, _ = prepare(str(cfg), (), Options())
    prepare_dir(plan, tmp_path / "s", None, None)
    record = tmp_path / "s" / "study.json"
    old = json.loads(record.read_text()) | {
        "digest": plan.legacy_digest, "study": f"sw-{plan.legacy_digest[:8]}"
    }  # fmt: skip
    record.write_text(json.dumps(old))
    assert prepare_dir(plan, tmp_path / "s", None, None).study == f"sw-{plan.legacy_digest[:8]}"
    cfg.write_text(cfg.read_text() + "# a comment: the bytes of the old identity change\n")
    with pytest.raises(ConvtrainError, match="holds another sweep"):
        prepare_dir(prepare(str(cfg), (), Options())[0], tmp_path / "s", None, None)


SWEEPS = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_example_sweep_plans_valid_trials(path):
    from convtrain.search.engine import dry_run
    from convtrain.search.plan import Options

    lines = dry_run(str(path), (), Options())
    listed = [line for line in lines if line.startswith("trial ")]
    assert lines[0].startswith("space (") and "nothing trained" in lines[-1]
    if "sampler: grid" in "\n".join(lines):
        assert 2 <= len(listed) <= 3  # the guide's questions: a few trials each
    else:
        assert listed == [] and "pruner: asha" in "\n".join(lines)  # search.yaml


def test_dry_run_creates_nothing(tmp_path, monkeypatch):
    from convtrain.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(SWEEPS[0]), "--dry-run"])
    assert exc.value.code == 0
    assert list(tmp_path.iterdir()) == []


def test_the_conv2d_guide_covers_every_example_sweep():
    """`make sweeps` / `make guide` run every sweep of configs/sweeps/, and the guide shows each
    one's comparison: its table, its two plots and what the network looks at in each trial
    (Grad-CAM, the changed layer), all written by `convtrain compare`."""
    import re

    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^GUIDE_SWEEPS \?= (.+)$", makefile, re.M).group(1).split()
    assert set(listed) <= {p.stem for p in SWEEPS}
    guide = (REPO / "docs" / "conv2d-guide.md").read_text()
    assert "<!--" not in guide
    for name in listed:
        assert f"configs/sweeps/{name}.yaml" in guide
        assert f"`convtrain compare runs/sweeps/{name}`" in guide
        for png in (
            "compare_cost.png",
            "compare_curves.png",
            "compare_gradcam.png",
            "compare_layer.png",
        ):
            assert f"(conv2d-guide/{name}/{png})" in guide
            assert (REPO / "docs" / "conv2d-guide" / name / png).stat().st_size > 10_000


@pytest.mark.parametrize("name", ["median", "asha", "hyperband"])
def test_no_pruner_judges_a_trial_before_sweep_min_epochs(name):
    import optuna

    from convtrain.search.samplers import make_pruner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # A fixed name: Hyperband puts a trial in a bracket by a hash of the study's name, and a
    # random one left the bad trial alone in its bracket (never judged) in 27 of 200 names.
    study = optuna.create_study(
        study_name="min-epochs", direction="maximize", pruner=make_pruner(name, 12, min_epochs=4)
    )
    for _ in range(3):  # good trials to compare with
        good = study.ask()
        for step in range(1, 13):
            good.report(0.9, step)
            assert not good.should_prune()  # ASHA records a trial's rungs when it asks
        study.tell(good, 0.9)
    bad = study.ask()
    judged = None
    for step in range(1, 13):
        bad.report(0.1, step)
        if bad.should_prune():
            judged = step
            break
    assert judged is not None and judged >= 4
    if name != "hyperband":  # Hyperband's brackets start at 4, 12, ... epochs
        assert judged == 4


def test_sweep_min_epochs_is_planned_shown_and_checked(tmp_path, env):
    cfg = config(tmp_path / "c.yaml", epochs=6, grid={"train.optimizer.learning_rate": [0.01, 0.1]})
    data = yaml.safe_load(cfg.read_text())
    data["sweep"] |= {"min_epochs": 3}
    cfg.write_text(yaml.safe_dump(data))
    dry = cli("sweep", str(cfg), "--prune", "asha", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert (
        "pruner: asha, on train.monitor val_accuracy (maximize) after every epoch, from epoch 3"
        in dry.stdout
    )
    bad = cli("sweep", str(cfg), "--prune", "asha", "--set", "train.epochs=2", "--dry-run", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "sweep.min_epochs: expected at most train.epochs (2), received 3" in bad.stderr


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_a_search_shows_its_best_and_worst_trials_side_by_side(direction):
    """Grad-CAM across a search's dozens of trials would be pages long: the 4 best and the 2
    worst on validation stand for them; a few trials are all shown."""
    from types import SimpleNamespace

    import optuna

    from convtrain.search.report import side_by_side

    study = optuna.create_study(direction=direction)
    for value in [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4]:
        trial = study.ask()
        trial.set_user_attr("run_dir", f"/runs/{value}")
        study.tell(trial, value)
    runs = [
        SimpleNamespace(run=SimpleNamespace(path=Path(f"/runs/{v / 10}"))) for v in range(1, 10)
    ]
    shown = [float(r.run.path.name) for r in side_by_side(study, runs)]
    ranked = (
        [0.9, 0.8, 0.7, 0.6, 0.2, 0.1]
        if direction == "maximize"
        else [0.1, 0.2, 0.3, 0.4, 0.8, 0.9]
    )
    assert shown == ranked
    assert side_by_side(study, runs[:6]) == runs[:6]


def test_a_study_looked_at_while_it_runs_counts_its_running_trials_and_their_epochs(tmp_path):
    """compare on a live study: what runs is said, and its epochs so far are in the cost."""
    from types import SimpleNamespace

    import optuna

    from convtrain.search.report import write_page
    from convtrain.search.results import cost_line, trials_table

    study = optuna.create_study(direction="maximize")
    for epochs, state in [(10, "complete"), (3, "pruned"), (None, "running")]:
        trial = study.ask()
        for epoch in range(1, (epochs or 6) + 1):
            trial.report(0.1 * epoch, epoch)
        if epochs is not None:
            trial.set_user_attr("epochs", epochs)
        if state == "complete":
            study.tell(trial, 0.9)
        elif state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    record = SimpleNamespace(
        study="s-1", sampler="tpe", prune="asha", monitor="val_accuracy", epochs=10,
        overrides=[], space={}, trials=3,
    )  # fmt: skip
    cost = cost_line(study, record, 7200.0, 2)
    assert cost == (
        "cost: 19 epochs trained of the 30 that 3 configurations trained to the end would take "
        "(63%); 2.00 h of training in the 2 evaluated runs on this machine (their epoch times)"
    )
    header, rows = trials_table(study, record)
    page = write_page(tmp_path, tmp_path, record, study, header, rows, [], "", cost).read_text()
    assert "1 complete, 1 pruned, 0 failed, 1 running or waiting of 3 trials" in page
    assert "Cost: 19 epochs trained of the 30" in page


def test_a_configuration_sampled_again_is_not_trained_again(tmp_path, env):
    """Five random draws from two choices: two runs trained, the other draws take their twin's
    result (0 epochs), say so in the table, and the --min-epochs option is in the plan."""
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", str(config(tmp_path / "c.yaml", epochs=2)), "--sampler", "random",
            "--trials", "5", "--search", "model.layers[0].filters={choice: [4, 6]}",
            "--prune", "asha", "--min-epochs", "2", "--sweep-dir", str(sweep_dir)]  # fmt: skip
    dry = cli(*args, "--dry-run", env=env)
    assert "from epoch 2" in dry.stdout, dry.stdout
    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    _, trials = study_of(sweep_dir)
    assert len(trials) == 5
    firsts = {}
    for t in trials:
        firsts.setdefault(t.params["model.layers[0].filters"], t)
    assert len(list((sweep_dir / "trials").iterdir())) == len(firsts) == 2
    for t in trials:
        twin = firsts[t.params["model.layers[0].filters"]]
        if t is twin:
            assert "duplicate_of" not in t.user_attrs and t.user_attrs["epochs"] == 2
            continue
        assert t.user_attrs["duplicate_of"] == twin.number and t.user_attrs["epochs"] == 0
        assert t.state == twin.state and t.value == twin.value
        assert f"trial {t.number}: the configuration of trial {twin.number} (" in proc.stdout
    compare = cli("compare", str(sweep_dir), "--format", "markdown", env=env)
    assert compare.returncode == 0, compare.stderr
    assert compare.stdout.count("not trained again") == 3, compare.stdout


def test_a_trial_process_can_be_stopped_even_if_the_sweep_ignores_sigint():
    """The sweep stops a trial with SIGINT. A sweep started in the background by a script
    inherits SIGINT ignored; its trial processes must not (one hung in CI that way)."""
    from convtrain.search.runner import _trial_signals

    probe = "import signal; print(repr(signal.getsignal(signal.SIGINT)))"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job inherits it
    try:
        inherited = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        trial = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               preexec_fn=_trial_signals)  # noqa: PLW1509  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "SIG_IGN" in inherited.stdout  # the situation is real ...
    assert "default_int_handler" in trial.stdout  # ... and the trial gets KeyboardInterrupt back
