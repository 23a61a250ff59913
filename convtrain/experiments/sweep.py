"""`convtrain sweep`: run every trial of a grid as a normal run directory under one sweep dir.

Each trial runs in its own `convtrain train` process: TensorFlow's global state (dtype policy,
determinism, memory) never leaks between trials, and a trial that crashes cannot take the sweep
down with it. `sweep.json` records every trial's status, so a sweep started again skips finished
trials, resumes the unfinished one (`train --resume`) and retries none that failed unless asked.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import click

from convtrain.config.load import load_config
from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.experiments.grid import Axis, axes_from_mapping, expand, parse_axis
from convtrain.io import atomic_write_json, atomic_write_text, writing
from convtrain.model.plan import plan_model, resolve_classes
from convtrain.safeload import read_json

SWEEP_FILE = "sweep.json"


@dataclass
class Trial:
    id: str
    overrides: list[str]
    status: str = "pending"  # pending | running | completed | failed
    run_dir: str | None = None
    error: str | None = None
    returncode: int | None = None


@dataclass
class Sweep:
    path: Path
    config_sha256: str
    axes: list[dict]
    trials: list[Trial] = field(default_factory=list)

    @property
    def base_config(self) -> Path:
        return self.path / "base.yaml"

    @property
    def trials_dir(self) -> Path:
        return self.path / "trials"

    def save(self) -> None:
        data = {
            "config_sha256": self.config_sha256,
            "axes": self.axes,
            "trials": [asdict(t) for t in self.trials],
        }
        atomic_write_json(self.path / SWEEP_FILE, data)

    @classmethod
    def load(cls, path: Path) -> Sweep:
        file = path / SWEEP_FILE
        try:
            data = read_json(file)
            trials = [Trial(**t) for t in data["trials"]]
            return cls(path, data["config_sha256"], data["axes"], trials)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConvtrainError(
                f"{file}: not a readable sweep record ({exc.__class__.__name__}: {exc})"
            ) from None


def _find_run(sweep: Sweep, trial: Trial) -> Path | None:
    """The run directory `train` created for this trial (named `<trial id>-<timestamp>`)."""
    found = sorted(sweep.trials_dir.glob(f"{trial.id}-*/config.yaml"))
    return found[-1].parent if found else None


def validated_trials(
    config: str, axes: list[Axis], random_trials: int | None, overrides: tuple[str, ...]
) -> list[tuple[tuple[str, ...], Experiment]]:
    """Every trial's assignments with its validated experiment; the first bad one is an error."""
    experiment = _checked(config, overrides)  # the base config itself must be valid
    out = []
    for i, assignments in enumerate(expand(axes, random_trials, seed=experiment.seed)):
        try:
            out.append((assignments, _checked(config, (*overrides, *assignments))))
        except ConvtrainError as exc:
            raise ConvtrainError(
                f"trial {i + 1} ({' '.join(assignments)}): {exc.lines()[0]}"
            ) from None
    return out


def _checked(config: str, overrides: tuple[str, ...]) -> Experiment:
    """The config validated, its layer stack included (planned for the class count it implies)."""
    experiment = load_config(config, overrides)
    problems = plan_model(experiment, resolve_classes(experiment)[0]).problems
    if problems:
        raise ConfigError(problems, source=config)
    return experiment


def plan_sweep(
    config: str,
    axes: list[Axis],
    random_trials: int | None,
    overrides: tuple[str, ...],
    sweep_dir: str | None,
    runs_dir: str = "runs",
) -> Sweep:
    """Validate every trial's config first, then create (or re-open) the sweep directory."""
    planned = validated_trials(config, axes, random_trials, overrides)
    experiment = planned[0][1]
    trial_overrides = [assignments for assignments, _ in planned]
    text = Path(config).read_bytes()
    digest = hashlib.sha256(text + "\0".join(overrides).encode()).hexdigest()
    axes_json = [{"key": a.key, "values": list(a.values)} for a in axes]
    if sweep_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(runs_dir) / "sweeps" / f"{experiment.name}-{stamp}"
    else:
        path = Path(sweep_dir)
    if (path / SWEEP_FILE).exists():
        sweep = Sweep.load(path)
        if sweep.config_sha256 != digest or sweep.axes != axes_json:
            raise ConvtrainError(
                f"{path}: this sweep directory holds a different sweep (another config, --set or "
                f"--grid); expected the same ones to resume it, or a new --sweep-dir"
            )
        return sweep
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(path, digest, axes_json)
    width = len(str(len(trial_overrides)))
    sweep.trials = [
        Trial(id=f"t{i + 1:0{max(width, 3)}d}", overrides=[*overrides, *a])
        for i, a in enumerate(trial_overrides)
    ]
    atomic_write_text(sweep.base_config, text.decode("utf-8"))
    sweep.save()
    return sweep


