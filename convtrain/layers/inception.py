"""inception: parallel branches on the same input, concatenated along the channel axis."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from convtrain.layers.base import LayerBase
from convtrain.layers.registry import Builder, Example, LayerKind, PlanContext, register
from convtrain.layers.tensor import FIRST, Step, Tensor, describe_input, fmt_shape


class InceptionSpec(LayerBase):
    """Every branch receives the block's input; the outputs are concatenated on the channel
    axis, so they must have the same height and width."""

    type: Literal["inception"]
    branches: Annotated[
        list[Annotated[list[LayerSpec], Field(min_length=1)]],  # noqa: F821 - see residual.py
        Field(min_length=2, description="at least two lists of layers, each non-empty"),
    ]


def plan(ctx: PlanContext, spec: InceptionSpec, t: Tensor, path: str) -> Step:
    name = ctx.name(spec)
    step = Step(path, name, "inception", spec, t, t, layout=t.layout)
    outs: list[Tensor] = []
    for j, branch in enumerate(spec.branches):
        bpath = f"{path}.branches[{j}]"
        steps, tb = ctx.walk(branch, t, bpath)
        tb = ctx.back_to(steps, tb, t.layout, bpath, f"{name}_branch{j}_to_{t.layout}")
        if not tb.spatial:
            ctx.fail(
                f"{bpath}: expected a branch that keeps a 4-D tensor (to concatenate on the "
                f"channel axis), received {describe_input(tb)}"
            )
        if outs and tb.hw != outs[0].hw:
            ctx.fail(
                f"{bpath}: expected the same spatial size as {path}.branches[0] "
                f"({fmt_shape(outs[0].hw)}), received {fmt_shape(tb.hw)}; branches are "
                f"concatenated on the channel axis"
            )
        step.branches.append(steps)
        outs.append(tb)
    channels = sum(o.channels for o in outs)
    rf = tuple(max(o.rf[a] for o in outs) for a in (0, 1))
    jump = tuple(max(o.jump[a] for o in outs) for a in (0, 1))
    shape = outs[0].with_spatial(outs[0].hw, channels)
    out = Tensor(shape, t.layout, rf, jump)  # type: ignore[arg-type]
    step.merge.append(
        Step(
            path, f"{name}_concat", "concatenate", None, t, out, layout=t.layout,
            added="branch concatenation",
        )
    )  # fmt: skip
    step.out = out
    return step.add_totals()


def build(step: Step, x: Any, k: Builder) -> Any:
    outputs = [k.steps(branch, x) for branch in step.branches]
    axis = 1 if step.layout == FIRST else -1
    return k.layers.Concatenate(axis=axis, name=step.merge[0].name)(outputs)


register(
    LayerKind(
        InceptionSpec,
        keras="Concatenate",
        plan=plan,
        build=build,
        examples=(
            Example(
                "[{type: inception, branches: ["
                "[{type: conv2d, filters: 4, kernel_size: 1}], "
                "[{type: conv2d, filters: 2, kernel_size: 1},"
                " {type: conv2d, filters: 3, kernel_size: 3, padding: same}], "
                "[{type: max_pool, pool_size: 3, strides: 1, padding: same}]]}]"
            ),
        ),
        stand_in={"branches": [[{"type": "flatten"}], [{"type": "flatten"}]]},
        nested=(("branches", 2),),
        order=150,
    )
)
