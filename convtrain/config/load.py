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
from pydantic import BaseModel, ValidationError

from convtrain.config.keras_objects import suggest
from convtrain.config.layers import LAYER_TYPES, SPEC_BY_TYPE
from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
# YAML 1.1 reads `1e-4` as a string; scientific notation without a dot is a float here.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"invalid YAML: {problem}"], source=f"{source}{where}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["no such file"], source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file ({exc})"], source=str(path)) from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(["expected a mapping of sections (name, data, model, ...), received an empty file"], source=str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            [f"expected a mapping of sections (name, data, model, ...), received {type(data).__name__}"],
            source=str(path),
        )
    return data


# --- --set KEY=VALUE --------------------------------------------------------------------------


def _tokens(path: str) -> list[str | int]:
    pos, out = 0, []
    for m in _TOKEN.finditer(path):
        between = path[pos : m.start()]
        if between not in ("", "."):
            raise ValueError(f"cannot parse the key {path!r}")
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not out or pos != len(path):
        raise ValueError(f"cannot parse the key {path!r}")
    return out


def format_path(tokens: tuple | list) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else str(t))
    return out


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `KEY=VALUE` (KEY a dotted path with [i] indices, VALUE parsed as YAML)."""
    where = f"--set {assignment}"
    if "=" not in assignment:
        raise ConfigError(["expected KEY=VALUE, e.g. model.layers[0].filters=64"], source=where)
    key, _, text = assignment.partition("=")
    try:
        tokens = _tokens(key.strip())
    except ValueError as exc:
        raise ConfigError([f"{exc}; expected a dotted path such as train.epochs or model.layers[0].filters"], source=where) from None
    value = parse_yaml(text, where)
    node: Any = raw
    for depth, tok in enumerate(tokens):
        last = depth == len(tokens) - 1
        here = format_path(tokens[: depth + 1])
        if isinstance(tok, int):
            if not isinstance(node, list):
                raise ConfigError([f"{format_path(tokens[:depth])} is not a list, cannot index it"], source=where)
            if tok >= len(node):
                raise ConfigError(
                    [f"{format_path(tokens[:depth])} has {len(node)} entries, received index {tok}"],
                    source=where,
                )
        elif not isinstance(node, dict):
            raise ConfigError([f"{format_path(tokens[:depth])} is not a mapping, cannot set {tok!r}"], source=where)
        if last:
            node[tok] = value
        else:
            nxt = node[tok] if isinstance(tok, int) else node.get(tok)
            if nxt is None:  # creating a missing section, e.g. --set train.early_stopping.patience=3
                nxt = {}
                node[tok] = nxt
            node = nxt
            del here


# --- model.defaults ------------------------------------------------------------------------


def _merge_defaults(raw: dict[str, Any]) -> list[str]:
    model = raw.get("model")
    if not isinstance(model, dict) or not model.get("defaults"):
        return []
    defaults = model["defaults"]
    if not isinstance(defaults, dict):
        return [f"model.defaults: expected a mapping from layer type to values, received {defaults!r}"]
    problems = []
    for ltype, values in defaults.items():
        path = f"model.defaults.{ltype}"
        if ltype not in SPEC_BY_TYPE:
            problems.append(
                f"{path}: unknown layer type {ltype!r}{suggest(str(ltype), LAYER_TYPES)} "
                f"(valid types: {', '.join(LAYER_TYPES)})"
            )
            continue
        if not isinstance(values, dict):
            problems.append(f"{path}: expected a mapping of {ltype} arguments, received {values!r}")
            continue
        fields = [f for f in SPEC_BY_TYPE[ltype].model_fields if f not in ("type", "name")]
        for key in values:
            if key not in fields:
                problems.append(f"{path}.{key}: unknown key {key!r} for {ltype}{suggest(str(key), fields)}")
    if problems:
        return problems

    def apply(layers: Any) -> None:
        if not isinstance(layers, list):
            return
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                continue
            if layer.get("type") in defaults:
                layers[i] = layer = {**defaults[layer["type"]], **layer}
            apply(layer.get("body"))
            for branch in layer.get("branches") or []:
                apply(branch)

    apply(model.get("layers"))
    return []


# --- pydantic errors -> one line each --------------------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The BaseModel classes (or list types) an annotation may hold."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if origin is list or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return [annotation]
    return []


def _walk(loc: tuple, raw: Any) -> tuple[list[str | int], Any, type[BaseModel] | None]:
    """Drop the union tags pydantic puts in `loc`; also return the raw value and model class there."""
    path: list[str | int] = []
    node, cls = raw, Experiment
    candidates: list[Any] = [Experiment]
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node:
            tag = node.get("type", node.get("method"))
            if part == tag or any(isinstance(c, type) and c.__name__ == part for c in candidates):
                continue  # a discriminator tag, not a YAML key
        path.append(part)
        # descend in the raw data
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        # descend in the type
        nxt: list[Any] = []
        for c in candidates:
            if isinstance(part, int) and typing.get_origin(c) is list:
                nxt.extend(_unwrap(typing.get_args(c)[0]))
            elif isinstance(c, type) and issubclass(c, BaseModel) and part in c.model_fields:
                nxt.extend(_unwrap(c.model_fields[part].annotation))
        candidates = nxt
        if isinstance(node, dict):
            tag = node.get("type", node.get("method"))
            tagged = [
                c
                for c in candidates
                if isinstance(c, type)
                and issubclass(c, BaseModel)
                and any(
                    f in c.model_fields and tag in typing.get_args(c.model_fields[f].annotation)
                    for f in ("type", "method")
                )
            ]
            candidates = tagged or candidates
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    cls = models[0] if len(models) == 1 else None
    return path, node, cls


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_PLAIN = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "too_short": "a longer list",
    "string_pattern_mismatch": "a name of letters, digits, '_', '.' or '-'",
}


def kind_bound(kind: str) -> str:
    return {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}[kind]


def _describe(err: dict[str, Any], raw: dict[str, Any]) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    loc = err["loc"]
    if kind == "extra_forbidden":
        parent_path, _, parent_cls = _walk(loc[:-1], raw)
        key = loc[-1]
        path = format_path([*parent_path, key])
        valid = [f for f in parent_cls.model_fields] if parent_cls else []
        hint = suggest(str(key), valid)
        listing = f" (valid keys: {', '.join(valid)})" if valid and not hint else ""
        return f"{path}: unknown key {key!r}{hint}{listing}"
    path_tokens, _, _ = _walk(loc, raw)
    path = format_path(path_tokens) or "(top level)"
    if kind == "missing":
        parent = format_path(path_tokens[:-1]) or "(top level)"
        return f"{parent}: missing required key {path_tokens[-1]!r}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_name = err.get("ctx", {}).get("discriminator", "'type'").strip("'")
        expected = [t.strip(" '") for t in err.get("ctx", {}).get("expected_tags", "").split(",")]
        got = value.get(tag_name) if isinstance(value, dict) else None
        what = "layer type" if tag_name == "type" and set(expected) <= set(LAYER_TYPES) else tag_name
        if kind == "union_tag_not_found":
            return f"{path}: missing {tag_name!r}; expected one of {', '.join(expected)}"
        return (
            f"{path}.{tag_name}: unknown {what} {got!r}{suggest(str(got), expected)} "
            f"(valid: {', '.join(expected)})"
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a mapping, received {value!r}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        return f"{path}: expected one of {expected}, received {value!r}{suggest(str(value), choices)}"
    ctx = err.get("ctx", {})
    if kind in _BOUNDS:
        return f"{path}: expected a number {_BOUNDS[kind]} {ctx.get(kind_bound(kind))}, received {value!r}"
    if kind in _PLAIN:
        return f"{path}: expected {_PLAIN[kind]}, received {value!r}"
    if kind == "value_error":
        return f"{path}: {msg.removeprefix('Value error, ')}"
    text = msg.removeprefix("Input should be ").removeprefix("Value error, ")
    return f"{path}: expected {text[0].lower() + text[1:] if text else kind}, received {value!r}"


def validate(raw: dict[str, Any], source: str = "config") -> Experiment:
    """Validate a raw config mapping (overrides already applied); raise ConfigError on problems."""
    problems = _merge_defaults(raw)
    if problems:
        raise ConfigError(problems, source=source)
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as exc:
        lines = list(dict.fromkeys(_describe(e, raw) for e in exc.errors()))
        raise ConfigError(lines, source=source) from None
    from convtrain.model.shapes import check_stack  # TF-free shape arithmetic

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
    """The fully resolved config as YAML: loading it again gives the same experiment."""
    data = experiment.model_dump(mode="json", exclude={"model": {"defaults"}})
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
