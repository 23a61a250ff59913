"""layer_norm: keras.layers.LayerNormalization over the channels (independent of the batch)."""

from __future__ import annotations

from typing import Any, Literal

from convtrain.layers.base import Center, Epsilon, LayerBase, Scale
from convtrain.layers.batch_norm import channel_axis
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor


class LayerNormSpec(LayerBase):
    """Normalises each position's channels by their own mean and variance, the same in training
    and inference and whatever the batch size."""

    type: Literal["layer_norm"]
    epsilon: Epsilon = 1e-3
    center: Center = True
    scale: Scale = True


def cost(spec: LayerNormSpec, t: Tensor, ctx: PlanContext) -> Cost:
    return Cost(t, trainable=t.channels * (int(spec.center) + int(spec.scale)))


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.LayerNormalization(
        axis=channel_axis(step), epsilon=s.epsilon, center=s.center, scale=s.scale,
        name=step.name,
    )(x)  # fmt: skip


register(
    LayerKind(
        LayerNormSpec,
        keras="LayerNormalization",
        cost=cost,
        build=build,
        examples=(
            Example("[{type: layer_norm}]"),
            Example("[{type: global_max_pool}, {type: layer_norm, epsilon: 1.0e-5, scale: false}]"),
        ),
        transparent=True,
        order=84,
    )
)
