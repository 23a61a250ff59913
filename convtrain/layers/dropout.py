"""dropout and spatial_dropout: keras.layers.Dropout and SpatialDropout2D (training only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import DataFormat, LayerBase, Rate
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor
from convtrain.layers.window import require_spatial

DropRate = Annotated[Rate, Field(description="fraction of the inputs set to 0, in [0, 1)")]


class DropoutSpec(LayerBase):
    """Sets a random fraction of the values to 0 during training."""

    type: Literal["dropout"]
    rate: DropRate


class SpatialDropoutSpec(LayerBase):
    """Drops whole channels (feature maps) during training instead of single values."""

    type: Literal["spatial_dropout"]
    rate: DropRate
    data_format: DataFormat = None


def same_cost(spec: LayerBase, t: Tensor, ctx: PlanContext) -> Cost:
    return Cost(t)


def spatial_cost(spec: SpatialDropoutSpec, t: Tensor, ctx: PlanContext) -> Cost:
    require_spatial(spec.type, t)
    return Cost(t)


def build(step: Step, x: Any, k: Builder) -> Any:
    return k.layers.Dropout(step.spec.rate, name=step.name)(x)


def build_spatial(step: Step, x: Any, k: Builder) -> Any:
    return k.layers.SpatialDropout2D(step.spec.rate, data_format=step.layout, name=step.name)(x)


register(
    LayerKind(
        DropoutSpec,
        keras="Dropout",
        cost=same_cost,
        build=build,
        examples=(Example("[{type: dropout, rate: 0.5}]"),),
        stand_in={"rate": 0.0},
        transparent=True,
        order=90,
    )
)
register(
    LayerKind(
        SpatialDropoutSpec,
        keras="SpatialDropout2D",
        cost=spatial_cost,
        build=build_spatial,
        examples=(Example("[{type: spatial_dropout, rate: 0.1}]"),),
        stand_in={"rate": 0.0},
        order=100,
    )
)
