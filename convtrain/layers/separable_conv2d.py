"""separable_conv2d: keras.layers.SeparableConv2D, every argument."""

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
    Filters,
    KernelSize,
    LayerBase,
    OptionalActivation,
    Padding,
    PointwiseConstraint,
    PointwiseInitializer,
    PointwiseRegularizer,
    Strides,
    UseBias,
)
from convtrain.layers.depthwise_conv2d import depthwise_part
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor
from convtrain.layers.window import even_kernel, valid_padding


class SeparableConv2DSpec(LayerBase):
    """A depthwise convolution (one kernel per input channel) followed by a 1x1 convolution
    mixing the channels. Unlike conv2d, strides > 1 and dilation_rate > 1 may be combined."""

    type: Literal["separable_conv2d"]
    filters: Filters
    kernel_size: KernelSize
    strides: Strides = (1, 1)
    padding: Padding = "valid"
    data_format: DataFormat = None
    dilation_rate: DilationRate = (1, 1)
    depth_multiplier: DepthMultiplier = 1
    activation: OptionalActivation = None
    use_bias: UseBias = True
    depthwise_initializer: DepthwiseInitializer = "glorot_uniform"
    pointwise_initializer: PointwiseInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"
    depthwise_regularizer: DepthwiseRegularizer = None
    pointwise_regularizer: PointwiseRegularizer = None
    bias_regularizer: BiasRegularizer = None
    activity_regularizer: ActivityRegularizer = None
    depthwise_constraint: DepthwiseConstraint = None
    pointwise_constraint: PointwiseConstraint = None
    bias_constraint: BiasConstraint = None


def cost(spec: SeparableConv2DSpec, t: Tensor, ctx: PlanContext) -> Cost:
    out, rf, jump, mid, depthwise = depthwise_part(spec, t, ctx)
    pointwise = mid * spec.filters  # then a 1x1 convolution mixes the channels
    return Cost(
        replace(t, shape=t.with_spatial(out, spec.filters), rf=rf, jump=jump),
        trainable=depthwise + pointwise + (spec.filters if spec.use_bias else 0),
        macs=out[0] * out[1] * (depthwise + pointwise),
    )


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.SeparableConv2D(
        s.filters, s.kernel_size, strides=s.strides, padding=s.padding,
        data_format=step.layout, dilation_rate=s.dilation_rate,
        depth_multiplier=s.depth_multiplier, activation=s.activation, name=step.name,
        **k.weights(s, "depthwise"), **k.weights(s, "pointwise"), **k.bias_and_activity(s),
    )(x)  # fmt: skip


register(
    LayerKind(
        SeparableConv2DSpec,
        keras="SeparableConv2D",
        cost=cost,
        build=build,
        lint=(even_kernel, valid_padding),
        examples=(
            Example("[{type: separable_conv2d, filters: 5, kernel_size: 3}]"),
            Example(
                "[{type: separable_conv2d, filters: 4, kernel_size: [3, 2], strides: [1, 3],"
                " dilation_rate: [2, 1], depth_multiplier: 2, padding: same}]"
            ),
        ),
        stand_in={"filters": 1, "kernel_size": 1},
        order=20,
    )
)
