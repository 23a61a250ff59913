"""What a sweep will do, resolved once from the config and the command line, before anything runs.

The plan is the sweep's identity: the same config, `--set`, space, sampler, pruner and budget
give the same study name (so the same command on several machines joins one study) and the
same digest (so a study is never continued by a different sweep).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convtrain.config.load import load_config, read_yaml
from convtrain.config.schema import Experiment, FileSplit, PerClassSplit, StratifiedSplit
from convtrain.config.sweep import PRUNERS, SAMPLERS, parse_duration
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.model.plan import plan_model, resolve_classes
from convtrain.search import samplers
from convtrain.search.space import Dim, build_space, grid_size, grid_values


@dataclass
class Options:
    """The `convtrain sweep` command line, as given (None: not given)."""

    grid: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    random: int | None = None
    sampler: str | None = None
    trials: int | None = None
    timeout: str | None = None
    prune: str | None = None
    min_epochs: int | None = None
    workers: int = 1
    storage: str | None = None
    study: str | None = None
    sweep_dir: str | None = None
    retry_failed: bool = False


@dataclass
class Plan:
    config: Path
    overrides: tuple[str, ...]
    experiment: Experiment
    space: list[Dim]
    sampler: str  # tpe, random, grid, cmaes
    prune: str  # none, median, asha, hyperband
    min_epochs: int | None  # the earliest epoch the pruner judges (None: the pruner's default)
    trials: int | None  # the study's budget of configurations (None: until the timeout)
    timeout: float | None  # seconds this process starts new trials for
    seed: int
    monitor: str  # train.monitor
    direction: str  # maximize or minimize
    grid_total: int | None = None  # the grid's size, for a grid or a random subset of it
    digest: str = field(default="")
    # The digest convtrain gave this sweep before the identity ignored the config's comments
    # and layout (its file's bytes): a sweep directory made then still resumes.
    legacy_digest: str = field(default="")

    @property
    def epochs(self) -> int:
        return self.experiment.train.epochs

    @property
    def study_name(self) -> str:
        return f"{self.experiment.name}-{self.digest[:8]}"

    def identity(self, legacy: bool = False) -> dict[str, Any]:
        """What must be the same for two processes to share a study (digested).

        The config's content, not its text: a comment edited or a key moved is the same sweep.
        """
        config = (
            {"config_sha256": hashlib.sha256(self.config.read_bytes()).hexdigest()}
            if legacy
            else {"config": read_yaml(self.config)}
        )
        return {
            **config,
            "overrides": list(self.overrides),
            "space": [d.describe() for d in self.space],
            "keys": [d.key for d in self.space],
            "sampler": self.sampler,
            "prune": self.prune,  # not the budget: a sweep resumed with more trials goes on
            "seed": self.seed,
            "monitor": self.monitor,
            # only when set, so the studies made before the option keep their names
            **({"min_epochs": self.min_epochs} if self.min_epochs is not None else {}),
        }


def has_validation(experiment: Experiment) -> bool:
    split = experiment.data.split
    if isinstance(split, StratifiedSplit):
        return split.val > 0
    if isinstance(split, PerClassSplit):
        return split.val_per_class > 0
    assert isinstance(split, FileSplit)
    try:
        return bool(json.loads(Path(split.file).read_text(encoding="utf-8")).get("val"))
    except (OSError, ValueError, AttributeError):
        return False  # train reports the unreadable file itself


def _budget(
    sampler: str, space: list[Dim], trials: int | None, timeout: float | None
) -> int | None:
    total = grid_size(space)
    if sampler == "grid":
        if total is None:
            key = next(d.key for d in space if d.finite_values() is None)
            raise ConvtrainError(
                f"{key}: the grid sampler needs finite values; expected a choice, an int range or "
                f"a float range with a step, received a continuous range (use sampler tpe or random)"
            )
        return total if trials is None else min(trials, total)
    if trials is None and timeout is None:
        raise ConvtrainError(
            f"sweep: the {sampler} sampler needs a budget; expected --trials N (sweep.trials) or "
            f"--timeout DURATION (sweep.timeout), received neither"
        )
    return trials


def _option(name: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise ConvtrainError(f"--{name}: expected one of {', '.join(choices)}, received {value!r}")
    return value


def make_plan(config: str, overrides: tuple[str, ...], options: Options) -> Plan:
    """Validate the base config and the sweep's options; every mistake is one line."""
    experiment = load_config(config, overrides)
    problems = plan_model(experiment, resolve_classes(experiment)[0]).problems  # its layer stack
    if problems:
        raise ConfigError(problems, source=config)
    declared = experiment.sweep
    space = build_space(declared, options.grid, options.search)
    if not space:
        raise ConvtrainError(
            f"{config}: nothing to sweep: expected --grid KEY=V1,V2,..., --search KEY=SPEC or a "
            f"`sweep:` section with grid or search, received none"
        )
    searched = any(not d.from_grid for d in space)
    random = options.random if options.random is not None else (declared and declared.random)
    sampler = _option("sampler", options.sampler, SAMPLERS) or (declared and declared.sampler)
    if sampler is None:
        sampler = "tpe" if searched else "random" if random else "grid"
    trials = options.trials or random or (declared and declared.trials) or None
    # --random N over a grid: N of its combinations without repeats, the grid sampler's
    # seeded random order (Optuna's random sampler would draw some combinations twice).
    if sampler == "random" and not searched and trials is not None:
        sampler = "grid"
    timeout_text = options.timeout if options.timeout is not None else None
    try:
        timeout = parse_duration(timeout_text) if timeout_text is not None else None
    except ValueError as exc:
        raise ConvtrainError(f"--timeout: {exc}") from None
    if timeout is None and declared is not None:
        timeout = declared.timeout
    prune = _option("prune", options.prune, PRUNERS) or (declared.prune if declared else "none")
    budget = _budget(sampler, space, trials, timeout)
    min_epochs = options.min_epochs or (declared.min_epochs if declared else None)
    if min_epochs is not None and min_epochs > experiment.train.epochs:
        where = "--min-epochs" if options.min_epochs else "sweep.min_epochs"
        raise ConvtrainError(
            f"{where}: expected at most train.epochs ({experiment.train.epochs}), "
            f"received {min_epochs}"
        )
    monitor = experiment.train.monitor
    if searched or sampler != "grid" or prune != "none":
        if not has_validation(experiment) or not monitor.startswith("val_"):
            what = (
                "no validation split"
                if not has_validation(experiment)
                else f"train.monitor {monitor}"
            )
            raise ConvtrainError(
                f"{config}: a search selects on the validation split, never on the test split: "
                f"expected data.split with val (stratified) or val_per_class (per_class) and "
                f"train.monitor val_accuracy or val_loss, received {what}"
            )
    if options.workers < 1:
        raise ConvtrainError(f"--workers: expected at least 1, received {options.workers}")
    plan = Plan(
        config=Path(config),
        overrides=tuple(overrides),
        experiment=experiment,
        space=space,
        sampler=sampler,
        prune=prune,
        min_epochs=min_epochs,
        trials=budget,
        timeout=timeout,
        seed=experiment.seed,
        monitor=monitor,
        direction="minimize" if monitor.endswith("loss") else "maximize",
        grid_total=grid_size(space) if sampler == "grid" else None,
    )
    plan.digest, plan.legacy_digest = (
        hashlib.sha256(
            json.dumps(plan.identity(v), sort_keys=True, default=str).encode()
        ).hexdigest()
        for v in (False, True)
    )
    if options.study is not None and not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,119}", options.study
    ):
        raise ConvtrainError(
            f"--study: expected letters, digits, '_', '.' or '-' (at most 120), received {options.study!r}"
        )
    return plan


