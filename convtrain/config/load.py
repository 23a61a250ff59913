"""Read a YAML config safely, apply `--set` overrides and layer defaults, validate it.

Reading goes through convtrain.safeload: a budget on size, nodes and depth before anything is
built, so a hostile file is one line, not a hang or a RecursionError.

Every problem becomes one line `PATH: what was expected, what was received`, where PATH is the
YAML path (`model.layers[3].kernel_size`), collected into a single ConfigError.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from convtrain.config import overrides
from convtrain.config.messages import describe_error, describe_errors
from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError
from convtrain.safeload import load_yaml, read_yaml_file


def parse_yaml(text: str, source: str, locate: bool = True) -> Any:
    """Safe-load YAML within convtrain's budget (size, nodes after alias expansion, depth)."""
    return load_yaml(text, source, locate=locate)


def read_yaml(path: str | Path) -> dict[str, Any]:
    data = read_yaml_file(path)
    expected = "expected a mapping of sections (name, data, model, ...)"
    if data is None:
        raise ConfigError([f"{expected}, received an empty file"], source=str(path))
    if not isinstance(data, dict):
        raise ConfigError([f"{expected}, received a {type(data).__name__}"], source=str(path))
    return data


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `--set KEY=VALUE` to a raw config (VALUE is parsed as YAML)."""
    overrides.apply_override(
        raw, assignment, lambda text, where: parse_yaml(text, where, locate=False)
    )


def validate(raw: dict[str, Any], source: str = "config") -> Experiment:
    """Validate a raw config mapping (overrides already applied); raise ConfigError on problems.

    The layer stack is checked by planning the model with the real number of classes, which the
    caller knows (`convtrain.model.plan.plan_model`): not here, once with a guess.
    """
    problems = overrides.merge_defaults(raw, lambda err: describe_error(err, raw))
    if problems:
        raise ConfigError(problems, source=source)
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc.errors(), raw), source=source) from None


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Experiment:
    raw = read_yaml(path)
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate(raw, source=str(path))


def dump_config(experiment: Experiment) -> str:
    """The fully resolved config as YAML: loading it again gives the same experiment.

    model.defaults is kept: the layers already carry its values, and the layers convtrain adds
    (residual projections, the classifier head) take theirs from it.
    """
    data = experiment.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
