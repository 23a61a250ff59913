"""Read a YAML config safely, apply `--set` overrides and layer defaults, validate it.

Every problem becomes one line `PATH: what was expected, what was received`, where PATH is the
YAML path (`model.layers[3].kernel_size`), collected into a single ConfigError.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from convtrain.config import overrides
from convtrain.config.messages import describe_error, describe_errors
from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 reads `1e-4` as a string; scientific notation without a dot is a float here.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str, locate: bool = True) -> Any:
    """Safe-load YAML; errors name `source:line:column` (just `source` when not `locate`)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark and locate else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        value = "" if locate else f" in the value {text!r}"
        raise ConfigError([f"invalid YAML{value}: {problem}"], source=f"{source}{where}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["no such file"], source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file ({exc})"], source=str(path)) from None
    data = parse_yaml(text, str(path))
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
    """Validate a raw config mapping (overrides already applied); raise ConfigError on problems."""
    problems = overrides.merge_defaults(raw, lambda err: describe_error(err, raw))
    if problems:
        raise ConfigError(problems, source=source)
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc.errors(), raw), source=source) from None
    from convtrain.model.plan import check_stack  # TF-free shape arithmetic

    problems = check_stack(experiment)
    if problems:
        raise ConfigError(problems, source=source)
    return experiment


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
