"""activation: keras.layers.Activation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import Activation, LayerBase
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor


class ActivationSpec(LayerBase):
    """A Keras activation applied to every value: for a conv without its own, such as one
    followed by batch_norm."""

    type: Literal["activation"]
    activation: Annotated[Activation, Field(description="a Keras activation, e.g. relu")]


def cost(spec: ActivationSpec, t: Tensor, ctx: PlanContext) -> Cost:
    return Cost(t)


def build(step: Step, x: Any, k: Builder) -> Any:
    return k.layers.Activation(step.spec.activation, name=step.name)(x)


register(
    LayerKind(
        ActivationSpec,
        keras="Activation",
        cost=cost,
        build=build,
        examples=(Example("[{type: activation, activation: relu}]"),),
        stand_in={"activation": "linear"},
        transparent=True,
        order=130,
    )
)
