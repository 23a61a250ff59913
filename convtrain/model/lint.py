"""Warnings about a legal but doubtful model: things Keras accepts that are usually mistakes.

Each layer kind lists its own checks (convtrain/layers/<kind>.py, `lint=`); the checks here
concern any kind (data_format) or a sequence of layers (a large map flattened into dense).
"""

from __future__ import annotations

from convtrain.layers import KIND_BY_TYPE
from convtrain.layers.tensor import FIRST, Step, fmt_shape
from convtrain.layers.window import where
from convtrain.model.plan import Plan

# A flattened map larger than this (positions, e.g. 8x8) makes the next dense layer huge.
LARGE_MAP = 64


def _channels_first(step: Step) -> str | None:
    if getattr(step.spec, "data_format", None) == FIRST:
        return (
            f"{where(step)}: data_format channels_first runs only on a GPU (TensorFlow's CPU "
            f"convolution and pooling kernels are NHWC only); convtrain inserts transposes "
            f"around it"
        )
    return None


def _large_map_into_dense(plan: Plan) -> list[str]:
    out = []
    flattened: Step | None = None
    for _, step in plan.rows():
        kind = KIND_BY_TYPE.get(step.kind)
        if step.kind == "flatten" and step.inp.spatial:
            flattened = step
        elif step.kind == "dense" and flattened is not None:
            hw = flattened.inp.hw
            if hw[0] * hw[1] > LARGE_MAP:
                out.append(
                    f"{where(step)}: a {fmt_shape(flattened.inp.shape)} map reaches this dense "
                    f"layer ({flattened.out.shape[0]:,} inputs, {step.trainable:,} parameters); "
                    f"downsample further or use global_avg_pool instead of flatten"
                )
            flattened = None
        elif kind is None or not kind.transparent:
            flattened = None
    return out


def warnings(plan: Plan) -> list[str]:
    """One line per doubtful choice, in layer order."""
    out = []
    for step in plan.leaves():
        if step.spec is None:
            continue
        checks = (*KIND_BY_TYPE[step.kind].lint, _channels_first)
        out.extend(line for check in checks if (line := check(step)))
    return out + _large_map_into_dense(plan)
