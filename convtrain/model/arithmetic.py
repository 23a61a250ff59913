"""Per-layer arithmetic without TensorFlow: output shape, parameters, multiply-accumulates,
receptive field and jump, following Keras 3's own formulas.

Shapes exclude the batch axis. A spatial tensor is (H, W, C) in channels_last layout and
(C, H, W) in channels_first; after flatten or a global pool it is (features,).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from convtrain.config.layers import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DepthwiseConv2DSpec,
    FlattenSpec,
    GlobalAvgPoolSpec,
    GlobalMaxPoolSpec,
    LayerBase,
    PoolSpecBase,
    SeparableConv2DSpec,
    SpatialDropoutSpec,
)

LAST, FIRST = "channels_last", "channels_first"


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    layout: str = LAST  # meaningful only for 3-D (spatial) shapes
    rf: tuple[int, int] = (1, 1)  # receptive field in input pixels (rows, columns)
    jump: tuple[int, int] = (1, 1)  # distance in input pixels between adjacent outputs

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3

    @property
    def hw(self) -> tuple[int, int]:
        return self.shape[:2] if self.layout == LAST else self.shape[1:]

    @property
    def channels(self) -> int:
        return self.shape[0] if self.spatial and self.layout == FIRST else self.shape[-1]

    def with_spatial(self, hw: tuple[int, int], channels: int) -> tuple[int, ...]:
        return (*hw, channels) if self.layout == LAST else (channels, *hw)


@dataclass(frozen=True)
class Cost:
    out: Tensor
    trainable: int = 0
    non_trainable: int = 0
    macs: int = 0


class ShapeProblem(Exception):
    """A layer cannot be applied to its input; `field` names the offending key (or '')."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def describe_input(t: Tensor) -> str:
    return f"({', '.join(['batch', *map(str, t.shape)])})"


def _require_spatial(spec: LayerBase, t: Tensor) -> None:
    if not t.spatial:
        raise ShapeProblem(
            "",
            f"{spec.type} expected a 4-D input (batch, height, width, channels), received "
            f"{describe_input(t)}: it comes after a flatten, global pool or dense layer",
        )


