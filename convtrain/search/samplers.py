"""The plan's sampler and pruner, as Optuna objects; the same in every process of a study.

Every process of a study builds them from the plan (or, in a trial process, from the study's
own record), so a grid is shuffled the same way everywhere and a pruner decides alike.
"""

from __future__ import annotations

import zlib
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.samplers._lazy_random_state import LazyRandomState

# The median pruner's rules: the first trials always finish (there is no median without
# them), and no trial is judged on its first epoch (too noisy to stop anything on).
MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_EPOCHS = 2  # the earliest epoch a trial is judged on
# Successive halving (ASHA) and Hyperband: rungs at 1, 3, 9, ... epochs, a third promoted.
REDUCTION_FACTOR = 3
MIN_EPOCHS = 1


class PerTrialSeed(BaseSampler):
    """A sampler whose random state is reseeded from (seed, trial number) before each trial.

    Trial numbers are unique in a study, so processes started with the same seed on several
    machines never draw the same values, and with one process trial k draws the same values
    however often the sweep was interrupted and resumed.
    """

    def __init__(self, inner: BaseSampler, seed: int) -> None:
        self.inner, self.seed = inner, seed

    def _reseed(self, number: int) -> None:
        seed = zlib.crc32(f"{self.seed}:{number}".encode())
        for sampler in (self.inner, *_children(self.inner)):
            if hasattr(sampler, "_rng"):
                sampler._rng = LazyRandomState(seed)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._reseed(trial.number)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self.inner.sample_independent(study, trial, name, dist)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def _children(sampler: BaseSampler) -> list[BaseSampler]:
    out = []
    for name in ("_random_sampler", "_independent_sampler"):
        child = getattr(sampler, name, None)
        if isinstance(child, BaseSampler):
            out += [child, *_children(child)]
    return out


def make_sampler(
    name: str, seed: int, grid: dict[str, list[Any]] | None, trials: int | None
) -> BaseSampler:
    s = optuna.samplers
    if name == "grid":
        assert grid is not None
        # The grid's order (shuffled by the seed) must be the same in every process.
        return s.GridSampler(grid, seed=seed)
    if name == "random":
        return PerTrialSeed(s.RandomSampler(seed=seed), seed)
    # Random trials first, so the model of good and bad regions has something to fit.
    startup = max(2, min(10, (trials or 30) // 3))
    if name == "cmaes":
        inner = s.CmaEsSampler(
            seed=seed,
            n_startup_trials=startup,
            independent_sampler=s.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    else:
        # constant_liar: a trial still running counts as a poor one, so workers sampling at the
        # same time do not all propose the same point.
        inner = s.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    return PerTrialSeed(inner, seed)


def first_judged_epoch(name: str, min_epochs: int | None) -> int:
    """The earliest epoch the pruner `name` may stop a trial at (sweep.min_epochs or its default)."""
    if min_epochs is not None:
        return min_epochs
    return MEDIAN_WARMUP_EPOCHS if name == "median" else MIN_EPOCHS


def make_pruner(name: str, epochs: int, min_epochs: int | None = None) -> optuna.pruners.BasePruner:
    p = optuna.pruners
    first = first_judged_epoch(name, min_epochs)
    if name == "median":
        # Steps are the epochs reported (1, 2, ...); Optuna first judges step == n_warmup_steps.
        return p.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=first)
    if name == "asha":
        return p.SuccessiveHalvingPruner(min_resource=first, reduction_factor=REDUCTION_FACTOR)
    if name == "hyperband":
        return p.HyperbandPruner(
            min_resource=first, max_resource=epochs, reduction_factor=REDUCTION_FACTOR
        )
    return p.NopPruner()