def _train_command(sweep: Sweep, trial: Trial) -> list[str]:
    cmd = [sys.executable, "-m", "convtrain", "train"]
    existing = _find_run(sweep, trial)
    state = existing / "state.json" if existing else None
    if existing and state and state.is_file():
        return [*cmd, "--resume", str(existing)]
    sets = [arg for o in trial.overrides for arg in ("--set", o)]
    return [
        *cmd,
        str(sweep.base_config),
        *sets,
        "--name",
        trial.id,
        "--runs-dir",
        str(sweep.trials_dir),
    ]


def _run_trial(cmd: list[str], trial_id: str) -> tuple[int, str | None]:
    """Run one trial, passing its output through live; return its exit code and last stderr line."""
    # Unbuffered: the trial's per-epoch lines appear as they happen, not when it ends.
    env = {**os.environ, "CONVTRAIN_SWEEP_TRIAL": trial_id, "PYTHONUNBUFFERED": "1"}
    last: str | None = None
    with subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            if line.strip():
                last = line.rstrip("\n")
    return proc.returncode, last


def run_trials(sweep: Sweep, retry_failed: bool = False) -> None:
    total = len(sweep.trials)
    for n, trial in enumerate(sweep.trials, 1):
        if trial.status == "completed" or (trial.status == "failed" and not retry_failed):
            click.echo(
                f"[{n}/{total}] {trial.id} {trial.status}, skipped: {' '.join(trial.overrides)}"
            )
            continue
        click.echo(f"[{n}/{total}] {trial.id} running: {' '.join(trial.overrides)}")
        trial.status, trial.error = "running", None
        sweep.save()
        returncode, last_error = _run_trial(_train_command(sweep, trial), trial.id)
        run = _find_run(sweep, trial)
        trial.run_dir = str(run) if run else None
        trial.returncode = returncode
        if returncode == 130:
            trial.status = "running"  # interrupted: resumed next time
            sweep.save()
            raise click.exceptions.Exit(130)
        if returncode == 0:
            trial.status = "completed"
        else:
            trial.status = "failed"
            trial.error = last_error or f"exit code {returncode}"
            click.echo(f"[{n}/{total}] {trial.id} failed: {trial.error}", err=True)
        sweep.save()
    done = sum(t.status == "completed" for t in sweep.trials)
    failed = sum(t.status == "failed" for t in sweep.trials)
    click.echo(f"sweep {sweep.path}: {done} completed, {failed} failed of {total}")
    click.echo(f"compare with: convtrain compare {sweep.path}")


def run_sweep(
    config: str,
    grid: tuple[str, ...],
    random_trials: int | None,
    overrides: tuple[str, ...],
    sweep_dir: str | None,
    retry_failed: bool = False,
    dry_run: bool = False,
) -> Sweep | None:
    """Axes from the config's `sweep:` section, then --grid (which wins for the same key)."""
    experiment = load_config(config, overrides)
    declared = experiment.sweep
    axes = {a.key: a for a in axes_from_mapping(declared.grid if declared else {})}
    axes.update({a.key: a for a in map(parse_axis, grid)})
    if not axes:
        raise ConvtrainError(
            f"{config}: nothing to sweep: expected --grid KEY=V1,V2,... or a `sweep: {{grid: ...}}` "
            f"section, received neither"
        )
    if random_trials is None and declared is not None:
        random_trials = declared.random
    if dry_run:
        print_plan(validated_trials(config, list(axes.values()), random_trials, overrides))
        return None
    sweep = plan_sweep(config, list(axes.values()), random_trials, overrides, sweep_dir)
    run_trials(sweep, retry_failed)
    return sweep


def print_plan(planned: list[tuple[tuple[str, ...], Experiment]]) -> None:
    """The trials a sweep would run, with what each costs (inspect's arithmetic, no training)."""
    from convtrain.model.inspect import totals

    for i, (assignments, experiment) in enumerate(planned, 1):
        num_classes, _ = resolve_classes(experiment)
        t = totals(plan_model(experiment, num_classes))
        click.echo(
            f"trial {i}: {' '.join(assignments)}  ->  {t.params:,} params, "
            f"{t.macs / 1e6:,.1f}M MACs/image, {experiment.train.epochs} epochs"
        )
    click.echo(f"{len(planned)} trials, all configs valid (dry run: nothing trained)")
