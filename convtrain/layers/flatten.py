"""flatten: keras.layers.Flatten."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Literal

from convtrain.layers.base import LayerBase
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor
from convtrain.layers.window import collapse


class FlattenSpec(LayerBase):
    """Every value of the map in one vector: output (batch, height x width x channels)."""

    type: Literal["flatten"]


def cost(spec: FlattenSpec, t: Tensor, ctx: PlanContext) -> Cost:
    if not t.spatial:
        return Cost(replace(t, shape=(math.prod(t.shape),)))
    return Cost(collapse(t, math.prod(t.shape)))


def build(step: Step, x: Any, k: Builder) -> Any:
    return k.layers.Flatten(name=step.name)(x)


register(
    LayerKind(
        FlattenSpec,
        keras="Flatten",
        cost=cost,
        build=build,
        examples=(Example("[{type: flatten}]"),),
        order=110,
    )
)
