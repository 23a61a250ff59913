"""The config's JSON Schema: shipped and current, named by every shipped config, accepting
what convtrain accepts and refusing what it refuses (key by key, before the shape check)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from convtrain.cli import cli
from convtrain.config.jsonschema import SHIPPED, config_schema, schema_text
from convtrain.config.load import dump_config, load_config, read_yaml, validate
from convtrain.errors import ConfigError
from convtrain.layers import KIND_BY_TYPE

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted([*ROOT.glob("configs/*.yaml"), *ROOT.glob("configs/sweeps/*.yaml")])
HEADER = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")

# --- a validator for the keywords the schema uses (jsonschema is not a dependency) -------------

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}
_IGNORED = {"title", "description", "default", "discriminator", "$schema", "$defs"}


def _is(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict, root: dict, path: str = "") -> list[str]:
    """Why `value` does not match `schema` (empty: it matches)."""
    out: list[str] = []
    for key, rule in schema.items():
        if key in _IGNORED:
            continue
        if key == "$ref":
            out += errors(value, root["$defs"][rule.rsplit("/", 1)[-1]], root, path)
        elif key == "type":
            if not any(_is(value, t) for t in ([rule] if isinstance(rule, str) else rule)):
                out.append(f"{path}: expected {rule}, received {value!r}")
        elif key == "enum":
            if value not in rule:
                out.append(f"{path}: expected one of {rule}, received {value!r}")
        elif key == "const":
            if value != rule:
                out.append(f"{path}: expected {rule!r}, received {value!r}")
        elif key in ("anyOf", "oneOf"):
            matches = [s for s in rule if not errors(value, s, root, path)]
            if not matches or (key == "oneOf" and len(matches) > 1):
                out.append(f"{path}: {len(matches)} of the {key} alternatives match {value!r}")
        elif key == "allOf":
            out += [e for s in rule for e in errors(value, s, root, path)]
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if (
                _is(value, "number")
                and not {
                    "minimum": value >= rule,
                    "maximum": value <= rule,
                    "exclusiveMinimum": value > rule,
                    "exclusiveMaximum": value < rule,
                }[key]
            ):
                out.append(f"{path}: {key} {rule}, received {value!r}")
        elif key in ("minItems", "maxItems", "minLength", "maxLength"):
            if isinstance(value, (list, str)) and not (
                len(value) >= rule if key.startswith("min") else len(value) <= rule
            ):
                out.append(f"{path}: {key} {rule}, received {value!r}")
        elif key in ("minProperties", "maxProperties"):
            if isinstance(value, dict) and not (
                len(value) >= rule if key.startswith("min") else len(value) <= rule
            ):
                out.append(f"{path}: {key} {rule}, received {value!r}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                out.append(f"{path}: expected to match {rule}, received {value!r}")
        elif key == "prefixItems":
            if isinstance(value, list):
                for i, (item, sub) in enumerate(
                    zip(value, rule, strict=False)
                ):  # minItems checks the length
                    out += errors(item, sub, root, f"{path}[{i}]")
        elif key == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    out += errors(item, rule, root, f"{path}[{i}]")
        elif key == "required":
            if isinstance(value, dict):
                out += [f"{path}: missing {k!r}" for k in rule if k not in value]
        elif key == "properties":
            if isinstance(value, dict):
                for k, sub in rule.items():
                    if k in value:
                        out += errors(value[k], sub, root, f"{path}.{k}")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                extra = [k for k in value if k not in schema.get("properties", {})]
                for k in extra:
                    if rule is False:
                        out.append(f"{path}: unknown key {k!r}")
                    elif isinstance(rule, dict):
                        out += errors(value[k], rule, root, f"{path}.{k}")
        elif key == "propertyNames":
            if isinstance(value, dict):
                out += [e for k in value for e in errors(k, rule, root, f"{path} key")]
        else:
            raise AssertionError(f"the test's validator does not know the keyword {key!r}")
    return out


SCHEMA = config_schema()


def check(raw: dict) -> list[str]:
    return errors(raw, SCHEMA, SCHEMA)


# --- tests -----------------------------------------------------------------------------------


def test_shipped_schema_is_current_and_printed_by_the_cli() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), (
        "run: convtrain schema > schema/convtrain.schema.json"
    )
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0 and result.output == schema_text()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_names_the_schema_and_matches_it(path: Path, tmp_path: Path) -> None:
    header = HEADER.match(path.read_text(encoding="utf-8"))
    assert header, "the first line names the schema for editors"
    assert (path.parent / header.group(1)).resolve() == SHIPPED
    assert check(read_yaml(path)) == []
    # The fully resolved form (runs/<run>/config.yaml) matches it too.
    assert check(yaml.safe_load(dump_config(load_config(path)))) == []


def test_every_layer_kind_example_matches_the_schema() -> None:
    for kind in KIND_BY_TYPE.values():
        for example in kind.examples:
            assert check({"model": {"layers": example.stack()}}) == [], example.layers


GOOD = "{type: conv2d, filters: 8, kernel_size: 3}"
# Mistakes both the schema and convtrain refuse: (what, model section as YAML)
BAD = [
    ("unknown key", "{layers: [{type: conv2d, filter: 8, kernel_size: 3}]}"),
    ("unknown type", "{layers: [{type: conv3d, filters: 8, kernel_size: 3}]}"),
    ("missing key", "{layers: [{type: conv2d, kernel_size: 3}]}"),
    ("three numbers", "{layers: [{type: conv2d, filters: 8, kernel_size: [3, 3, 3]}]}"),
    ("zero", "{layers: [{type: conv2d, filters: 0, kernel_size: 3}]}"),
    ("word", "{layers: [{type: conv2d, filters: many, kernel_size: 3}]}"),
    ("padding", "{layers: [{type: conv2d, filters: 8, kernel_size: 3, padding: vaild}]}"),
    ("initializer", "{layers: [{type: dense, units: 3, kernel_initializer: he_norml}]}"),
    ("activation", "{layers: [{type: dense, units: 3, activation: rellu}]}"),
    ("rate", "{layers: [{type: dropout, rate: 1.5}]}"),
    ("nested", "{layers: [{type: residual, body: [{type: conv2d, filters: 1}]}]}"),
    ("branches", f"{{layers: [{{type: inception, branches: [[{GOOD}]]}}]}}"),
    ("sides", "{layers: [{type: zero_padding, padding: [1, 2, 3]}]}"),
    ("defaults key", f"{{defaults: {{conv2d: {{kernel_sise: 3}}}}, layers: [{GOOD}]}}"),
    ("defaults type", f"{{defaults: {{conv: {{padding: same}}}}, layers: [{GOOD}]}}"),
    ("defaults value", f"{{defaults: {{batch_norm: {{momentum: 2}}}}, layers: [{GOOD}]}}"),
]


@pytest.mark.parametrize("what,model", BAD, ids=[b[0] for b in BAD])
def test_schema_refuses_what_convtrain_refuses(what: str, model: str) -> None:
    raw = {"data": {"classes": ["a", "b"], "image_size": 8}, "model": yaml.safe_load(model)}
    assert check(raw) != []
    with pytest.raises(ConfigError):
        validate(raw, "test")
    raw["model"]["layers"].append({"type": "flatten"})  # not a shape problem: a key problem
    assert check(raw) != []
