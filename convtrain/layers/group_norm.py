"""group_norm: keras.layers.GroupNormalization (independent of the batch size)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import Center, Epsilon, LayerBase, Scale
from convtrain.layers.batch_norm import channel_axis
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, ShapeProblem, Step, Tensor


class GroupNormSpec(LayerBase):
    """Normalises groups of channels at each image by their own mean and variance: between
    layer_norm (groups: 1) and one group per channel (instance normalisation)."""

    type: Literal["group_norm"]
    groups: Annotated[
        int, Field(ge=1, description="number of channel groups; must divide the channels")
    ] = 32
    epsilon: Epsilon = 1e-3
    center: Center = True
    scale: Scale = True


def cost(spec: GroupNormSpec, t: Tensor, ctx: PlanContext) -> Cost:
    c = t.channels
    if c % spec.groups:
        raise ShapeProblem(
            "groups",
            f"expected groups to divide the {c} input channels, received groups={spec.groups}",
        )
    return Cost(t, trainable=c * (int(spec.center) + int(spec.scale)))


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.GroupNormalization(
        groups=s.groups, axis=channel_axis(step), epsilon=s.epsilon, center=s.center,
        scale=s.scale, name=step.name,
    )(x)  # fmt: skip


register(
    LayerKind(
        GroupNormSpec,
        keras="GroupNormalization",
        cost=cost,
        build=build,
        examples=(
            Example("[{type: conv2d, filters: 8, kernel_size: 1}, {type: group_norm, groups: 4}]"),
            Example("[{type: group_norm, groups: 1, center: false}]", color_mode="grayscale"),
        ),
        transparent=True,
        order=86,
    )
)
