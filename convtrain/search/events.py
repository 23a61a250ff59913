"""What a sweep tells its command while it runs, as events: this package never prints.

The engine and the trial runner hand each event to the command's `Emit` callback, which draws
it (convtrain.commands.console: a live display on a terminal, the events' lines elsewhere).
Events may come from several threads at once (`--workers`: one per trial process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from convtrain.search.results import best, configurations


@dataclass(frozen=True)
class Tally:
    """The study's configurations as last counted, other processes' included."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    total: int | None = None  # the budget of trials (None: until --timeout or Ctrl-C)
    best: float | None = None  # train.monitor of the best complete trial

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed

    def line(self) -> None:
        return None  # shown by a live display only: the plain lines tell each trial's end


@dataclass(frozen=True)
class Opened:
    sweep_dir: Path
    study: str
    storage: str  # its URL, the password masked
    monitor: str  # what a trial's value is (train.monitor)
    maximize: bool

    def line(self) -> str:
        return f"sweep {self.sweep_dir}: study {self.study} in {self.storage}"


@dataclass(frozen=True)
class Reclaimed:
    """Trials whose process died (elsewhere, or a killed sweep): put back to run again."""

    trials: tuple[int, ...]

    def line(self) -> str:
        numbers = ", ".join(map(str, self.trials))
        return f"trials {numbers} lost their process: retried (resumed from their run directories)"


@dataclass(frozen=True)
class TrialStarted:
    number: int
    sets: tuple[str, ...]
    run_name: str
    log: Path

    def line(self) -> str:
        return (
            f"trial {self.number} started: {' '.join(self.sets)} ({self.run_name}, log {self.log})"
        )


@dataclass(frozen=True)
class TrialKilled:
    """The trial process died of a signal: its run is resumed in place."""

    number: int
    signal: int

    def line(self) -> str:
        return (
            f"trial {self.number}: its process was killed (signal {self.signal}); resuming its run"
        )


@dataclass(frozen=True)
class TrialOutput:
    """One line the trial process wrote on stderr (its epochs, its errors)."""

    number: int
    text: str

    def line(self) -> str:
        return self.text


@dataclass(frozen=True)
class TrialEnded:
    number: int
    state: str  # "complete", "pruned" or "failed"
    value: float | None = None
    epochs: int | None = None
    run_name: str | None = None
    reason: str | None = None  # why it failed
    sets: tuple[str, ...] = ()  # a config that failed validation: what was sampled
    twin: int | None = None  # the earlier trial of the same configuration: not trained again

    def line(self) -> str:
        if self.twin is not None:
            ended = "pruned" if self.state == "pruned" else f"value {self.value:.4f}"
            return (
                f"trial {self.number}: the configuration of trial {self.twin} ({ended}), "
                f"not trained again"
            )
        if self.state == "failed":
            sampled = f"{' '.join(self.sets)}: " if self.sets else ""
            return f"trial {self.number} failed: {sampled}{self.reason}"
        if self.state == "pruned":
            return f"trial {self.number} pruned after epoch {self.epochs} ({self.run_name})"
        return (
            f"trial {self.number} complete: value {self.value:.4f} after {self.epochs} epochs "
            f"({self.run_name})"
        )


Event = Tally | Opened | Reclaimed | TrialStarted | TrialKilled | TrialOutput | TrialEnded
Emit = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default: a sweep run from code shows nothing."""


def tally(study: Any, total: int | None) -> Tally:
    trials = configurations(study)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    top = best(study)
    return Tally(
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        total=total,
        best=None if top is None else float(top.value),
    )
