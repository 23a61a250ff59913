"""max_pool, avg_pool (keras.layers.MaxPooling2D, AveragePooling2D) and their global forms."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import DataFormat, LayerBase, Padding, Pair
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor
from convtrain.layers.window import collapse, require_spatial, slide, valid_padding


class PoolSpecBase(LayerBase):
    pool_size: Annotated[Pair, Field(description="window size: n or [rows, columns]")] = (2, 2)
    strides: Annotated[
        Pair | None,
        Field(description="step between windows; none: equal to pool_size, as in Keras"),
    ] = None
    padding: Padding = "valid"
    data_format: DataFormat = None


class MaxPoolSpec(PoolSpecBase):
    """The largest value of each window, per channel."""

    type: Literal["max_pool"]


class AvgPoolSpec(PoolSpecBase):
    """The mean of each window, per channel."""

    type: Literal["avg_pool"]


class GlobalAvgPoolSpec(LayerBase):
    """The mean of each channel over the whole map: output (batch, channels)."""

    type: Literal["global_avg_pool"]
    data_format: DataFormat = None


class GlobalMaxPoolSpec(LayerBase):
    """The largest value of each channel over the whole map: output (batch, channels)."""

    type: Literal["global_max_pool"]
    data_format: DataFormat = None


def pool_cost(spec: PoolSpecBase, t: Tensor, ctx: PlanContext) -> Cost:
    strides = spec.strides or spec.pool_size
    out, rf, jump = slide(
        spec.type, t, "pool_size", spec.pool_size, strides, (1, 1), spec.padding, ctx.image
    )
    return Cost(replace(t, shape=t.with_spatial(out, t.channels), rf=rf, jump=jump))


def global_cost(spec: LayerBase, t: Tensor, ctx: PlanContext) -> Cost:
    require_spatial(spec.type, t)
    return Cost(collapse(t, t.channels))


def _pool(keras_class: str):
    def build(step: Step, x: Any, k: Builder) -> Any:
        s = step.spec
        return getattr(k.layers, keras_class)(
            pool_size=s.pool_size, strides=s.strides, padding=s.padding,
            data_format=step.layout, name=step.name,
        )(x)  # fmt: skip

    return build


def _global(keras_class: str):
    def build(step: Step, x: Any, k: Builder) -> Any:
        return getattr(k.layers, keras_class)(data_format=step.layout, name=step.name)(x)

    return build


register(
    LayerKind(
        MaxPoolSpec,
        keras="MaxPooling2D",
        cost=pool_cost,
        build=_pool("MaxPooling2D"),
        lint=(valid_padding,),
        examples=(
            Example("[{type: max_pool}]"),
            Example("[{type: max_pool, pool_size: [3, 2], strides: 1, padding: same}]"),
        ),
        order=40,
    )
)
register(
    LayerKind(
        AvgPoolSpec,
        keras="AveragePooling2D",
        cost=pool_cost,
        build=_pool("AveragePooling2D"),
        lint=(valid_padding,),
        examples=(Example("[{type: avg_pool, pool_size: 3, strides: 2}]", image_size=11),),
        order=50,
    )
)
register(
    LayerKind(
        GlobalAvgPoolSpec,
        keras="GlobalAveragePooling2D",
        cost=global_cost,
        build=_global("GlobalAveragePooling2D"),
        examples=(Example("[{type: global_avg_pool}]"),),
        order=60,
    )
)
register(
    LayerKind(
        GlobalMaxPoolSpec,
        keras="GlobalMaxPooling2D",
        cost=global_cost,
        build=_global("GlobalMaxPooling2D"),
        examples=(Example("[{type: global_max_pool}]"),),
        order=70,
    )
)
