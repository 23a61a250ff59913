"""Optimizers and epoch-based learning-rate schedules.

A schedule is a pure function of the epoch (0-based) so a resumed run sets exactly the rate the
uninterrupted run would have set. `plateau` depends on the monitored metric, so its small state
lives in `PlateauState`, saved in state.json with the rest of the training state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras

from convtrain.config.schema import (
    AdamConfig,
    AdamWConfig,
    CosineSchedule,
    ExponentialSchedule,
    OptimizerConfig,
    RMSpropConfig,
    ScheduleConfig,
    SGDConfig,
    StepSchedule,
    TrainConfig,
)
from convtrain.train.state import PlateauState


def _common(cfg: OptimizerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"learning_rate": cfg.learning_rate}
    if cfg.clipnorm is not None:
        out["clipnorm"] = cfg.clipnorm
    if cfg.weight_decay is not None:
        out["weight_decay"] = cfg.weight_decay
    return out


def _adam(cfg: AdamConfig) -> Any:
    return keras.optimizers.Adam(
        beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=cfg.epsilon, **_common(cfg)
    )


def _adamw(cfg: AdamWConfig) -> Any:
    return keras.optimizers.AdamW(
        beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=cfg.epsilon, **_common(cfg)
    )


def _sgd(cfg: SGDConfig) -> Any:
    return keras.optimizers.SGD(momentum=cfg.momentum, nesterov=cfg.nesterov, **_common(cfg))


def _rmsprop(cfg: RMSpropConfig) -> Any:
    return keras.optimizers.RMSprop(
        rho=cfg.rho, momentum=cfg.momentum, epsilon=cfg.epsilon, **_common(cfg)
    )


OPTIMIZERS: dict[str, Callable[[Any], Any]] = {
    "adam": _adam,
    "adamw": _adamw,
    "sgd": _sgd,
    "rmsprop": _rmsprop,
}


def make_optimizer(cfg: OptimizerConfig) -> Any:
    """A Keras optimizer whose learning rate is a plain variable (the schedule sets it per epoch)."""
    return OPTIMIZERS[cfg.type](cfg)


# --- schedules: (schedule, base rate, epoch, total epochs) -> rate -----------------------------


def _constant(s: ScheduleConfig, base: float, epoch: int, total: int) -> float:
    return base


def _step(s: StepSchedule, base: float, epoch: int, total: int) -> float:
    return base * s.gamma ** (epoch // s.step_epochs)


def _exponential(s: ExponentialSchedule, base: float, epoch: int, total: int) -> float:
    return base * s.decay_rate**epoch


def _cosine(s: CosineSchedule, base: float, epoch: int, total: int) -> float:
    if epoch < s.warmup_epochs:
        # Linear warm-up reaching the base rate on the last warm-up epoch, never a zero rate.
        return base * (epoch + 1) / s.warmup_epochs
    # Decays towards min_lr over the remaining epochs; the last epoch still has a non-zero step.
    span = max(1, total - s.warmup_epochs)
    progress = min(1.0, (epoch - s.warmup_epochs) / span)
    return s.min_lr + (base - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, Callable[[Any, float, int, int], float]] = {
    "constant": _constant,
    "step": _step,
    "exponential": _exponential,
    "cosine": _cosine,
}


def learning_rate(train: TrainConfig, epoch: int, plateau: PlateauState | None = None) -> float:
    """The rate for `epoch` (0-based); plateau schedules read it from their state."""
    if train.schedule.type == "plateau":
        if plateau is None:
            return train.optimizer.learning_rate
        return plateau.lr
    return SCHEDULES[train.schedule.type](
        train.schedule, train.optimizer.learning_rate, epoch, train.epochs
    )
