"""Pydantic validation errors turned into one line each: `PATH: expected ..., received ...`.

PATH is the YAML path the user wrote (`model.layers[3].kernel_size`): the union and
discriminator tags pydantic puts in an error's location are dropped, and the errors of the
members of a union are merged into one line listing every accepted form.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from convtrain.config.overrides import format_path
from convtrain.config.schema import Experiment, OptimizerConfig, ScheduleConfig, SplitConfig
from convtrain.layers import LAYER_TYPES
from convtrain.layers.keras_objects import suggest


def _unwrap(annotation: Any) -> list[Any]:
    """The BaseModel classes (or list types) an annotation may hold."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if origin is list or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return [annotation]
    return []


def _walk(loc: tuple, raw: Any) -> tuple[list[str | int], Any, type[BaseModel] | None, int | None]:
    """Drop the union tags pydantic puts in `loc`.

    Returns the YAML path, the raw value and the model class there, and the path length at
    which a (non-discriminated) union member's tag was dropped, if any.
    """
    path: list[str | int] = []
    node = raw
    union_at: int | None = None
    candidates: list[Any] = [Experiment]
    for part in loc:
        if isinstance(part, str) and node is not None and not isinstance(node, dict):
            union_at = len(path)  # e.g. 'constrained-int', "literal['all']", 'list[str]'
            continue
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
    return path, node, cls, union_at


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
    "string_pattern_mismatch": "a name of letters, digits, '_', '.' or '-'",
}


_BOUND_KEYS = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}
# The tags a discriminated union accepts, by the YAML key holding it (layers otherwise).
_TAGGED = {"optimizer": OptimizerConfig, "schedule": ScheduleConfig, "split": SplitConfig}


def _union_tags(path_tokens: list[str | int]) -> list[str]:
    union = _TAGGED.get(str(path_tokens[-1])) if path_tokens else None
    if union is None:
        return list(LAYER_TYPES)
    out = []
    for cls in _unwrap(union):
        field = cls.model_fields.get("type") or cls.model_fields["method"]
        out.extend(typing.get_args(field.annotation))
    return out


def describe_error(err: dict[str, Any], raw: dict[str, Any]) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    loc = err["loc"]
    if kind == "extra_forbidden":
        parent_path, _, parent_cls, _ = _walk(loc[:-1], raw)
        key = loc[-1]
        path = format_path([*parent_path, key])
        valid = [f for f in parent_cls.model_fields] if parent_cls else []
        hint = suggest(str(key), valid)
        listing = f" (valid keys: {', '.join(valid)})" if valid and not hint else ""
        return f"{path}: unknown key {key!r}{hint}{listing}"
    path_tokens, _, _, _ = _walk(loc, raw)
    path = format_path(path_tokens) or "(top level)"
    if kind == "missing":
        parent = format_path(path_tokens[:-1]) or "(top level)"
        return f"{parent}: missing required key {path_tokens[-1]!r}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_name = err.get("ctx", {}).get("discriminator", "'type'").strip("'")
        tags = err.get("ctx", {}).get("expected_tags")
        expected = [t.strip(" '") for t in tags.split(",")] if tags else _union_tags(path_tokens)
        got = value.get(tag_name) if isinstance(value, dict) else None
        what = (
            "layer type" if tag_name == "type" and set(expected) <= set(LAYER_TYPES) else tag_name
        )
        if kind == "union_tag_not_found":
            return (
                f"{path}: missing key {tag_name!r}; expected a mapping with {tag_name}: one of "
                f"{', '.join(expected)}, received {value!r}"
            )
        return (
            f"{path}.{tag_name}: unknown {what} {got!r}{suggest(str(got), expected)} "
            f"(valid: {', '.join(expected)})"
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a mapping, received {value!r}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        return (
            f"{path}: expected one of {expected}, received {value!r}{suggest(str(value), choices)}"
        )
    ctx = err.get("ctx", {})
    if kind in _BOUNDS:
        bound = ctx.get(_BOUND_KEYS[kind])
        return f"{path}: expected a number {_BOUNDS[kind]} {bound}, received {value!r}"
    if kind == "too_short":
        return (
            f"{path}: expected at least {ctx.get('min_length')} item(s), received "
            f"{len(value) if isinstance(value, (list, tuple)) else value!r}"
            + (" items" if isinstance(value, (list, tuple)) else "")
        )
    if kind in _PLAIN:
        return f"{path}: expected {_PLAIN[kind]}, received {value!r}"
    if kind == "value_error":
        return f"{path}: {msg.removeprefix('Value error, ')}"
    text = msg.removeprefix("Input should be ").removeprefix("Value error, ")
    return f"{path}: expected {text[0].lower() + text[1:] if text else kind}, received {value!r}"


def _missing(errors: list[dict[str, Any]]) -> list[str]:
    return [str(e["loc"][-1]) for e in errors if e["type"] == "missing"]


def describe_errors(errors: list[dict[str, Any]], raw: dict[str, Any]) -> list[str]:
    """One line per problem; the members of a failed union share one line."""
    lines: list[str] = []
    unions: dict[str, list[str]] = {}  # YAML path of a union -> its members' lines
    deeper: set[str] = set()  # unions where one member got past the type check
    # A misspelt key also makes the intended key "missing": report only the misspelling.
    misspelt = {
        (tuple(err["loc"][:-1]), close)
        for err in errors
        if err["type"] == "extra_forbidden"
        for close in difflib.get_close_matches(str(err["loc"][-1]), _missing(errors), 1, 0.6)
    }
    for err in errors:
        if err["type"] == "missing" and (tuple(err["loc"][:-1]), err["loc"][-1]) in misspelt:
            continue
        path_tokens, _, _, union_at = _walk(err["loc"], raw)
        line = describe_error(err, raw)
        if union_at is None:
            lines.append(line)
            continue
        key = format_path(path_tokens[:union_at])
        if len(path_tokens) > union_at:
            deeper.add(key)
            lines.append(line)
        else:
            if key not in unions:
                lines.append(key)  # placeholder, replaced below to keep the order
            unions.setdefault(key, []).append(line)
    out = []
    for line in lines:
        if line in unions:
            if line not in deeper:
                out.append(_merge_alternatives(line, unions[line]))
        else:
            out.append(line)
    return list(dict.fromkeys(out))


def _merge_alternatives(path: str, lines: list[str]) -> str:
    """`P: expected A, received V` + `P: expected B, received V` -> `P: expected A or B, ...`."""
    wanted, received = [], ""
    for line in lines:
        m = re.match(rf"^{re.escape(path)}: expected (.*?), received (.*)$", line)
        if not m:
            return lines[0]
        wanted.append(m.group(1))
        received = max(received, m.group(2), key=len)  # keep the variant with a suggestion
    return f"{path}: expected {' or '.join(dict.fromkeys(wanted))}, received {received}"
