"""Layer specs: one pydantic model per YAML `type:`, joined in a discriminated union.

Arguments are normalised here, once (an int kernel size becomes a pair), so the model builder
and the shape calculator receive typed, complete objects. Field names and defaults follow the
Keras 3 layer each spec builds, so a Keras user reads a config without a glossary.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from convtrain.config.keras_objects import Activation, Constraint, Initializer, Regularizer


def _pair(value: Any) -> tuple[int, int]:
    """Keras's `standardize_tuple`: an int n means (n, n)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a positive integer or a list of two, received {value!r}")
    if isinstance(value, int):
        value = (value, value)
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        if min(value) < 1:
            raise ValueError(
                f"expected positive integers, received {list(value) if len(set(value)) > 1 else value[0]!r}"
            )
        return (int(value[0]), int(value[1]))
    raise ValueError(f"expected a positive integer or a list of two, received {value!r}")


Pair = Annotated[tuple[int, int], BeforeValidator(_pair)]
Padding = Literal["valid", "same"]
DataFormat = Literal["channels_last", "channels_first"]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


class LayerBase(BaseModel):
    # validate_default: default initializers go through the same normalisation as given ones.
    model_config = ConfigDict(extra="forbid", validate_default=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)] | None = None


def _no_stride_with_dilation(value: tuple[int, int], info: ValidationInfo) -> tuple[int, int]:
    strides = info.data.get("strides", (1, 1))
    if max(value) > 1 and max(strides) > 1:
        raise ValueError(
            f"expected dilation_rate 1 when strides > 1 (Keras cannot combine them), received "
            f"dilation_rate={list(value)} with strides={list(strides)}"
        )
    return value


class Conv2DSpec(LayerBase):
    type: Literal["conv2d"]
    filters: Annotated[int, Field(ge=1)]
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    data_format: DataFormat | None = None
    dilation_rate: Pair = (1, 1)
    groups: Annotated[int, Field(ge=1)] = 1
    activation: Activation | None = None
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None

    _check_dilation = field_validator("dilation_rate")(_no_stride_with_dilation)

    @field_validator("groups")
    @classmethod
    def _groups_divide_filters(cls, value: int, info: ValidationInfo) -> int:
        filters = info.data.get("filters")
        if filters and filters % value:
            raise ValueError(
                f"expected groups to divide filters ({filters}), received groups={value}"
            )
        return value


class SeparableConv2DSpec(LayerBase):
    type: Literal["separable_conv2d"]
    filters: Annotated[int, Field(ge=1)]
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    data_format: DataFormat | None = None
    dilation_rate: Pair = (1, 1)
    depth_multiplier: Annotated[int, Field(ge=1)] = 1
    activation: Activation | None = None
    use_bias: bool = True
    depthwise_initializer: Initializer = "glorot_uniform"
    pointwise_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    depthwise_regularizer: Regularizer | None = None
    pointwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    depthwise_constraint: Constraint | None = None
    pointwise_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None

    _check_dilation = field_validator("dilation_rate")(_no_stride_with_dilation)


class DepthwiseConv2DSpec(LayerBase):
    type: Literal["depthwise_conv2d"]
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    depth_multiplier: Annotated[int, Field(ge=1)] = 1
    data_format: DataFormat | None = None
    dilation_rate: Pair = (1, 1)
    activation: Activation | None = None
    use_bias: bool = True
    depthwise_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    depthwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    depthwise_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None

    _check_dilation = field_validator("dilation_rate")(_no_stride_with_dilation)


class PoolSpecBase(LayerBase):
    pool_size: Pair = (2, 2)
    strides: Pair | None = None  # None: equal to pool_size, as in Keras
    padding: Padding = "valid"
    data_format: DataFormat | None = None


class MaxPoolSpec(PoolSpecBase):
    type: Literal["max_pool"]


class AvgPoolSpec(PoolSpecBase):
    type: Literal["avg_pool"]


class GlobalAvgPoolSpec(LayerBase):
    type: Literal["global_avg_pool"]
    data_format: DataFormat | None = None


class GlobalMaxPoolSpec(LayerBase):
    type: Literal["global_max_pool"]
    data_format: DataFormat | None = None


class BatchNormSpec(LayerBase):
    type: Literal["batch_norm"]
    momentum: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.99
    epsilon: Annotated[float, Field(gt=0.0)] = 1e-3
    center: bool = True
    scale: bool = True


class DropoutSpec(LayerBase):
    type: Literal["dropout"]
    rate: Rate


class SpatialDropoutSpec(LayerBase):
    type: Literal["spatial_dropout"]
    rate: Rate
    data_format: DataFormat | None = None


class FlattenSpec(LayerBase):
    type: Literal["flatten"]


class DenseSpec(LayerBase):
    type: Literal["dense"]
    # `classes`: as many units as the dataset has classes (for a user-defined head).
    units: Annotated[int, Field(ge=1)] | Literal["classes"]
    activation: Activation | None = None
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None


class ActivationSpec(LayerBase):
    type: Literal["activation"]
    activation: Activation


class ResidualSpec(LayerBase):
    """`body` applied to the input, added to a shortcut (projected by a 1x1 conv when shapes differ)."""

    type: Literal["residual"]
    body: Annotated[list[LayerSpec], Field(min_length=1)]
    # auto: project only when the body changes the shape; always: project even when it does not.
    projection: Literal["auto", "always"] = "auto"
    projection_batch_norm: bool = True  # batch-norm the projected shortcut, as ResNet v1 does
    activation: Activation | None = None  # applied after the addition (ResNet's post-add ReLU)


class InceptionSpec(LayerBase):
    """Parallel `branches` applied to the same input, concatenated along the channel axis."""

    type: Literal["inception"]
    branches: Annotated[list[Annotated[list[LayerSpec], Field(min_length=1)]], Field(min_length=2)]


LayerSpec = Annotated[
    Conv2DSpec
    | SeparableConv2DSpec
    | DepthwiseConv2DSpec
    | MaxPoolSpec
    | AvgPoolSpec
    | GlobalAvgPoolSpec
    | GlobalMaxPoolSpec
    | BatchNormSpec
    | DropoutSpec
    | SpatialDropoutSpec
    | FlattenSpec
    | DenseSpec
    | ActivationSpec
    | ResidualSpec
    | InceptionSpec,
    Field(discriminator="type"),
]

ResidualSpec.model_rebuild()
InceptionSpec.model_rebuild()

SPEC_BY_TYPE: dict[str, type[LayerBase]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls
    for cls in (
        Conv2DSpec,
        SeparableConv2DSpec,
        DepthwiseConv2DSpec,
        MaxPoolSpec,
        AvgPoolSpec,
        GlobalAvgPoolSpec,
        GlobalMaxPoolSpec,
        BatchNormSpec,
        DropoutSpec,
        SpatialDropoutSpec,
        FlattenSpec,
        DenseSpec,
        ActivationSpec,
        ResidualSpec,
        InceptionSpec,
    )
}
LAYER_TYPES: tuple[str, ...] = tuple(SPEC_BY_TYPE)
