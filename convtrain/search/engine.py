"""`convtrain sweep`: a study run by Optuna's own loop, N trial processes at a time.

`study.optimize(n_jobs=N)` asks the sampler for a trial, our objective (runner.run_trial)
trains it as a `convtrain train` process and Optuna records the outcome: no scheduler or queue
of our own. Retries are Optuna's WAITING trials, which the next ask() of any process takes
first. The budget (`trials`) counts configurations in the study, whichever process ran them.
"""

from __future__ import annotations

import shlex
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from queue import Queue
from typing import Any

import optuna
from optuna.trial import TrialState

from convtrain.errors import ConvtrainError
from convtrain.search import owners, samplers
from convtrain.search import storage as storages
from convtrain.search import study as studies
from convtrain.search.events import Emit, Opened, Reclaimed, ignore, tally
from convtrain.search.plan import Options, Plan, describe, grid_of, make_plan
from convtrain.search.resources import Slots
from convtrain.search.results import configurations
from convtrain.search.runner import Context, Interrupted, TrialFailed, run_trial
from convtrain.search.space import assignments


class SweepInterrupted(ConvtrainError):
    exit_code = 130


class Skipped(Exception):
    """A trial asked for after the budget was reached by another process at the same moment."""


@dataclass
class Outcome:
    sweep_dir: Path
    study: Any
    record: studies.SweepRecord
    counts: dict[str, int]
    elsewhere: int  # trials still running in other processes


def budget_left(study: Any, plan: Plan) -> bool:
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    originals = [
        t
        for t in trials
        if "failed_trial" not in t.system_attrs and not t.user_attrs.get("skipped")
    ]
    return plan.trials is None or len(originals) < plan.trials


def _check_budget(study: Any, trial: optuna.Trial, plan: Plan) -> None:
    """Skip a trial started past the budget (two processes asked at the same moment)."""
    frozen = study._storage.get_trial(trial._trial_id)  # Trial has no system_attrs of its own
    if plan.trials is None or "failed_trial" in frozen.system_attrs:
        return
    earlier = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and "failed_trial" not in t.system_attrs
        and not t.user_attrs.get("skipped") and t.state != TrialState.WAITING
    ]  # fmt: skip
    if len(earlier) >= plan.trials:
        trial.set_user_attr("skipped", f"the budget of {plan.trials} trials was reached")
        raise Skipped(f"trial {trial.number}: budget reached")


