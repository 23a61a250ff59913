"""One trial: its sampled config validated, then trained by an ordinary `convtrain train` process.

The trial process reports train.monitor to the study after every epoch and stops when the
pruner says so (convtrain.search.callback); this side reads what the run directory holds when
it exits and tells Optuna. A trial process killed by a signal (kill -9, the OOM killer) is
resumed in place from its run directory's checkpoint; one that fails is a failed trial, with
its last error line.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from convtrain.config.load import load_config
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.evaluate.summary import METRICS, MetricsRecord
from convtrain.rundir import RunDir
from convtrain.search import storage as storages
from convtrain.search.env import ENV_STORAGE, ENV_STUDY, ENV_TRIAL
from convtrain.search.events import Emit, TrialEnded, TrialKilled, TrialOutput, TrialStarted
from convtrain.search.space import Dim, assignments
from convtrain.train.state import TrainState


class TrialFailed(Exception):
    """The trial's config or process failed; the message is its one-line reason."""


class Interrupted(Exception):
    """Ctrl-C: the trial process settled its run; a retry resumes it."""


@dataclass
class Context:
    """What every trial of this process shares."""

    sweep_dir: Path
    url: str
    study_name: str
    space: list[Dim]
    overrides: tuple[str, ...]
    owner: dict[str, str]
    emit: Emit
    stopping: Callable[[], bool]
    slot_env: Callable[[int], dict[str, str]]
    slot_sets: Callable[[int], list[str]]
    running: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.sweep_dir / "base.yaml"

    @property
    def trials_dir(self) -> Path:
        return self.sweep_dir / "trials"


