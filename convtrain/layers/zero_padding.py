"""zero_padding: keras.layers.ZeroPadding2D, explicit zero rows and columns around the map."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from convtrain.layers.base import DataFormat, LayerBase
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor
from convtrain.layers.window import require_spatial

Sides = tuple[tuple[int, int], tuple[int, int]]


def _sides(value: Any) -> Sides:
    """ZeroPadding2D's forms: n, [rows, columns] or [[top, bottom], [left, right]]."""

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if count(value):
        return ((value, value), (value, value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(count(v) for v in value):
            return ((value[0], value[0]), (value[1], value[1]))
        if all(isinstance(v, (list, tuple)) and len(v) == 2 and all(map(count, v)) for v in value):
            return ((value[0][0], value[0][1]), (value[1][0], value[1][1]))
    raise ValueError(
        f"expected an integer >= 0, [rows, columns] or [[top, bottom], [left, right]], "
        f"received {value!r}"
    )


_COUNT = {"type": "integer", "minimum": 0}
_TWO = {"minItems": 2, "maxItems": 2}
Padding2D = Annotated[
    Sides,
    BeforeValidator(_sides),
    WithJsonSchema(
        {
            "anyOf": [
                _COUNT,
                {"type": "array", "items": _COUNT, **_TWO},
                {"type": "array", "items": {"type": "array", "items": _COUNT, **_TWO}, **_TWO},
            ]
        }
    ),
]


class ZeroPaddingSpec(LayerBase):
    """Adds rows and columns of zeros around the map (explicit padding, where padding: same
    chooses it for you); no parameters."""

    type: Literal["zero_padding"]
    padding: Annotated[
        Padding2D,
        Field(description="n (all sides), [rows, columns] or [[top, bottom], [left, right]]"),
    ] = ((1, 1), (1, 1))
    data_format: DataFormat = None


def cost(spec: ZeroPaddingSpec, t: Tensor, ctx: PlanContext) -> Cost:
    require_spatial(spec.type, t)
    (top, bottom), (left, right) = spec.padding
    h, w = t.hw
    # Zeros see no input pixel: receptive field and jump stay those of the input.
    return Cost(replace(t, shape=t.with_spatial((h + top + bottom, w + left + right), t.channels)))


def build(step: Step, x: Any, k: Builder) -> Any:
    return k.layers.ZeroPadding2D(step.spec.padding, data_format=step.layout, name=step.name)(x)


register(
    LayerKind(
        ZeroPaddingSpec,
        keras="ZeroPadding2D",
        cost=cost,
        build=build,
        examples=(
            Example("[{type: zero_padding}]"),
            Example(
                "[{type: zero_padding, padding: [2, 0]}, {type: conv2d, filters: 4, kernel_size: 3}]"
            ),
            Example("[{type: zero_padding, padding: [[0, 1], [3, 2]]}]", image_size=[5, 7]),
        ),
        order=75,
    )
)
