"""depthwise_conv2d: keras.layers.DepthwiseConv2D, every argument."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from convtrain.layers.base import (
    ActivityRegularizer,
    BiasConstraint,
    BiasInitializer,
    BiasRegularizer,
    DataFormat,
    DepthMultiplier,
    DepthwiseConstraint,
    DepthwiseInitializer,
    DepthwiseRegularizer,
    DilationRate,
    KernelSize,
    LayerBase,
    OptionalActivation,
    Padding,
    Strides,
    UseBias,
)
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor
from convtrain.layers.window import even_kernel, slide, valid_padding


class DepthwiseConv2DSpec(LayerBase):
    """One kernel per input channel (no mixing of channels); output channels: input channels x
    depth_multiplier. Unlike conv2d, strides > 1 and dilation_rate > 1 may be combined."""

    type: Literal["depthwise_conv2d"]
    kernel_size: KernelSize
    strides: Strides = (1, 1)
    padding: Padding = "valid"
    depth_multiplier: DepthMultiplier = 1
    data_format: DataFormat = None
    dilation_rate: DilationRate = (1, 1)
    activation: OptionalActivation = None
    use_bias: UseBias = True
    depthwise_initializer: DepthwiseInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"
    depthwise_regularizer: DepthwiseRegularizer = None
    bias_regularizer: BiasRegularizer = None
    activity_regularizer: ActivityRegularizer = None
    depthwise_constraint: DepthwiseConstraint = None
    bias_constraint: BiasConstraint = None


def depthwise_part(
    spec: Any, t: Tensor, ctx: PlanContext
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], int, int]:
    """The per-channel convolution depthwise and separable layers start with: output size,
    receptive field, jump, channels and weights."""
    out, rf, jump = slide(
        spec.type, t, "kernel_size", spec.kernel_size, spec.strides, spec.dilation_rate,
        spec.padding, ctx.image,
    )  # fmt: skip
    mid = t.channels * spec.depth_multiplier
    return out, rf, jump, mid, spec.kernel_size[0] * spec.kernel_size[1] * mid


def cost(spec: DepthwiseConv2DSpec, t: Tensor, ctx: PlanContext) -> Cost:
    out, rf, jump, mid, depthwise = depthwise_part(spec, t, ctx)
    return Cost(
        replace(t, shape=t.with_spatial(out, mid), rf=rf, jump=jump),
        trainable=depthwise + (mid if spec.use_bias else 0),
        macs=out[0] * out[1] * depthwise,
    )


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.DepthwiseConv2D(
        s.kernel_size, strides=s.strides, padding=s.padding,
        depth_multiplier=s.depth_multiplier, data_format=step.layout,
        dilation_rate=s.dilation_rate, activation=s.activation, name=step.name,
        **k.weights(s, "depthwise"), **k.bias_and_activity(s),
    )(x)  # fmt: skip


register(
    LayerKind(
        DepthwiseConv2DSpec,
        keras="DepthwiseConv2D",
        cost=cost,
        build=build,
        lint=(even_kernel, valid_padding),
        examples=(
            Example("[{type: depthwise_conv2d, kernel_size: 3, depth_multiplier: 2}]"),
            Example(
                "[{type: depthwise_conv2d, kernel_size: 3, strides: [1, 3], dilation_rate: [1, 2],"
                " use_bias: false}]",
                image_size=13,
            ),
        ),
        stand_in={"kernel_size": 1},
        order=30,
    )
)
