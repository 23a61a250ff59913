"""What several commands share: the model plan checked once, and records read with a warning."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from convtrain.commands.console import Console
from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.model.plan import Plan, plan_model

T = TypeVar("T")


def planned(experiment: Experiment, num_classes: int, source: str) -> Plan:
    """The model's plan for `num_classes` classes; its problems are the config's (`source`)."""
    plan = plan_model(experiment, num_classes)
    if plan.problems:
        raise ConfigError(plan.problems, source=source)
    return plan


def read_or_warn(read: Callable[[], T | None], console: Console, left_out: str) -> T | None:
    """What `read` returns; None, after one warning line, when the file it reads is damaged."""
    try:
        return read()
    except ConvtrainError as exc:
        console.warning(f"{exc.lines()[0]}; {left_out}")
        return None
