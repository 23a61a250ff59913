"""Sliding windows (convolutions, pooling): output size, receptive field, jump, and the
warnings about window choices that Keras accepts but that are usually mistakes."""

from __future__ import annotations

import math

from convtrain.layers.tensor import LAST, ShapeProblem, Step, Tensor, describe_input, fmt_shape


def require_spatial(kind: str, t: Tensor) -> None:
    if not t.spatial:
        raise ShapeProblem(
            "",
            f"{kind} expected a 4-D input (batch, height, width, channels), received "
            f"{describe_input(t)}: it comes after a flatten, global pool or dense layer",
        )


def window(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """One axis of Keras's conv/pool output size (<= 0 when the window does not fit)."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - ((kernel - 1) * dilation + 1)) // stride + 1


def slide(
    kind: str,
    t: Tensor,
    field: str,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    padding: str,
    image: tuple[int, int],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Output size, receptive field and jump of a sliding window over `t`."""
    require_spatial(kind, t)
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


def collapse(t: Tensor, features: int) -> Tensor:
    """A spatial map reduced to a vector: every output sees the whole map."""
    hw = t.hw
    rf = tuple(t.rf[a] + (hw[a] - 1) * t.jump[a] for a in (0, 1))
    jump = tuple(t.jump[a] * hw[a] for a in (0, 1))
    return Tensor((features,), LAST, rf, jump)  # type: ignore[arg-type]


# --- warnings (convtrain inspect) -----------------------------------------------------------


def where(step: Step) -> str:
    return f"{step.path} ({step.name})"


def even_kernel(step: Step) -> str | None:
    k = step.spec.kernel_size
    if k[0] % 2 == 0 or k[1] % 2 == 0:
        return (
            f"{where(step)}: even kernel size {fmt_shape(k)} has no centre pixel, so 'same' "
            f"padding pads one side more and features shift by half a pixel; odd sizes avoid it"
        )
    return None


def valid_padding(step: Step) -> str | None:
    """Pixels past the last window position are read by no window at all."""
    s = step.spec
    if s.padding != "valid":
        return None
    pool = hasattr(s, "pool_size")
    kernel = s.pool_size if pool else s.kernel_size
    strides = s.strides or kernel
    dilation = getattr(s, "dilation_rate", (1, 1))
    hw_in, hw_out = step.inp.hw, step.out.hw
    span = tuple((kernel[a] - 1) * dilation[a] + 1 for a in (0, 1))
    lost = tuple(hw_in[a] - ((hw_out[a] - 1) * strides[a] + span[a]) for a in (0, 1))
    if not any(lost) and (pool or span == (1, 1)):
        return None
    text = f"{where(step)}: 'valid' padding maps {fmt_shape(hw_in)} to {fmt_shape(hw_out)}"
    if any(lost):
        text += (
            f" and discards the last {lost[0]} row(s) and {lost[1]} column(s), which no "
            f"{fmt_shape(span)} window with strides {fmt_shape(strides)} reaches"
        )
    else:
        text += ", so border pixels feed fewer outputs than central ones"
    return text + "; padding: same keeps them"