def prepare(config: str, overrides: tuple[str, ...], options: Options) -> tuple[Plan, Path]:
    plan = make_plan(config, overrides, options)
    if options.storage is not None:
        storages.check_url(options.storage)
    if options.sweep_dir is not None:
        return plan, Path(options.sweep_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return plan, Path("runs") / "sweeps" / f"{plan.experiment.name}-{stamp}"


def dry_run(config: str, overrides: tuple[str, ...], options: Options) -> list[str]:
    """The plan's lines and, for a grid, every trial with its cost; nothing is created."""
    from convtrain.config.load import load_config
    from convtrain.search.runner import cost

    plan, sweep_dir = prepare(config, overrides, options)
    storage = storages.masked(options.storage) if options.storage else f"{sweep_dir}/study.journal"
    slots = Slots(options.workers, plan.experiment.train.threads)
    lines = describe(plan, slots.describe(), f"{storage}, study {options.study or plan.study_name}")
    if plan.sampler != "grid":
        return [
            *lines,
            "dry run: nothing trained (every sampled config is validated before it trains)",
        ]
    sampler = samplers.make_sampler("grid", plan.seed, grid_of(plan), plan.trials)
    for i in range(plan.trials or 0):
        params = dict(
            zip(sampler._param_names, sampler._all_grids[i], strict=True)
        )  # the order trials take
        sets = assignments(plan.space, params)
        try:
            n_params, macs = cost(load_config(config, (*overrides, *sets)), config)
        except ConvtrainError as exc:
            raise ConvtrainError(f"trial {i} ({' '.join(sets)}): {exc.lines()[0]}") from None
        lines.append(
            f"trial {i}: {' '.join(sets)}  ->  {n_params:,} params, {macs / 1e6:,.1f}M MACs/image, "
            f"{plan.epochs} epochs"
        )
    return [*lines, f"{plan.trials} trials, all configs valid (dry run: nothing trained)"]


def run_sweep(
    config: str,
    overrides: tuple[str, ...],
    options: Options,
    emit: Emit = ignore,
) -> Outcome:
    plan, sweep_dir = prepare(config, overrides, options)
    if plan.sampler == "grid":  # every combination is validated before anything is created
        dry_run(config, overrides, options)
    record = studies.prepare(plan, sweep_dir, options.storage, options.study)
    url = studies.storage_url(sweep_dir, record)
    grid = grid_of(plan) if plan.sampler == "grid" else None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own events say what happened
    study = studies.open_study(
        url,
        record,
        samplers.make_sampler(plan.sampler, plan.seed, grid, plan.trials),
        samplers.make_pruner(plan.prune, plan.epochs, plan.min_epochs),
    )
    locks, shared = storages.locks_dir(sweep_dir, url)
    owner = owners.Owner(locks)
    owner.acquire()
    if options.retry_failed:
        for t in configurations(study):
            if t.state == TrialState.FAIL:
                owners.retry(study, t, limit=None)
    stale = owners.reclaim(study, locks, shared)
    if stale:
        emit(Reclaimed(tuple(stale)))
    slots = Slots(options.workers, plan.experiment.train.threads)
    free: Queue[int] = Queue()
    for i in range(options.workers):
        free.put(i)
    stop = threading.Event()
    ctx = Context(
        sweep_dir=sweep_dir,
        url=url,
        study_name=record.study,
        space=plan.space,
        overrides=plan.overrides,
        owner=owner.attrs(),
        emit=emit,
        stopping=stop.is_set,
        slot_env=slots.env,
        slot_sets=slots.sets,
    )

    def objective(trial: optuna.Trial) -> float:
        _check_budget(study, trial, plan)
        emit(tally(study, plan.trials))
        slot = free.get()
        try:
            return run_trial(ctx, trial, slot)
        except Interrupted:
            owners.retry(study, study._storage.get_trial(trial._trial_id), limit=None)
            raise
        finally:
            free.put(slot)

    def after_trial(study: Any, _trial: Any) -> None:
        owners.reclaim(study, locks, shared)
        emit(tally(study, plan.trials))
        if stop.is_set() or not budget_left(study, plan):
            study.stop()

    def interrupt(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            return  # the trial processes are settling their runs: let them finish
        stop.set()
        for proc in list(ctx.running.values()):
            proc.send_signal(signal.SIGINT)  # each trial process settles its run, exits 130

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, interrupt)
    try:
        maximize = study.direction.name == "MAXIMIZE"
        emit(Opened(sweep_dir, record.study, storages.masked(url), record.monitor, maximize))
        emit(tally(study, plan.trials))
        if budget_left(study, plan):
            study.optimize(
                objective,
                timeout=plan.timeout,
                n_jobs=options.workers,
                catch=(TrialFailed, Interrupted, Skipped),
                callbacks=[after_trial],
                gc_after_trial=False,
            )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        owner.release()
    if stop.is_set():
        raise SweepInterrupted(
            f"interrupted; the trials in progress are kept and resume with the same command: "
            f"convtrain sweep {config} --sweep-dir {sweep_dir}"
            + "".join(f" {o}" for o in _repeat_options(options))
            + "".join(f" --set {shlex.quote(o)}" for o in overrides)
        )
    return _outcome(sweep_dir, study, record)


def _repeat_options(options: Options) -> list[str]:
    out = [f"--grid {shlex.quote(g)}" for g in options.grid]
    out += [f"--search {shlex.quote(s)}" for s in options.search]
    for flag, value in (("--random", options.random), ("--sampler", options.sampler),
                        ("--trials", options.trials), ("--timeout", options.timeout),
                        ("--prune", options.prune), ("--min-epochs", options.min_epochs),
                        ("--storage", options.storage),
                        ("--study", options.study)):  # fmt: skip
        if value is not None:
            out.append(f"{flag} {storages.masked(str(value)) if flag == '--storage' else value}")
    return out


def _outcome(sweep_dir: Path, study: Any, record: studies.SweepRecord) -> Outcome:
    trials = configurations(study)
    counts = {
        s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail")
    }
    elsewhere = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    return Outcome(sweep_dir, study, record, counts, elsewhere)
