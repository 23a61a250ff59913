"""residual: `body(x) + shortcut(x)`, the shortcut projected by a 1x1 conv when shapes differ."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.activation import ActivationSpec
from convtrain.layers.base import LayerBase, OptionalActivation
from convtrain.layers.batch_norm import BatchNormSpec
from convtrain.layers.conv2d import Conv2DSpec
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Step, Tensor, describe_input, fmt_shape
from convtrain.layers.window import window


class ResidualSpec(LayerBase):
    """`body` applied to the input, added to a shortcut, then `activation`. The shortcut is the
    input itself when the body keeps the shape; otherwise (or with projection: always) a 1x1
    conv2d with as many filters as the body's output and strides equal to the body's total
    stride, followed by batch norm (projection_batch_norm; the conv then has no bias). The body
    must reduce the size exactly by its strides (padding: same)."""

    type: Literal["residual"]
    body: Annotated[
        list[LayerSpec],  # noqa: F821 - the union of every kind, resolved by convtrain.layers
        Field(min_length=1, description="the layers of the block, at least one"),
    ]
    projection: Annotated[
        Literal["auto", "always"],
        Field(
            description="auto: project only when the body changes the shape; always: also when not"
        ),
    ] = "auto"
    projection_batch_norm: Annotated[
        bool, Field(description="batch-norm the projected shortcut, as ResNet v1 does")
    ] = True
    activation: Annotated[
        OptionalActivation, Field(description="applied after the sum (ResNet's post-add relu)")
    ] = None


def plan(ctx: PlanContext, spec: ResidualSpec, t: Tensor, path: str) -> Step:
    name = ctx.name(spec)
    body, tb = ctx.walk(spec.body, t, f"{path}.body")
    tb = ctx.back_to(body, tb, t.layout, f"{path}.body", f"{name}_body_to_{t.layout}")
    step = Step(path, name, "residual", spec, t, tb, layout=t.layout, body=body)
    shortcut = t
    if spec.projection == "always" or tb.shape != t.shape:
        if not (t.spatial and tb.spatial):
            ctx.fail(
                f"{path}.body: expected the body to keep the shape {describe_input(t)} "
                f"(only 4-D tensors can be projected by a 1x1 convolution), received "
                f"{describe_input(tb)}"
            )
        strides = tuple(max(1, tb.jump[a] // t.jump[a]) for a in (0, 1))
        if tuple(window(t.hw[a], 1, strides[a], 1, "same") for a in (0, 1)) != tb.hw:
            ctx.fail(
                f"{path}.body: expected a body whose output size is the input size divided "
                f"by its strides, so that a strided 1x1 projection can match it; received "
                f"{fmt_shape(t.hw)} -> {fmt_shape(tb.hw)} (use padding: same in the body)"
            )
        conv = ctx.synthetic(
            Conv2DSpec, path,
            {"name": f"{name}_projection", "filters": tb.channels, "kernel_size": 1,
             "strides": list(strides), "padding": "same", "dilation_rate": 1, "groups": 1,
             "activation": None, "use_bias": not spec.projection_batch_norm,
             "data_format": None},
        )  # fmt: skip
        step.shortcut.append(ctx.leaf(conv, t, path, conv.name, "residual projection"))
        if spec.projection_batch_norm:
            bn = ctx.synthetic(BatchNormSpec, path, {"name": f"{name}_projection_bn"})
            step.shortcut.append(
                ctx.leaf(bn, step.shortcut[-1].out, path, bn.name, "projection batch norm")
            )
        shortcut = step.shortcut[-1].out
    rf = tuple(max(tb.rf[a], shortcut.rf[a]) for a in (0, 1))
    merged = replace(tb, rf=rf)
    step.merge.append(
        Step(path, f"{name}_add", "add", None, tb, merged, layout=t.layout, added="residual sum")
    )
    if spec.activation is not None:
        act = ActivationSpec(
            type="activation", activation=spec.activation, name=f"{name}_activation"
        )
        step.merge.append(ctx.leaf(act, merged, path, act.name, "activation after the sum"))
    step.out = step.merge[-1].out
    return step.add_totals()


def build(step: Step, x: Any, k: Builder) -> Any:
    body = k.steps(step.body, x)
    shortcut = k.steps(step.shortcut, x)
    add, *after = step.merge
    return k.steps(after, k.layers.Add(name=add.name)([body, shortcut]))


register(
    LayerKind(
        ResidualSpec,
        keras="Add, Conv2D, BatchNormalization",
        plan=plan,
        build=build,
        examples=(
            Example(
                "[{type: residual, activation: relu, body: [{type: conv2d, filters: 6,"
                " kernel_size: 3, strides: 2, padding: same}, {type: batch_norm}]}]"
            ),
            Example(
                "[{type: residual, projection: always, projection_batch_norm: false,"
                " body: [{type: conv2d, filters: 3, kernel_size: 3, padding: same}]}]"
            ),
            Example(
                "[{type: residual, body: [{type: conv2d, filters: 4, kernel_size: 1,"
                " data_format: channels_first}]}]"
            ),
        ),
        stand_in={"body": [{"type": "flatten"}]},
        nested=(("body", 1),),
        order=140,
    )
)
