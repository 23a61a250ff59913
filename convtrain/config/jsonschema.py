"""The JSON Schema of an experiment config, derived from the pydantic models.

Editors read it to complete keys and underline mistakes as the user types: every shipped config
starts with `# yaml-language-server: $schema=<path to schema/convtrain.schema.json>`, and
`convtrain schema` prints it. The schema accepts what the models accept before normalisation
(`kernel_size: 3` as well as `[3, 3]`); a few checks remain for `convtrain inspect`, which
knows the whole stack (a window larger than its input, groups that do not divide the channels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convtrain.config.schema import Experiment
from convtrain.layers.keras_objects import json_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# The copy shipped in the repository (tests/test_jsonschema.py checks that it is current).
SHIPPED = Path(__file__).resolve().parents[2] / "schema" / "convtrain.schema.json"


def _defaults_schema(defs: dict[str, Any], layers: dict[str, Any]) -> dict[str, Any]:
    """model.defaults: per layer type, any of that type's keys (none required)."""
    by_type = {t: ref.rsplit("/", 1)[-1] for t, ref in layers["discriminator"]["mapping"].items()}
    return {
        "description": "per layer type, values for every layer of that type that does not set "
        "its own (and for the layers convtrain adds: projections, the head)",
        "type": "object",
        "additionalProperties": False,
        "default": {},
        "properties": {
            ltype: {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    key: value
                    for key, value in defs[name]["properties"].items()
                    if key not in ("type", "name")
                },
            }
            for ltype, name in by_type.items()
        },
    }


def _share(node: Any, shared: dict[str, dict[str, Any]]) -> Any:
    """Each Keras-object schema (initializer, activation...) once in $defs, referenced where
    used: the shipped file is half the size, and each field says the same."""
    if isinstance(node, dict):
        for name, sub in shared.items():
            if all(node.get(k) == v for k, v in sub.items() if k != "description"):
                own = {k: v for k, v in node.items() if k not in sub or sub[k] != v}
                return {"$ref": f"#/$defs/{name}", **own}  # with the field's description
        return {k: _share(v, shared) for k, v in node.items()}
    if isinstance(node, list):
        return [_share(v, shared) for v in node]
    return node


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a convtrain YAML config."""
    shared = {
        kind.capitalize(): json_schema(kind)
        for kind in ("initializer", "regularizer", "constraint", "activation")
    }
    schema = _share(Experiment.model_json_schema(), shared)
    defs = schema["$defs"]
    defs.update(shared)
    model = defs["ModelConfig"]["properties"]
    model["defaults"] = _defaults_schema(defs, model["layers"]["items"])
    schema["title"] = "convtrain experiment config"
    schema["description"] = (
        "One convtrain experiment: data, augment, model, train, eval; see docs/config.md"
    )
    return {"$schema": DRAFT, **schema}


def schema_text() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
