"""squeeze_excite: rescale each channel by a weight computed from the whole map (SENet)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import Activation, LayerBase
from convtrain.layers.dense import DenseSpec
from convtrain.layers.pooling import GlobalAvgPoolSpec
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import LAST, Step, Tensor, describe_input


class SqueezeExciteSpec(LayerBase):
    """Global average pool, dense down to ratio x channels units (with a bias), the activation,
    dense back up to the channels (with a bias), sigmoid, then the input multiplied by the
    result, channel by channel. Its layers are named <block>_squeeze, _reduce, _expand, _reshape
    and _scale; the dense ones take model.defaults.dense (except units, activation, use_bias)."""

    type: Literal["squeeze_excite"]
    ratio: Annotated[
        float,
        Field(gt=0.0, le=1.0, description="bottleneck units as a fraction of the channels"),
    ] = 0.25
    activation: Annotated[Activation, Field(description="activation of the bottleneck")] = "relu"


def bottleneck(spec: SqueezeExciteSpec, channels: int) -> int:
    return max(1, int(channels * spec.ratio))  # as Keras's EfficientNet rounds it


def plan(ctx: PlanContext, spec: SqueezeExciteSpec, t: Tensor, path: str) -> Step:
    name = ctx.name(spec)
    if not t.spatial:
        ctx.fail(
            f"{path}: squeeze_excite expected a 4-D input (batch, height, width, channels), "
            f"received {describe_input(t)}: it comes after a flatten, global pool or dense layer"
        )
    c = t.channels
    step = Step(path, name, spec.type, spec, t, t, layout=t.layout)
    pool = ctx.synthetic(GlobalAvgPoolSpec, path, {"name": f"{name}_squeeze", "data_format": None})
    down = {"name": f"{name}_reduce", "units": bottleneck(spec, c), "activation": spec.activation}
    up = {"name": f"{name}_expand", "units": c, "activation": "sigmoid"}
    down, up = (ctx.synthetic(DenseSpec, path, {**d, "use_bias": True}) for d in (down, up))
    x = t
    for layer, why in ((pool, "squeeze"), (down, "excite bottleneck"), (up, "excite weights")):
        step.body.append(ctx.leaf(layer, x, path, layer.name, why))
        x = step.body[-1].out
    # The weights as a 1x1 map in the input's layout, so that the product broadcasts.
    weights = replace(x, shape=(1, 1, c) if t.layout == LAST else (c, 1, 1), layout=t.layout)
    step.body.append(
        Step(
            path,
            f"{name}_reshape",
            "reshape",
            None,
            x,
            weights,
            layout=t.layout,
            added="excite weights as a 1x1 map",
        )
    )
    # Every output pixel now depends on the whole map, through the pool.
    out = replace(t, rf=tuple(max(t.rf[a], x.rf[a]) for a in (0, 1)))
    step.merge.append(
        Step(
            path,
            f"{name}_scale",
            "multiply",
            None,
            t,
            out,
            layout=t.layout,
            added="channel rescaling",
        )
    )
    step.out = out
    return step.add_totals()


def build(step: Step, x: Any, k: Builder) -> Any:
    *weights, reshape = step.body
    w = k.steps(weights, x)
    w = k.layers.Reshape(reshape.out.shape, name=reshape.name)(w)
    return k.layers.Multiply(name=step.merge[0].name)([x, w])


register(
    LayerKind(
        SqueezeExciteSpec,
        keras="GlobalAveragePooling2D, Dense, Reshape, Multiply",
        plan=plan,
        build=build,
        examples=(
            Example("[{type: conv2d, filters: 8, kernel_size: 3}, {type: squeeze_excite}]"),
            Example("[{type: squeeze_excite, ratio: 0.5, activation: swish}]"),
            Example(
                "[{type: conv2d, filters: 6, kernel_size: 1, data_format: channels_first},"
                " {type: squeeze_excite, ratio: 0.1}]"
            ),
        ),
        order=160,
    )
)
