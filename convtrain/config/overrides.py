"""Changes to a raw config before validation: `--set KEY=VALUE` and `model.defaults`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from convtrain.errors import ConfigError
from convtrain.layers import KIND_BY_TYPE, LAYER_TYPES
from convtrain.layers.keras_objects import suggest
from convtrain.layers.registry import sublayers

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


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


def apply_override(
    raw: dict[str, Any], assignment: str, parse_value: Callable[[str, str], Any]
) -> None:
    """Apply one `KEY=VALUE` (KEY a dotted path with [i] indices, VALUE parsed as YAML)."""
    where = f"--set {assignment}"
    if "=" not in assignment:
        raise ConfigError(["expected KEY=VALUE, e.g. model.layers[0].filters=64"], source=where)
    key, _, text = assignment.partition("=")
    try:
        tokens = _tokens(key.strip())
    except ValueError as exc:
        raise ConfigError(
            [f"{exc}; expected a dotted path such as train.epochs or model.layers[0].filters"],
            source=where,
        ) from None
    value = parse_value(text, where)
    node: Any = raw
    for depth, tok in enumerate(tokens):
        here = format_path(tokens[:depth]) or "(top level)"
        if isinstance(tok, int):
            if not isinstance(node, list):
                raise ConfigError(
                    [f"{here} is not a list, cannot index it with [{tok}]"], source=where
                )
            if tok >= len(node):
                raise ConfigError(
                    [f"{here} has {len(node)} entries, received index {tok}"], source=where
                )
        elif not isinstance(node, dict):
            raise ConfigError([f"{here} is not a mapping, cannot set {tok!r}"], source=where)
        if depth == len(tokens) - 1:
            node[tok] = value
            return
        nxt = node[tok] if isinstance(tok, int) else node.get(tok)
        if nxt is None:  # creating a missing section, e.g. --set train.early_stopping.patience=3
            nxt = node[tok] = {}
        node = nxt


# --- model.defaults ------------------------------------------------------------------------


def _check_values(ltype: str, values: dict[str, Any], describe: Callable[..., str]) -> list[str]:
    """Validate defaults even when no layer of that type uses them (e.g. for projections)."""
    kind = KIND_BY_TYPE[ltype]
    # Stand-ins for the required keys, so that the defaults alone can be validated.
    required = kind.stand_ins(values)
    try:
        kind.spec.model_validate({**required, **values, "type": ltype})
    except ValidationError as exc:
        path = ("model", "defaults", ltype)
        return [
            describe({**e, "loc": path + tuple(e["loc"])})
            for e in exc.errors()
            if e["loc"] and e["loc"][0] in values
        ]
    return []


def merge_defaults(raw: dict[str, Any], describe: Callable[..., str]) -> list[str]:
    """Copy `model.defaults.<type>` into every layer of that type that lacks the key."""
    model = raw.get("model")
    if not isinstance(model, dict) or not model.get("defaults"):
        return []
    defaults = model["defaults"]
    if not isinstance(defaults, dict):
        return [
            f"model.defaults: expected a mapping from layer type to values, received {defaults!r}"
        ]
    problems = []
    for ltype, values in defaults.items():
        path = f"model.defaults.{ltype}"
        if ltype not in KIND_BY_TYPE:
            problems.append(
                f"{path}: unknown layer type {ltype!r}{suggest(str(ltype), LAYER_TYPES)} "
                f"(valid types: {', '.join(LAYER_TYPES)})"
            )
            continue
        if not isinstance(values, dict):
            problems.append(f"{path}: expected a mapping of {ltype} arguments, received {values!r}")
            continue
        fields = [f for f in KIND_BY_TYPE[ltype].spec.model_fields if f not in ("type", "name")]
        unknown = [k for k in values if k not in fields]
        for key in unknown:
            problems.append(
                f"{path}.{key}: unknown key {key!r} for {ltype}{suggest(str(key), fields)}"
            )
        if not unknown:
            problems.extend(_check_values(ltype, values, describe))
    if problems:
        return problems

    def apply(layers: Any) -> None:
        if not isinstance(layers, list):
            return
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                continue
            ltype = layer.get("type")
            if not isinstance(ltype, str) or ltype not in KIND_BY_TYPE:
                continue  # validation reports it
            if ltype in defaults:
                layers[i] = layer = {**defaults[ltype], **layer}
            for _, inner in sublayers(KIND_BY_TYPE[ltype], layer):
                apply(inner)

    apply(model.get("layers"))
    return []
