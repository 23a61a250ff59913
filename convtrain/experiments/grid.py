"""Sweep axes (`--grid KEY=V1,V2,...`) and their expansion into trials.

A trial is a tuple of `--set` assignments, so a sweep trial is exactly a normal run with
overrides: nothing a sweep does cannot be repeated by hand with `convtrain train --set`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import yaml

from convtrain.config.load import parse_yaml
from convtrain.errors import ConvtrainError


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[Any, ...]


def parse_axis(option: str) -> Axis:
    """`model.layers[0].kernel_size=3,5,7` -> Axis; values are YAML, so `[3,3],[5,5]` works."""
    where = f"--grid {option}"
    key, sep, text = option.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ConvtrainError(
            f"{where}: expected KEY=V1,V2,... e.g. model.layers[0].filters=16,32,64"
        )
    values = parse_yaml(f"[{text}]", where)
    if len(values) < 1:
        raise ConvtrainError(f"{where}: expected at least one value, received none")
    dupes = sorted({repr(v) for v in values if values.count(v) > 1})
    if dupes:
        raise ConvtrainError(
            f"{where}: expected distinct values, received duplicates {', '.join(dupes)}"
        )
    return Axis(key=key, values=tuple(values))


def axes_from_mapping(grid: dict[str, list[Any]]) -> list[Axis]:
    """The YAML form `sweep: {grid: {KEY: [V1, V2]}}`."""
    return [Axis(key=k, values=tuple(v)) for k, v in grid.items()]


def expand(
    axes: list[Axis], random_trials: int | None = None, seed: int = 0
) -> list[tuple[str, ...]]:
    """All combinations (or `random_trials` of them, sampled without replacement, seeded)."""
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConvtrainError(
            f"--grid {dup}: the same key is swept twice; give all its values in one --grid"
        )
    combos = list(itertools.product(*(a.values for a in axes)))
    if random_trials is not None:
        if random_trials < 1:
            raise ConvtrainError(
                f"--random: expected a positive number of trials, received {random_trials}"
            )
        if random_trials < len(combos):
            combos = random.Random(seed).sample(combos, random_trials)
    return [tuple(assignment(k, v) for k, v in zip(keys, combo, strict=True)) for combo in combos]


def assignment(key: str, value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"{key}={text}"
