"""dense: keras.layers.Dense (also the classifier head convtrain adds)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import (
    ActivityRegularizer,
    BiasConstraint,
    BiasInitializer,
    BiasRegularizer,
    KernelConstraint,
    KernelInitializer,
    KernelRegularizer,
    LayerBase,
    OptionalActivation,
    UseBias,
)
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import Cost, Step, Tensor, fmt_shape
from convtrain.layers.window import where


class DenseSpec(LayerBase):
    """A fully connected layer on the last axis. On a 4-D tensor it acts on each pixel's
    channels (like a 1x1 convolution), which inspect warns about; as the last layer it is an
    error, since the head needs a 2-D tensor."""

    type: Literal["dense"]
    # `classes`: as many units as the dataset has classes (for a user-defined head).
    units: Annotated[
        Annotated[int, Field(ge=1)] | Literal["classes"],
        Field(description="number of outputs, >= 1, or classes: one per class (a head)"),
    ]
    activation: OptionalActivation = None
    use_bias: UseBias = True
    kernel_initializer: KernelInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"
    kernel_regularizer: KernelRegularizer = None
    bias_regularizer: BiasRegularizer = None
    activity_regularizer: ActivityRegularizer = None
    kernel_constraint: KernelConstraint = None
    bias_constraint: BiasConstraint = None


def cost(spec: DenseSpec, t: Tensor, ctx: PlanContext) -> Cost:
    units = ctx.classes if spec.units == "classes" else spec.units
    fan_in = t.shape[-1]  # Keras's Dense acts on the last axis, whatever the rank
    positions = math.prod(t.shape[:-1])
    return Cost(
        replace(t, shape=(*t.shape[:-1], units)),
        trainable=fan_in * units + (units if spec.use_bias else 0),
        macs=positions * fan_in * units,
    )


def build(step: Step, x: Any, k: Builder) -> Any:
    s = step.spec
    return k.layers.Dense(
        step.out.shape[-1], activation=s.activation, name=step.name,
        **k.weights(s, "kernel"), **k.bias_and_activity(s),
    )(x)  # fmt: skip


def dense_on_4d(step: Step) -> str | None:
    if step.inp.spatial:
        return (
            f"{where(step)}: dense on a 4-D tensor ({fmt_shape(step.inp.shape)}) acts on each "
            f"pixel's last axis separately (like a 1x1 convolution); add flatten or "
            f"global_avg_pool before it if you meant a fully connected layer"
        )
    return None


register(
    LayerKind(
        DenseSpec,
        keras="Dense",
        cost=cost,
        build=build,
        lint=(dense_on_4d,),
        examples=(
            Example("[{type: flatten}, {type: dense, units: 7, activation: relu}]"),
            Example("[{type: dense, units: 5, use_bias: false}]", image_size=6),
            Example(
                "[{type: global_avg_pool}, {type: dense, units: classes, activation: softmax}]"
            ),
        ),
        stand_in={"units": 1},
        order=120,
    )
)
