"""Warnings about a legal but doubtful model: things Keras accepts that are usually mistakes."""

from __future__ import annotations

from convtrain.model.arithmetic import FIRST, fmt_shape
from convtrain.model.shapes import Plan, Step

# A flattened map larger than this (positions, e.g. 8x8) makes the next dense layer huge.
LARGE_MAP = 64
_CONVS = ("conv2d", "separable_conv2d", "depthwise_conv2d")
_POOLS = ("max_pool", "avg_pool")


def _where(step: Step) -> str:
    return f"{step.path} ({step.name})"


def _even_kernel(step: Step) -> str | None:
    if step.kind not in _CONVS:
        return None
    k = step.spec.kernel_size
    if k[0] % 2 == 0 or k[1] % 2 == 0:
        return (
            f"{_where(step)}: even kernel size {fmt_shape(k)} has no centre pixel, so 'same' "
            f"padding pads one side more and features shift by half a pixel; odd sizes avoid it"
        )
    return None


def _valid_padding(step: Step) -> str | None:
    s = step.spec
    if step.kind not in (*_CONVS, *_POOLS) or s.padding != "valid":
        return None
    kernel = s.kernel_size if step.kind in _CONVS else s.pool_size
    strides = s.strides or kernel
    dilation = getattr(s, "dilation_rate", (1, 1))
    hw_in, hw_out = step.inp.hw, step.out.hw
    span = tuple((kernel[a] - 1) * dilation[a] + 1 for a in (0, 1))
    # Pixels past the last window position are read by no window at all.
    lost = tuple(hw_in[a] - ((hw_out[a] - 1) * strides[a] + span[a]) for a in (0, 1))
    if not any(lost) and (step.kind in _POOLS or span == (1, 1)):
        return None
    text = f"{_where(step)}: 'valid' padding maps {fmt_shape(hw_in)} to {fmt_shape(hw_out)}"
    if any(lost):
        text += (
            f" and discards the last {lost[0]} row(s) and {lost[1]} column(s), which no "
            f"{fmt_shape(span)} window with strides {fmt_shape(strides)} reaches"
        )
    else:
        text += ", so border pixels feed fewer outputs than central ones"
    return text + "; padding: same keeps them"


def _dense_on_4d(step: Step) -> str | None:
    if step.kind == "dense" and step.inp.spatial:
        return (
            f"{_where(step)}: dense on a 4-D tensor ({fmt_shape(step.inp.shape)}) acts on each "
            f"pixel's last axis separately (like a 1x1 convolution); add flatten or "
            f"global_avg_pool before it if you meant a fully connected layer"
        )
    return None


def _channels_first(step: Step) -> str | None:
    spec_format = getattr(step.spec, "data_format", None)
    if spec_format == FIRST:
        return (
            f"{_where(step)}: data_format channels_first runs only on a GPU (TensorFlow's CPU "
            f"convolution and pooling kernels are NHWC only); convtrain inserts transposes "
            f"around it"
        )
    return None


def _large_map_into_dense(plan: Plan) -> list[str]:
    out = []
    flattened: Step | None = None
    for _, step in plan.rows():
        if step.kind == "flatten" and step.inp.spatial:
            flattened = step
        elif step.kind == "dense" and flattened is not None:
            hw = flattened.inp.hw
            if hw[0] * hw[1] > LARGE_MAP:
                out.append(
                    f"{_where(step)}: a {fmt_shape(flattened.inp.shape)} map reaches this dense "
                    f"layer ({flattened.out.shape[0]:,} inputs, {step.trainable:,} parameters); "
                    f"downsample further or use global_avg_pool instead of flatten"
                )
            flattened = None
        elif step.kind not in ("dropout", "batch_norm", "activation"):
            flattened = None
    return out


_PER_STEP = (_even_kernel, _valid_padding, _dense_on_4d, _channels_first)


def warnings(plan: Plan) -> list[str]:
    """One line per doubtful choice, in layer order."""
    out = []
    for step in plan.leaves():
        if step.spec is None:
            continue
        out.extend(line for check in _PER_STEP if (line := check(step)))
    return out + _large_map_into_dense(plan)