def window(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """One axis of Keras's conv/pool output size (<= 0 when the window does not fit)."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - ((kernel - 1) * dilation + 1)) // stride + 1


def _slide(
    spec: LayerBase,
    t: Tensor,
    field: str,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    padding: str,
    image: tuple[int, int],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Output size, receptive field and jump of a sliding window over `t`."""
    _require_spatial(spec, t)
    hw = t.hw
    out = tuple(window(hw[a], kernel[a], strides[a], dilation[a], padding) for a in (0, 1))
    if min(out) < 1:
        covers = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
        what = fmt_shape(kernel) + (
            f" with dilation_rate {list(dilation)} (covers {fmt_shape(covers)})"
            if max(dilation) > 1
            else ""
        )
        shrunk = (
            f"; the layers before it shrink the {fmt_shape(image)} image to "
            f"{fmt_shape(hw)}, so the stack leaves nothing for this layer"
            if tuple(hw) != tuple(image)
            else ""
        )
        raise ShapeProblem(
            field,
            f"expected a window no larger than its {fmt_shape(hw)} input under 'valid' "
            f"padding, received {what}{shrunk} (use padding: same, a smaller window or fewer "
            f"downsampling layers)",
        )
    rf = tuple(t.rf[a] + ((kernel[a] - 1) * dilation[a]) * t.jump[a] for a in (0, 1))
    jump = tuple(t.jump[a] * strides[a] for a in (0, 1))
    return out, rf, jump  # type: ignore[return-value]


def _conv2d(spec: Conv2DSpec, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    out, rf, jump = _slide(
        spec,
        t,
        "kernel_size",
        spec.kernel_size,
        spec.strides,
        spec.dilation_rate,
        spec.padding,
        image,
    )
    cin = t.channels
    if cin % spec.groups:
        raise ShapeProblem(
            "groups",
            f"expected groups to divide the {cin} input channels, received groups={spec.groups}",
        )
    per_output = spec.kernel_size[0] * spec.kernel_size[1] * (cin // spec.groups)
    params = per_output * spec.filters + (spec.filters if spec.use_bias else 0)
    shape = t.with_spatial(out, spec.filters)
    return Cost(
        replace(t, shape=shape, rf=rf, jump=jump),
        trainable=params,
        macs=out[0] * out[1] * spec.filters * per_output,
    )


def _depthwise_part(
    spec: SeparableConv2DSpec | DepthwiseConv2DSpec, t: Tensor, image: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], int, int]:
    """The per-channel convolution both layers start with: output size, rf, jump, channels, weights."""
    out, rf, jump = _slide(
        spec,
        t,
        "kernel_size",
        spec.kernel_size,
        spec.strides,
        spec.dilation_rate,
        spec.padding,
        image,
    )
    mid = t.channels * spec.depth_multiplier
    return out, rf, jump, mid, spec.kernel_size[0] * spec.kernel_size[1] * mid


def _separable(spec: SeparableConv2DSpec, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    out, rf, jump, mid, depthwise = _depthwise_part(spec, t, image)
    pointwise = mid * spec.filters  # then a 1x1 convolution mixes the channels
    params = depthwise + pointwise + (spec.filters if spec.use_bias else 0)
    return Cost(
        replace(t, shape=t.with_spatial(out, spec.filters), rf=rf, jump=jump),
        trainable=params,
        macs=out[0] * out[1] * (depthwise + pointwise),
    )


def _depthwise(spec: DepthwiseConv2DSpec, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    out, rf, jump, mid, depthwise = _depthwise_part(spec, t, image)
    return Cost(
        replace(t, shape=t.with_spatial(out, mid), rf=rf, jump=jump),
        trainable=depthwise + (mid if spec.use_bias else 0),
        macs=out[0] * out[1] * depthwise,
    )


def _pool(spec: PoolSpecBase, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    strides = spec.strides or spec.pool_size
    out, rf, jump = _slide(
        spec, t, "pool_size", spec.pool_size, strides, (1, 1), spec.padding, image
    )
    return Cost(replace(t, shape=t.with_spatial(out, t.channels), rf=rf, jump=jump))


def _collapse(t: Tensor, features: int) -> Tensor:
    """A spatial map reduced to a vector: every output sees the whole map."""
    hw = t.hw
    rf = tuple(t.rf[a] + (hw[a] - 1) * t.jump[a] for a in (0, 1))
    jump = tuple(t.jump[a] * hw[a] for a in (0, 1))
    return Tensor((features,), LAST, rf, jump)  # type: ignore[arg-type]


def _global_pool(spec: LayerBase, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    _require_spatial(spec, t)
    return Cost(_collapse(t, t.channels))


def _flatten(spec: FlattenSpec, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    if not t.spatial:
        return Cost(replace(t, shape=(math.prod(t.shape),)))
    return Cost(_collapse(t, math.prod(t.shape)))


def _batch_norm(spec: BatchNormSpec, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    c = t.channels
    return Cost(t, trainable=c * (int(spec.center) + int(spec.scale)), non_trainable=2 * c)


def _dense(spec: DenseSpec, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    units = classes if spec.units == "classes" else spec.units
    fan_in = t.shape[-1]  # Keras's Dense acts on the last axis, whatever the rank
    positions = math.prod(t.shape[:-1])
    return Cost(
        replace(t, shape=(*t.shape[:-1], units)),
        trainable=fan_in * units + (units if spec.use_bias else 0),
        macs=positions * fan_in * units,
    )


def _spatial_dropout(
    spec: SpatialDropoutSpec, t: Tensor, image: tuple[int, int], classes: int
) -> Cost:
    _require_spatial(spec, t)
    return Cost(t)


def _same(spec: LayerBase, t: Tensor, image: tuple[int, int], classes: int) -> Cost:
    return Cost(t)


# YAML type -> arithmetic of that leaf layer (blocks are composed in convtrain.model.shapes).
ARITHMETIC: dict[str, Callable[[LayerBase, Tensor, tuple[int, int], int], Cost]] = {
    "conv2d": _conv2d,
    "separable_conv2d": _separable,
    "depthwise_conv2d": _depthwise,
    "max_pool": _pool,
    "avg_pool": _pool,
    "global_avg_pool": _global_pool,
    "global_max_pool": _global_pool,
    "batch_norm": _batch_norm,
    "dropout": _same,
    "spatial_dropout": _spatial_dropout,
    "flatten": _flatten,
    "dense": _dense,
    "activation": _same,
}

# Spec classes whose layers take a data_format (the others follow the tensor as it is).
SPATIAL_SPECS = (
    Conv2DSpec,
    SeparableConv2DSpec,
    DepthwiseConv2DSpec,
    PoolSpecBase,
    GlobalAvgPoolSpec,
    GlobalMaxPoolSpec,
    SpatialDropoutSpec,
)
