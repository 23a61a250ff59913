"""Initializers, regularizers, constraints and activations as YAML values.

A YAML value names one of Keras's own built-ins, never a Python path, so a config cannot run
code. Accepted forms (normalised once, here, into a `KerasObject`):

    he_normal                       # a name
    {l2: 0.0005}                    # a name with its first argument
    {l1_l2: {l1: 0.01, l2: 0.01}}   # a name with keyword arguments
    {type: max_norm, max_value: 3}  # `type` plus keyword arguments

The tables below list each built-in's Keras class and the keyword arguments it takes; a test
checks them against the installed Keras, so they cannot drift silently.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

# name -> (Keras class name, accepted keyword arguments, first positional argument or None)
INITIALIZERS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "zeros": ("Zeros", (), None),
    "ones": ("Ones", (), None),
    "constant": ("Constant", ("value",), "value"),
    "identity": ("Identity", ("gain",), "gain"),
    "random_normal": ("RandomNormal", ("mean", "stddev", "seed"), "stddev"),
    "random_uniform": ("RandomUniform", ("minval", "maxval", "seed"), None),
    "truncated_normal": ("TruncatedNormal", ("mean", "stddev", "seed"), "stddev"),
    "variance_scaling": ("VarianceScaling", ("scale", "mode", "distribution", "seed"), "scale"),
    "glorot_normal": ("GlorotNormal", ("seed",), "seed"),
    "glorot_uniform": ("GlorotUniform", ("seed",), "seed"),
    "he_normal": ("HeNormal", ("seed",), "seed"),
    "he_uniform": ("HeUniform", ("seed",), "seed"),
    "lecun_normal": ("LecunNormal", ("seed",), "seed"),
    "lecun_uniform": ("LecunUniform", ("seed",), "seed"),
    "orthogonal": ("Orthogonal", ("gain", "seed"), "gain"),
}

REGULARIZERS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "l1": ("L1", ("l1",), "l1"),
    "l2": ("L2", ("l2",), "l2"),
    "l1_l2": ("L1L2", ("l1", "l2"), None),
    "orthogonal_regularizer": ("OrthogonalRegularizer", ("factor", "mode"), "factor"),
}

CONSTRAINTS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "max_norm": ("MaxNorm", ("max_value", "axis"), "max_value"),
    "min_max_norm": ("MinMaxNorm", ("min_value", "max_value", "rate", "axis"), None),
    "non_neg": ("NonNeg", (), None),
    "unit_norm": ("UnitNorm", ("axis",), None),
}

# Activation names resolved by `keras.activations.get`; a test checks each one.
ACTIVATIONS: tuple[str, ...] = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "swish",
    "mish",
    "sigmoid",
    "hard_sigmoid",
    "hard_silu",
    "tanh",
    "softplus",
    "softsign",
    "softmax",
    "log_softmax",
    "exponential",
)


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """'; did you mean X?' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _choices(table: dict) -> str:
    return ", ".join(sorted(table))


class KerasObject(BaseModel):
    """A validated reference to a Keras built-in, with its keyword arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str  # "initializer" | "regularizer" | "constraint"
    name: str
    kwargs: dict[str, Any] = {}

    @property
    def class_name(self) -> str:
        return _TABLES[self.kind][self.name][0]

    def to_yaml(self) -> str | dict[str, Any]:
        return self.name if not self.kwargs else {"type": self.name, **self.kwargs}


_TABLES = {"initializer": INITIALIZERS, "regularizer": REGULARIZERS, "constraint": CONSTRAINTS}


def _parse(kind: str, value: Any) -> KerasObject:
    table = _TABLES[kind]
    if isinstance(value, KerasObject):
        return value
    if isinstance(value, str):
        name, kwargs = value, {}
    elif isinstance(value, dict) and "type" in value:
        name, kwargs = value["type"], {k: v for k, v in value.items() if k != "type"}
    elif isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if isinstance(arg, dict):
            kwargs = dict(arg)
        elif arg is None:
            kwargs = {}
        else:
            first = table.get(name, (None, (), None))[2] if isinstance(name, str) else None
            if first is None and name in table:
                raise ValueError(
                    f"expected keyword arguments for {kind} '{name}' "
                    f"(e.g. {{{name}: {{{', '.join(a + ': ...' for a in table[name][1])}}}}}), "
                    f"received {value!r}"
                )
            kwargs = {first: arg} if first else {}
    else:
        raise ValueError(
            f"expected a {kind} name (one of {_choices(table)}) or a mapping such as "
            f"{{type: NAME, ARG: VALUE}}, received {value!r}"
        )
    if not isinstance(name, str) or name not in table:
        raise ValueError(
            f"expected a Keras built-in {kind}, one of {_choices(table)}; "
            f"received {name!r}{suggest(str(name), list(table))}"
        )
    allowed = table[name][1]
    for key in kwargs:
        if key not in allowed:
            accepted = ", ".join(allowed) if allowed else "no arguments"
            raise ValueError(
                f"{kind} '{name}' takes {accepted}; received unknown argument "
                f"{key!r}{suggest(str(key), allowed)}"
            )
        if not isinstance(kwargs[key], (int, float, str, bool, list)) or kwargs[key] is None:
            raise ValueError(
                f"{kind} '{name}' argument '{key}' must be a number or string, "
                f"received {kwargs[key]!r}"
            )
    return KerasObject(kind=kind, name=name, kwargs=kwargs)


def describe(kind: str, value: Any) -> str:
    """One line for a table: `l2(l2=0.0001)`, `non_neg`, whichever accepted form `value` has."""
    obj = _parse(kind, value)
    args = ", ".join(f"{k}={v}" for k, v in sorted(obj.kwargs.items()))
    return f"{obj.name}({args})" if args else obj.name


def _serialize(obj: KerasObject) -> str | dict[str, Any]:
    return obj.to_yaml()


def json_schema(kind: str) -> dict[str, Any]:
    """The YAML forms an editor should accept for a `kind` value (`convtrain schema`)."""
    if kind == "activation":
        return {"description": "a Keras activation", "enum": list(ACTIVATIONS)}
    names = sorted(_TABLES[kind])
    return {
        "description": f"a Keras built-in {kind}: a name, {{name: first argument}}, "
        f"{{name: {{arguments}}}} or {{type: name, arguments...}}",
        "anyOf": [
            {"enum": names},
            {"type": "object", "required": ["type"], "properties": {"type": {"enum": names}}},
            {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "propertyNames": {"enum": names},
            },
        ],
    }


def _schema(kind: str) -> WithJsonSchema:
    return WithJsonSchema(json_schema(kind))


Initializer = Annotated[
    KerasObject,
    BeforeValidator(lambda v: _parse("initializer", v)),
    PlainSerializer(_serialize),
    _schema("initializer"),
]
Regularizer = Annotated[
    KerasObject,
    BeforeValidator(lambda v: _parse("regularizer", v)),
    PlainSerializer(_serialize),
    _schema("regularizer"),
]
Constraint = Annotated[
    KerasObject,
    BeforeValidator(lambda v: _parse("constraint", v)),
    PlainSerializer(_serialize),
    _schema("constraint"),
]


def _activation(value: Any) -> str:
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(
            f"expected a Keras activation, one of {', '.join(ACTIVATIONS)}; "
            f"received {value!r}{suggest(str(value), ACTIVATIONS)}"
        )
    return value


Activation = Annotated[
    str,
    BeforeValidator(_activation),
    _schema("activation"),
]
