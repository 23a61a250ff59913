"""What every layer spec is made of: the base model and the argument types the kinds share.

Arguments are normalised here, once (an int kernel size becomes a pair), so the planner and the
builder receive typed, complete objects. Field names and defaults follow the Keras 3 layer each
spec builds, so a Keras user reads a config without a glossary. Each shared type carries its
description and JSON Schema: the docs tables and `convtrain schema` are derived from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from convtrain.layers.keras_objects import Activation, Constraint, Initializer, Regularizer


def _pair(value: Any) -> tuple[int, int]:
    """Keras's `standardize_tuple`: an int n means (n, n)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a positive integer or a list of two, received {value!r}")
    if isinstance(value, int):
        value = (value, value)
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        if min(value) < 1:
            raise ValueError(
                f"expected positive integers, received {list(value) if len(set(value)) > 1 else value[0]!r}"
            )
        return (int(value[0]), int(value[1]))
    raise ValueError(f"expected a positive integer or a list of two, received {value!r}")


_POSITIVE = {"type": "integer", "minimum": 1}
# The YAML forms, not the normalised tuple: an editor must accept `kernel_size: 3`.
Pair = Annotated[
    tuple[int, int],
    BeforeValidator(_pair),
    WithJsonSchema(
        {"anyOf": [_POSITIVE, {"type": "array", "items": _POSITIVE, "minItems": 2, "maxItems": 2}]}
    ),
]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


# --- the arguments several kinds share, with the text the docs and the schema show -----------

Filters = Annotated[int, Field(ge=1, description="number of output channels, >= 1")]
KernelSize = Annotated[
    Pair, Field(description="window size: n (for n x n) or [rows, columns] of positive integers")
]
Strides = Annotated[Pair, Field(description="step between window positions: n or [rows, columns]")]
Padding = Annotated[
    Literal["valid", "same"],
    Field(
        description="valid: no padding, output floor((n - k_eff) / s) + 1; "
        "same: zero padding, output ceil(n / s)"
    ),
]
DataFormat = Annotated[
    Literal["channels_last", "channels_first"] | None,
    Field(
        description="channels_last or channels_first; none: follows the tensor (see data_format)"
    ),
]
DilationRate = Annotated[
    Pair,
    Field(description="gaps between kernel taps: the kernel covers k_eff = (k - 1) * d + 1 pixels"),
]
DepthMultiplier = Annotated[
    int, Field(ge=1, description="output channels per input channel of the depthwise step")
]
OptionalActivation = Annotated[
    Activation | None, Field(description="an activation applied to the output; none: linear")
]
UseBias = Annotated[bool, Field(description="add a learned bias per output channel")]
Epsilon = Annotated[float, Field(gt=0.0, description="added to the variance, > 0")]
Center = Annotated[bool, Field(description="learn an offset (beta) per channel")]
Scale = Annotated[bool, Field(description="learn a factor (gamma) per channel")]


def _weights(what: str) -> tuple[Any, Any, Any]:
    """The initializer, regularizer and constraint fields of one weight tensor."""
    return (
        Annotated[Initializer, Field(description=f"initializer of the {what}")],
        Annotated[Regularizer | None, Field(description=f"regularizer of the {what}")],
        Annotated[Constraint | None, Field(description=f"constraint on the {what}")],
    )


KernelInitializer, KernelRegularizer, KernelConstraint = _weights("kernel")
BiasInitializer, BiasRegularizer, BiasConstraint = _weights("bias")
DepthwiseInitializer, DepthwiseRegularizer, DepthwiseConstraint = _weights("depthwise kernel")
PointwiseInitializer, PointwiseRegularizer, PointwiseConstraint = _weights("pointwise kernel")
ActivityRegularizer = Annotated[
    Regularizer | None, Field(description="regularizer of the layer's output")
]


class LayerBase(BaseModel):
    # validate_default: default initializers go through the same normalisation as given ones.
    model_config = ConfigDict(extra="forbid", validate_default=True)

    name: Annotated[
        Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)] | None,
        Field(description="unique layer name; none: <type>_<n>"),
    ] = None
