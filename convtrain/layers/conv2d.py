"""conv2d: keras.layers.Conv2D, every argument."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from convtrain.layers.base import (
    ActivityRegularizer,
    BiasConstraint,
    BiasInitializer,
    BiasRegularizer,
    DataFormat,
    DilationRate,
    Filters,
    KernelConstraint,
    KernelInitializer,
    KernelRegularizer,
    KernelSize,
    LayerBase,
    OptionalActivation,
    Padding,
    Strides,
    UseBias,
)
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, ShapeProblem, Step, Tensor
from convtrain.layers.window import even_kernel, slide, valid_padding


class Conv2DSpec(LayerBase):
    """A 2-D convolution: `filters` kernels slid over the input, each summing over its channels."""

    type: Literal["conv2d"]
    filters: Filters
    kernel_size: KernelSize
    strides: Strides = (1, 1)
    padding: Padding = "valid"
    data_format: DataFormat = None
    dilation_rate: Annotated[
        DilationRate,
        Field(
            description="gaps between kernel taps: the kernel covers k_eff = (k - 1) * d + 1 "
            "pixels; must be 1 when strides > 1 (Keras's Conv2D cannot combine them)"
        ),
    ] = (1, 1)
    groups: Annotated[
        int,
        Field(
            ge=1,
            description="channel groups convolved separately; must divide filters and the "
            "input channels",
        ),
    ] = 1
    activation: OptionalActivation = None
    use_bias: UseBias = True
    kernel_initializer: KernelInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"
    kernel_regularizer: KernelRegularizer = None
    bias_regularizer: BiasRegularizer = None
    activity_regularizer: ActivityRegularizer = None
    kernel_constraint: KernelConstraint = None
    bias_constraint: BiasConstraint = None

    @field_validator("dilation_rate")
    @classmethod
    def _no_stride_with_dilation(cls, value: tuple[int, int], info: ValidationInfo):
        # Keras's Conv2D refuses the pair; SeparableConv2D and DepthwiseConv2D accept it.
        strides = info.data.get("strides", (1, 1))
        if max(value) > 1 and max(strides) > 1:
            raise ValueError(
                f"expected dilation_rate 1 when strides > 1 (Keras cannot combine them), received "
                f"dilation_rate={list(value)} with strides={list(strides)}"
            )
        return value

    @field_validator("groups")
    @classmethod
    def _groups_divide_filters(cls, value: int, info: ValidationInfo) -> int:
        filters = info.data.get("filters")
        if filters and filters % value:
            raise ValueError(
                f"expected groups to divide filters ({filters}), received groups={value}"
            )
        return value


def cost(spec: Conv2DSpec, t: Tensor, ctx: PlanContext) -> Cost:
    out, rf, jump = slide(
        spec.type, t, "kernel_size", spec.kernel_size, spec.strides, spec.dilation_rate,
        spec.padding, ctx.image,
    )  # fmt: skip
    cin = t.channels
    if cin % spec.groups:
        raise ShapeProblem(
            "groups",
            f"expected groups to divide the {cin} input channels, received groups={spec.groups}",
        )
    per_output = spec.kernel_size[0] * spec.kernel_size[1] * (cin // spec.groups)
    params = per_output * spec.filters + (spec.filters if spec.use_bias else 0)
    return Cost(
        replace(t, shape=t.with_spatial(out, spec.filters), rf=rf, jump=jump),
        trainable=params,
        macs=out[0] * out[1] * spec.filters * per_output,
    )


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.Conv2D(
        s.filters, s.kernel_size, strides=s.strides, padding=s.padding,
        data_format=step.layout, dilation_rate=s.dilation_rate, groups=s.groups,
        activation=s.activation, name=step.name, **k.weights(s, "kernel"),
        **k.bias_and_activity(s),
    )(x)  # fmt: skip


def _stand_in(values: dict[str, Any]) -> dict[str, Any]:
    groups = values.get("groups")
    # The stand-in filters must be divisible by the default groups being validated.
    filters = max(1, groups) if isinstance(groups, int) and not isinstance(groups, bool) else 1
    return {"filters": filters, "kernel_size": 1}


register(
    LayerKind(
        Conv2DSpec,
        keras="Conv2D",
        cost=cost,
        build=build,
        lint=(even_kernel, valid_padding),
        examples=(
            Example("[{type: conv2d, filters: 4, kernel_size: 3}]"),
            Example(
                "[{type: conv2d, filters: 6, kernel_size: [3, 2], strides: [2, 1], padding: same,"
                " use_bias: false}, {type: conv2d, filters: 4, kernel_size: 3, groups: 2,"
                " dilation_rate: 2}]"
            ),
        ),
        stand_in=_stand_in,
        order=10,
    )
)
