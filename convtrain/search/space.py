"""The search space: one dimension per config path, as Optuna distributions and `--set` values.

A dimension is a grid axis (its values) or a searched distribution (`{float: [lo, hi]}`, ...).
Optuna stores only None, bool, int, float and str, so a choice that is a list or a mapping
(`{l2: 1.0e-4}`, `[alpha, beta]`) is stored as its YAML text and turned back into the value by
its position among the choices: a trial's params always name the `--set` it trained with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from convtrain.config.load import parse_yaml
from convtrain.config.sweep import Distribution, SweepConfig
from convtrain.errors import ConvtrainError
from convtrain.experiments.grid import Axis, assignment, parse_axis

_SCALARS = (type(None), bool, int, float, str)


def _encode(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    return assignment("", value).removeprefix("=")  # its YAML flow text


def _on_step(value: float) -> float:
    """A stepped float as written: Optuna's steps are low + k * step in floating point, and
    0.2 + 0.1 is 0.30000000000000004, a config value no one wrote."""
    return round(value, 12)


@dataclass(frozen=True)
class Dim:
    key: str  # the dotted config path, also the Optuna parameter name
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()  # the values as the config writes them
    from_grid: bool = False

    @classmethod
    def from_axis(cls, axis: Axis) -> Dim:
        return cls(axis.key, "choice", choices=tuple(axis.values), from_grid=True)

    @classmethod
    def from_spec(cls, key: str, spec: Distribution) -> Dim:
        if spec.choice is not None:
            return cls(key, "choice", choices=tuple(spec.choice))
        lo, hi = spec.float_range or spec.int_range  # type: ignore[misc]
        step = spec.step if spec.kind == "float" else (spec.step or 1)
        return cls(key, spec.kind, low=lo, high=hi, log=spec.log, step=step)

    def distribution(self) -> Any:
        import optuna

        d = optuna.distributions
        if self.kind == "choice":
            return d.CategoricalDistribution([_encode(c) for c in self.choices])
        if self.kind == "int":
            step = 1 if self.log else int(self.step or 1)
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=step)  # type: ignore[arg-type]
        return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)  # type: ignore[arg-type]

    def finite_values(self) -> list[Any] | None:
        """Every value, for the grid sampler (Optuna's stored form); None for a continuous range."""
        if self.kind == "choice":
            return [_encode(c) for c in self.choices]
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))  # type: ignore[arg-type]
        if self.kind == "float" and self.step is not None:
            n = int(round((self.high - self.low) / self.step))  # type: ignore[operator]
            return [_on_step(self.low + i * self.step) for i in range(n + 1)]  # type: ignore[operator]
        return None

    def decode(self, value: Any) -> Any:
        """The config value of an Optuna parameter value."""
        if self.kind == "choice":
            encoded = [_encode(c) for c in self.choices]
            if value not in encoded:
                raise ConvtrainError(
                    f"{self.key}: the study holds the value {value!r}, not one of this sweep's "
                    f"choices; expected the same sweep to resume the study"
                )
            return self.choices[encoded.index(value)]
        if self.kind == "float" and self.step is not None:
            return _on_step(float(value))
        return int(value) if self.kind == "int" else float(value)

    def describe(self) -> str:
        if self.kind == "choice":
            values = ", ".join(assignment("", c).removeprefix("=") for c in self.choices)
            return f"{'grid' if self.from_grid else 'choice'} [{values}]"
        scale = ", log" if self.log else f", step {self.step:g}" if self.step else ""
        return f"{self.kind} [{self.low:g}, {self.high:g}]{scale}"


def parse_search(option: str) -> tuple[str, Distribution]:
    """`--search 'train.optimizer.learning_rate={float: [1.0e-4, 1.0e-2], log: true}'`."""
    where = f"--search {option}"
    key, sep, text = option.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ConvtrainError(
            f"{where}: expected KEY=SPEC, e.g. train.optimizer.learning_rate="
            "'{float: [1.0e-4, 1.0e-2], log: true}'"
        )
    spec = parse_yaml(text, where, locate=False)
    try:
        return key, Distribution.model_validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ConvtrainError(f"{where}: {field + ': ' if field else ''}{msg}") from None


def build_space(
    declared: SweepConfig | None, grid: tuple[str, ...] = (), search: tuple[str, ...] = ()
) -> list[Dim]:
    """The config's grid and search, then --grid and --search: a later one wins for a key."""
    dims: dict[str, Dim] = {}
    if declared is not None:
        dims.update({k: Dim.from_axis(Axis(k, tuple(v))) for k, v in declared.grid.items()})
        dims.update({k: Dim.from_spec(k, s) for k, s in declared.search.items()})
    for option in grid:
        axis = parse_axis(option)
        if axis.key in {parse_axis(o).key for o in grid if o is not option}:
            raise ConvtrainError(
                f"--grid {axis.key}: the same key is swept twice; give all its values in one --grid"
            )
        dims[axis.key] = Dim.from_axis(axis)
    for option in search:
        key, spec = parse_search(option)
        dims[key] = Dim.from_spec(key, spec)
    return list(dims.values())


def grid_values(space: list[Dim]) -> dict[str, list[Any]] | None:
    """The grid sampler's search space, or None when a dimension is continuous."""
    values = {d.key: d.finite_values() for d in space}
    return None if any(v is None for v in values.values()) else values  # type: ignore[return-value]


def grid_size(space: list[Dim]) -> int | None:
    values = grid_values(space)
    return None if values is None else math.prod(len(v) for v in values.values())


def assignments(space: list[Dim], params: dict[str, Any]) -> list[str]:
    """A trial's params as `--set KEY=VALUE` assignments, in the space's order."""
    return [assignment(d.key, d.decode(params[d.key])) for d in space if d.key in params]
