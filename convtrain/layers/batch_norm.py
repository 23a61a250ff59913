"""batch_norm: keras.layers.BatchNormalization over the channel axis of the current layout."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import Center, Epsilon, LayerBase, Scale
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import FIRST, Cost, Step, Tensor


class BatchNormSpec(LayerBase):
    """Normalises each channel by the batch's mean and variance (moving averages at inference).
    The axis follows the current layout."""

    type: Literal["batch_norm"]
    momentum: Annotated[
        float, Field(gt=0.0, lt=1.0, description="of the moving mean and variance, in (0, 1)")
    ] = 0.99
    epsilon: Epsilon = 1e-3
    center: Center = True
    scale: Scale = True


def cost(spec: BatchNormSpec, t: Tensor, ctx: PlanContext) -> Cost:
    c = t.channels
    # The moving mean and variance are the non-trainable weights.
    return Cost(t, trainable=c * (int(spec.center) + int(spec.scale)), non_trainable=2 * c)


def channel_axis(step: Step) -> int:
    return 1 if step.inp.spatial and step.layout == FIRST else -1


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.BatchNormalization(
        axis=channel_axis(step), momentum=s.momentum, epsilon=s.epsilon, center=s.center,
        scale=s.scale, name=step.name,
    )(x)  # fmt: skip


register(
    LayerKind(
        BatchNormSpec,
        keras="BatchNormalization",
        cost=cost,
        build=build,
        examples=(
            Example("[{type: batch_norm}]"),
            Example("[{type: flatten}, {type: batch_norm, center: false}]", image_size=4),
        ),
        transparent=True,
        order=80,
    )
)