def describe(plan: Plan, workers: str, storage: str) -> list[str]:
    """The dry run's lines: space, sampler, pruner, budget, where the study lives."""
    width = max(len(d.key) for d in plan.space)
    lines = [f"space ({len(plan.space)} dimensions):"]
    lines += [f"  {d.key.ljust(width)}  {d.describe()}" for d in plan.space]
    if plan.sampler == "grid" and plan.grid_total is not None and plan.trials == plan.grid_total:
        sampler = f"grid (all {plan.grid_total} combinations)"
    elif plan.sampler == "grid":
        sampler = f"grid ({plan.trials} of {plan.grid_total} combinations, seeded random order)"
    else:
        sampler = f"{plan.sampler} (seed {plan.seed})"
    lines.append(f"sampler: {sampler}")
    unit = f"train.monitor {plan.monitor} ({plan.direction}) after every epoch"
    if plan.prune != "none":
        first = samplers.first_judged_epoch(plan.prune, plan.min_epochs)
        unit += f", from epoch {first}"
    lines.append(f"pruner: {plan.prune}" + ("" if plan.prune == "none" else f", on {unit}"))
    budget = [f"{plan.trials} trials" if plan.trials else "trials until the timeout"]
    if plan.timeout:
        budget.append(f"timeout {plan.timeout:g}s")
    budget.append(f"at most {plan.epochs} epochs each")
    if plan.trials:
        budget.append(f"at most {plan.trials * plan.epochs} epochs in all")
    lines.append("budget: " + ", ".join(budget))
    lines.append(f"workers: {workers} on this machine; storage: {storage}")  # Slots.describe
    return lines


def grid_of(plan: Plan) -> dict[str, list[Any]]:
    values = grid_values(plan.space)
    assert values is not None
    return values
