"""The config's `sweep:` section: a grid of values or a search over distributions.

```yaml
sweep:
  grid: {model.layers[0].filters: [16, 32]}          # every combination (Optuna's grid sampler)
  search:                                            # or distributions, sampled by `sampler`
    train.optimizer.learning_rate: {float: [1.0e-4, 1.0e-2], log: true}
    model.layers[0].filters: {int: [8, 64], step: 8}
    model.defaults.conv2d.kernel_regularizer: {choice: [null, {l2: 1.0e-4}]}
  sampler: tpe       # tpe (default for a search), random, grid, cmaes
  trials: 30
  timeout: 2h
  prune: asha        # none, median, asha, hyperband
  min_epochs: 10     # no trial is judged before this epoch (default: 1, the median 2)
```

Keys are dotted config paths, exactly as for `--set`. The command line's `--grid`, `--search`,
`--sampler`, `--trials`, `--timeout` and `--prune` add to or replace these.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "asha", "hyperband")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """`90`, `90s`, `30m`, `2h`, `1.5d` -> seconds; ValueError saying what was expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 90s, 30m or 2h, received {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 90s, 30m or 2h, received {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration, received {value!r}")
    return seconds


class Distribution(BaseModel):
    """One searched value: exactly one of `float: [lo, hi]`, `int: [lo, hi]`, `choice: [...]`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    float_range: tuple[float, float] | None = Field(None, alias="float")
    int_range: tuple[int, int] | None = Field(None, alias="int")
    choice: Annotated[list[Any], Field(min_length=1)] | None = None
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        kinds = [k for k, v in (("float", self.float_range), ("int", self.int_range),
                                ("choice", self.choice)) if v is not None]  # fmt: skip
        if len(kinds) != 1:
            got = " and ".join(kinds) if kinds else "none of them"
            raise ValueError(
                f"expected exactly one of float: [lo, hi], int: [lo, hi] or choice: [...], received {got}"
            )
        if self.choice is not None:
            if self.log or self.step is not None:
                raise ValueError("expected no log or step for a choice, received one")
            dupes = sorted({repr(v) for v in self.choice if self.choice.count(v) > 1})
            if dupes:
                raise ValueError(
                    f"expected distinct choices, received duplicates {', '.join(dupes)}"
                )
            return self
        lo, hi = self.float_range or self.int_range  # type: ignore[misc]
        if not lo < hi:
            raise ValueError(f"expected lo < hi, received [{lo}, {hi}]")
        if self.log and lo <= 0:
            raise ValueError(f"expected lo > 0 for a log scale, received {lo}")
        if self.log and self.step is not None:
            raise ValueError("expected log or step, received both (Optuna samples neither so)")
        if self.int_range is not None and self.step is not None and self.step != int(self.step):
            raise ValueError(f"expected an integer step for an int range, received {self.step}")
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> dict[str, Any]:
        """`{float: [lo, hi], log: true}` as the user wrote it, not every unset field."""
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None and not (k == "log" and not v)}

    @property
    def kind(self) -> str:
        return "float" if self.float_range else "int" if self.int_range else "choice"

    def describe(self) -> str:
        if self.choice is not None:
            return f"choice of {len(self.choice)}"
        lo, hi = self.float_range or self.int_range  # type: ignore[misc]
        scale = ", log" if self.log else f", step {self.step:g}" if self.step else ""
        return f"{self.kind} [{lo:g}, {hi:g}]{scale}"


class SweepConfig(BaseModel):
    """`convtrain sweep` axes declared in the config (the CLI's options add to them)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # dotted config path (as for --set) -> the values to try
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    random: Annotated[int, Field(ge=1)] | None = None  # this many of the grid's combinations
    # dotted config path -> the distribution to search
    search: dict[str, Distribution] = {}
    sampler: Literal["tpe", "random", "grid", "cmaes"] | None = (
        None  # None: grid, or tpe for a search
    )
    trials: Annotated[int, Field(ge=1)] | None = None  # None: the whole grid
    timeout: float | None = None  # seconds (written 90s, 30m, 2h): no new trial starts after it
    prune: Literal["none", "median", "asha", "hyperband"] = "none"
    # The earliest epoch a trial may be stopped at (ASHA's and Hyperband's first rung, the
    # median's warm-up). Early epochs of a long schedule rank trials by luck, not by promise.
    min_epochs: Annotated[int, Field(ge=1)] | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _something_to_sweep(self) -> SweepConfig:
        if not self.grid and not self.search:
            raise ValueError(
                "expected a grid: {KEY: [V1, V2]} or a search: {KEY: DISTRIBUTION}, received neither"
            )
        both = sorted(set(self.grid) & set(self.search))
        if both:
            raise ValueError(f"{both[0]} is in both grid and search; expected it in one of them")
        return self
