"""The plan's layers as explain sees them, and where each unit of a layer looks in the image.

Everything here comes from the model plan (`convtrain.model.plan`, the arithmetic `inspect`
prints), never from TensorFlow: which layers have a spatial output (Grad-CAM and the receptive
field need rows and columns), which Keras layer holds a block's output, and for every unit of a
layer the interval of input pixels it can see. The intervals are walked backwards through each
window (kernel, stride, dilation, TensorFlow's 'same' padding, which puts the odd pixel after),
and through a block as the union of its paths, so their sizes are inspect's receptive fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convtrain.errors import ConvtrainError
from convtrain.layers.tensor import FIRST, Step, describe_input, fmt_shape
from convtrain.model.plan import Plan

CONV_KINDS = ("conv2d", "separable_conv2d", "depthwise_conv2d")
_WINDOWED = (*CONV_KINDS, "max_pool", "avg_pool")


@dataclass(frozen=True)
class Layer:
    """A layer (or block) of the plan: `output` is the Keras layer whose output it is."""

    step: Step

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def output(self) -> str:
        return self.step.merge[-1].name if self.step.is_block else self.step.name

    @property
    def spatial(self) -> bool:
        return self.step.out.spatial

    @property
    def channels_axis(self) -> int:
        """The channel axis of the output, batch included (blocks hand on their input's layout)."""
        return 1 if self.step.out.layout == FIRST else -1

    def caption(self) -> str:
        out = self.step.out
        rf, jump = out.rf, out.jump
        return (
            f"{self.name} ({self.step.kind}): output {fmt_shape(out.shape)}"
            f"{' (channels first)' if out.layout == FIRST else ''}, stride {_pair(jump)}, "
            f"receptive field {_pair(rf)}"
        )


def _pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else fmt_shape(p)


def layers(plan: Plan) -> list[Layer]:
    """Every layer and block of the plan in order (a block before the layers inside it)."""
    return [Layer(step) for _, step in plan.rows()]


def feature_layers(plan: Plan) -> list[Layer]:
    """Whose feature maps are drawn: every convolution and every block output."""
    return [
        layer
        for layer in layers(plan)
        if (layer.step.kind in CONV_KINDS or layer.step.is_block) and layer.spatial
    ]


def conv_layers(plan: Plan) -> list[Layer]:
    return [layer for layer in layers(plan) if layer.step.kind in CONV_KINDS]


def choose_layer(plan: Plan, name: str | None, option: str = "--layer") -> Layer:
    """The named layer, checked to have a spatial output; by default the last spatial one."""
    spatial = [layer for layer in layers(plan) if layer.spatial]
    if name is None:
        top = [Layer(step) for step in plan.steps if step.out.spatial]
        if not top:
            raise ConvtrainError(
                f"{option}: the model has no layer with a spatial output to explain"
            )
        return top[-1]
    found = next((layer for layer in layers(plan) if layer.name == name), None)
    if found is None:
        raise ConvtrainError(
            f"{option}: expected the name of a layer with a spatial output, one of "
            f"{', '.join(layer.name for layer in spatial)}; received {name!r}, which is not "
            f"a layer of this model"
        )
    if not found.spatial:
        raise ConvtrainError(
            f"{option}: expected a layer with a spatial output (rows and columns), received "
            f"{name!r}, a {found.step.kind} layer whose output is {describe_input(found.step.out)}"
            f": Grad-CAM weighs the channels of a feature map and a receptive field belongs to "
            f"a position in it; the last spatial layer is {spatial[-1].name!r}"
        )
    return found


# --- receptive fields -----------------------------------------------------------------------


def _window_back(step: Step, lo: np.ndarray, hi: np.ndarray, axis: int) -> tuple:
    if step.kind not in _WINDOWED:
        return lo, hi  # batch norm, activation, dropout, transposes, sums: pixel to pixel
    s = step.spec
    if step.kind in CONV_KINDS:
        kernel, strides, dilation = s.kernel_size, s.strides, s.dilation_rate
    else:
        kernel, strides, dilation = s.pool_size, s.strides or s.pool_size, (1, 1)
    span = (kernel[axis] - 1) * dilation[axis]
    before = 0
    if s.padding == "same":
        n_in, n_out = step.inp.hw[axis], step.out.hw[axis]
        before = max((n_out - 1) * strides[axis] + span + 1 - n_in, 0) // 2
    return lo * strides[axis] - before, hi * strides[axis] - before + span


def _back(steps: list[Step], lo: np.ndarray, hi: np.ndarray, axis: int) -> tuple:
    for step in reversed(steps):
        if step.is_block:
            paths = [step.body, step.shortcut] if step.kind == "residual" else step.branches
            ends = [_back(path, lo, hi, axis) for path in paths]
            lo = np.min([e[0] for e in ends], axis=0)
            hi = np.max([e[1] for e in ends], axis=0)
        else:
            lo, hi = _window_back(step, lo, hi, axis)
    return lo, hi


def _locate(steps: list[Step], name: str) -> list[tuple[list[Step], int]] | None:
    """The lists and positions leading to the step `name` (a block for its merge layers)."""
    for i, step in enumerate(steps):
        if step.name == name or any(m.name == name for m in step.merge):
            return [(steps, i)]
        for inner in (step.body, step.shortcut, *step.branches):
            found = _locate(inner, name)
            if found is not None:
                return [(steps, i), *found]
    return None


def intervals(plan: Plan, name: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per axis (rows, columns): the first and last input pixel each output unit can see.

    Values beyond the image (negative, or past its size) are padding.
    """
    trail = _locate(plan.steps, name)
    if trail is None:
        raise KeyError(name)
    steps, i = trail[-1]
    out = []
    for axis in (0, 1):
        n = steps[i].out.hw[axis]
        lo, hi = _back(steps[: i + 1], np.arange(n), np.arange(n), axis)
        for outer, j in reversed(trail[:-1]):
            lo, hi = _back(outer[:j], lo, hi, axis)  # the enclosing block's input onwards
        out.append((lo, hi))
    return tuple(out)


def centres(plan: Plan, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The centre, in input pixels, of every unit's receptive field along rows and columns."""
    (rlo, rhi), (clo, chi) = intervals(plan, name)
    return (rlo + rhi) / 2.0, (clo + chi) / 2.0


def centre_unit(plan: Plan, name: str) -> tuple[int, int]:
    """The unit whose receptive field is centred nearest the image's centre (ties: the first)."""
    h, w = plan.input.hw
    rows, cols = centres(plan, name)
    return int(np.argmin(np.abs(rows - (h - 1) / 2))), int(np.argmin(np.abs(cols - (w - 1) / 2)))


def theoretical_box(plan: Plan, name: str, unit: tuple[int, int]) -> tuple[tuple, tuple]:
    """(size, box): the unit's field size (unclipped) and its top, left, bottom, right in the image."""
    (rlo, rhi), (clo, chi) = intervals(plan, name)
    r, c = unit
    h, w = plan.input.hw
    size = (int(rhi[r] - rlo[r] + 1), int(chi[c] - clo[c] + 1))
    box = (
        max(int(rlo[r]), 0),
        max(int(clo[c]), 0),
        min(int(rhi[r]), h - 1),
        min(int(chi[c]), w - 1),
    )
    return size, box


def upsample(values: np.ndarray, plan: Plan, name: str) -> np.ndarray:
    """A [rows, cols] map of a layer spread over the image: each unit at its field's centre,
    linear in between, held constant beyond the outermost centres."""
    rows, cols = centres(plan, name)
    h, w = plan.input.hw
    v = np.asarray(values, dtype=np.float64)
    by_row = np.stack([np.interp(np.arange(h), rows, v[:, j]) for j in range(v.shape[1])], axis=1)
    return np.stack([np.interp(np.arange(w), cols, by_row[i]) for i in range(h)], axis=0)


def peak_pixel(values: np.ndarray, plan: Plan, name: str) -> tuple[int, int] | None:
    """The centre of the receptive field of the strongest unit, in input pixels."""
    v = np.asarray(values)
    if not np.isfinite(v).all() or v.max() <= 0:
        return None
    r, c = np.unravel_index(int(np.argmax(v)), v.shape)
    rows, cols = centres(plan, name)
    h, w = plan.input.hw
    return int(np.clip(np.floor(rows[r]), 0, h - 1)), int(np.clip(np.floor(cols[c]), 0, w - 1))
