"""Optimizers and epoch-based learning-rate schedules.

A schedule is a pure function of the epoch (0-based) so a resumed run sets exactly the rate the
uninterrupted run would have set. `plateau` depends on the monitored metric, so its small state
lives in `PlateauState`, saved in state.json with the rest of the training state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from convtrain.config.schema import (
    AdamConfig,
    AdamWConfig,
    CosineSchedule,
    ExponentialSchedule,
    OptimizerConfig,
    PlateauSchedule,
    RMSpropConfig,
    ScheduleConfig,
    SGDConfig,
    StepSchedule,
    TrainConfig,
)


def _common(cfg: OptimizerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"learning_rate": cfg.learning_rate}
    if cfg.clipnorm is not None:
        out["clipnorm"] = cfg.clipnorm
    if cfg.weight_decay is not None:
        out["weight_decay"] = cfg.weight_decay
    return out


def _adam(cfg: AdamConfig) -> Any:
    import keras

    return keras.optimizers.Adam(
        beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=cfg.epsilon, **_common(cfg)
    )


def _adamw(cfg: AdamWConfig) -> Any:
    import keras

    return keras.optimizers.AdamW(
        beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=cfg.epsilon, **_common(cfg)
    )


def _sgd(cfg: SGDConfig) -> Any:
    import keras

    return keras.optimizers.SGD(momentum=cfg.momentum, nesterov=cfg.nesterov, **_common(cfg))


def _rmsprop(cfg: RMSpropConfig) -> Any:
    import keras

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


@dataclass
class PlateauState:
    """ReduceLROnPlateau's memory: the current rate, the best monitored value, epochs without gain."""

    lr: float
    best: float | None = None
    wait: int = 0

    def update(self, schedule: PlateauSchedule, value: float, mode: str) -> None:
        """Account for one finished epoch's monitored `value` ('max' or 'min' is better)."""
        improved = self.best is None or (value > self.best if mode == "max" else value < self.best)
        if improved:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= schedule.patience:
            self.lr = max(self.lr * schedule.factor, schedule.min_lr)
            self.wait = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: str) -> PlateauState:
        from convtrain.errors import ConvtrainError

        try:
            best = data["best"]
            return cls(
                lr=float(data["lr"]),
                best=None if best is None else float(best),
                wait=int(data["wait"]),
            )
        except (TypeError, KeyError, ValueError):
            raise ConvtrainError(
                f"{source}: plateau: expected {{lr, best, wait}}, received {data!r}"
            ) from None


def learning_rate(train: TrainConfig, epoch: int, plateau: PlateauState | None = None) -> float:
    """The rate for `epoch` (0-based); plateau schedules read it from their state."""
    if train.schedule.type == "plateau":
        if plateau is None:
            return train.optimizer.learning_rate
        return plateau.lr
    return SCHEDULES[train.schedule.type](
        train.schedule, train.optimizer.learning_rate, epoch, train.epochs
    )