def suggest(trial: optuna.Trial, dim: Dim) -> Any:
    dist = dim.distribution()
    if dim.kind == "choice":
        return trial.suggest_categorical(dim.key, dist.choices)
    if dim.kind == "int":
        return trial.suggest_int(dim.key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(dim.key, dist.low, dist.high, step=dist.step, log=dist.log)


def cost(experiment: Any, source: str) -> tuple[int, int]:
    """Parameters and multiply-accumulates per image, by inspect's arithmetic (no TensorFlow);
    the layer stack's problems are one ConfigError line each, naming `source`."""
    from convtrain.model.inspect import totals
    from convtrain.model.plan import plan_model, resolve_classes

    plan = plan_model(experiment, resolve_classes(experiment)[0])
    if plan.problems:
        raise ConfigError(plan.problems, source=source)
    t = totals(plan)
    return t.params, t.macs


def find_run(ctx: Context, name: str) -> Path | None:
    found = sorted(ctx.trials_dir.glob(f"{name}-*/config.yaml"))
    return found[-1].parent if found else None


def _trial_signals() -> None:
    """In the trial process before it starts: SIGKILL when its sweep process dies (Linux), never
    orphaned; and SIGINT at its default, which the sweep sends to stop a trial. A sweep started
    in the background by a script inherits SIGINT ignored (POSIX shells do that to background
    commands), and a trial started with it ignored would never stop (seen in CI)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _launch(
    ctx: Context, trial: optuna.Trial, cmd: list[str], slot: int, log: Path
) -> tuple[int, str | None]:
    env = {
        **os.environ,
        **ctx.slot_env(slot),
        ENV_STORAGE: ctx.url,
        ENV_STUDY: ctx.study_name,
        ENV_TRIAL: str(trial._trial_id),
        "PYTHONUNBUFFERED": "1",
    }
    last = None
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.PIPE, text=True, bufsize=1,
            # Its own session: Ctrl-C reaches the sweep, which passes it on exactly once.
            start_new_session=True,
            preexec_fn=_trial_signals,  # noqa: PLW1509 - two system calls, no Python state
        )  # fmt: skip
        ctx.running[trial.number] = proc
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                out.write(line)
                ctx.emit(TrialOutput(trial.number, line.rstrip("\n")))
                if line.strip():
                    last = line.rstrip("\n")
            proc.wait()
        finally:
            ctx.running.pop(trial.number, None)
    return proc.returncode, last


def _wait_for_owner(run: Path, seconds: float = 60.0) -> None:
    """A killed sweep's trial process dies of its parent's death signal: let it finish dying
    (the kernel frees the run's lock, RunDir.owned, when it has)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with RunDir(run).owned():
                return
        except ConvtrainError:
            time.sleep(0.1)


def _command(ctx: Context, name: str, sets: list[str], slot: int) -> list[str]:
    cmd = [sys.executable, "-m", "convtrain", "train"]
    run = find_run(ctx, name)
    if run is not None and (run / "state.json").is_file():
        _wait_for_owner(run)
        return [*cmd, "--resume", str(run)]
    args = [a for s in [*ctx.overrides, *sets, *ctx.slot_sets(slot)] for a in ("--set", s)]
    return [*cmd, str(ctx.base), *args, "--name", name, "--runs-dir", str(ctx.trials_dir)]


def _record_run(trial: optuna.Trial, run: Path) -> tuple[float | None, dict[str, Any]]:
    state = RunDir(run).read(TrainState)
    attrs: dict[str, Any] = {"run_dir": str(run.resolve()), "epochs": state.completed_epochs}
    if RunDir(run).file(MetricsRecord).is_file():
        metrics = RunDir(run).read(MetricsRecord)
        for key in METRICS:
            attrs[f"{metrics.split}_{key}"] = float(getattr(metrics, key))
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return state.best_value, attrs


def twin_of(trial: optuna.Trial) -> Any | None:
    """A finished trial of this trial's configuration. TPE over a few choices proposes one
    again (8 of 27 trials in the benchmark's first search); training it again would tell
    nothing but the noise, so its result stands for both (Optuna's FAQ does the same)."""
    for t in trial.study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
    ):
        if t.params == trial.params and t.number != trial.number:
            return t
    return None


def _as_twin(ctx: Context, trial: optuna.Trial, twin: Any) -> float:
    """This trial ends as its twin did, trained for 0 epochs."""
    for key in ("params", "macs"):
        if key in twin.user_attrs:
            trial.set_user_attr(key, twin.user_attrs[key])
    original = twin.user_attrs.get("duplicate_of", twin.number)
    trial.set_user_attr("duplicate_of", original)
    trial.set_user_attr("epochs", 0)
    pruned = twin.state == TrialState.PRUNED
    ctx.emit(TrialEnded(trial.number, "pruned" if pruned else "complete", twin.value, 0,
                        twin=original))  # fmt: skip
    if pruned:
        raise optuna.TrialPruned(f"same configuration as trial {original}")
    return float(twin.value)


def run_trial(ctx: Context, trial: optuna.Trial, slot: int) -> float:
    """The objective: validate, train (resuming a killed process in place), read, return."""
    params = {d.key: suggest(trial, d) for d in ctx.space}
    sets = assignments(ctx.space, params)
    name = trial.user_attrs.get("run_name") or f"t{trial.number:04d}"
    # A retry carries its original's attributes: this attempt's error is its own.
    for key, value in {**ctx.owner, "run_name": name, "overrides": sets, "error": None}.items():
        trial.set_user_attr(key, value)
    twin = twin_of(trial)
    if twin is not None and find_run(ctx, name) is None:  # a trial begun in a run keeps it
        return _as_twin(ctx, trial, twin)
    try:
        experiment = load_config(ctx.base, (*ctx.overrides, *sets))
        n_params, macs = cost(experiment, str(ctx.base))
    except ConvtrainError as exc:
        reason = exc.lines()[0]
        trial.set_user_attr("error", reason)
        ctx.emit(TrialEnded(trial.number, "failed", reason=reason, sets=tuple(sets)))
        raise TrialFailed(reason) from None
    trial.set_user_attr("params", n_params)
    trial.set_user_attr("macs", macs)
    log = ctx.sweep_dir / "logs" / f"{name}.log"
    ctx.emit(TrialStarted(trial.number, tuple(sets), name, log))
    if ctx.stopping():  # Ctrl-C came while this trial was being asked for: it runs next time
        raise Interrupted(f"trial {trial.number} interrupted before it started")
    for attempt in range(storages.MAX_RETRY + 1):
        code, last = _launch(ctx, trial, _command(ctx, name, sets, slot), slot, log)
        if code >= 0 or ctx.stopping() or attempt == storages.MAX_RETRY:
            break
        ctx.emit(TrialKilled(trial.number, -code))
    run = find_run(ctx, name)
    if code == 130 or (ctx.stopping() and code != 0):
        raise Interrupted(f"trial {trial.number} interrupted")
    if code != 0 or run is None:
        reason = last or (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        trial.set_user_attr("error", reason)
        if run is not None and (run / "state.json").is_file():
            _record_run(trial, run)
        ctx.emit(TrialEnded(trial.number, "failed", reason=reason))
        raise TrialFailed(reason)
    value, attrs = _record_run(trial, run)
    pruned = trial.study._storage.get_trial(trial._trial_id).user_attrs.get("pruned_at_epoch")
    if pruned is not None:
        ctx.emit(TrialEnded(trial.number, "pruned", epochs=pruned, run_name=run.name))
        raise optuna.TrialPruned(f"pruned after epoch {pruned}")
    if value is None:
        reason = "no value of train.monitor was recorded"
        trial.set_user_attr("error", reason)
        ctx.emit(TrialEnded(trial.number, "failed", reason=reason))
        raise TrialFailed(reason)
    ctx.emit(TrialEnded(trial.number, "complete", float(value), attrs["epochs"], run.name))
    return float(value)
