"""The model plan: every Keras layer the builder will create, with its name, layout, output
shape, parameters, MACs, receptive field and jump, computed without TensorFlow.

`plan_model` is the single source of layer names, data formats and inserted layers (transposes,
residual projections, the classifier head): the builder follows the plan, `inspect` prints it,
and `check_stack` (called on every config load) reports the problems it finds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from convtrain.config.layers import (
    ActivationSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    InceptionSpec,
    LayerBase,
    ResidualSpec,
)
from convtrain.config.schema import Experiment
from convtrain.model.arithmetic import (
    ARITHMETIC,
    LAST,
    SPATIAL_SPECS,
    ShapeProblem,
    Tensor,
    describe_input,
    fmt_shape,
    window,
)
from convtrain.model.plan import (
    DEFAULT_CLASSES,
    PERMUTE_DIMS,
    Plan,
    Step,
    add_totals,
    resolve_classes,
)

# Re-exported: the builder, inspect and tests take the plan's types from here.
__all__ = [
    "DEFAULT_CLASSES",
    "PERMUTE_DIMS",
    "Plan",
    "Step",
    "check_stack",
    "plan_model",
    "resolve_classes",
]


class _Stop(Exception):
    """A shape problem was recorded; later shapes would be meaningless."""


class _Planner:
    def __init__(self, experiment: Experiment, num_classes: int):
        assert experiment.model.input is not None  # filled in from data by the schema
        self.image = experiment.model.input.image_size
        self.defaults: dict[str, dict[str, Any]] = experiment.model.defaults
        self.classes = num_classes
        self.problems: list[str] = []
        self.names: dict[int, str] = {}
        self._name_layers(experiment.model.layers)

    # --- names ---------------------------------------------------------------------------

    def _name_layers(self, layers: list[LayerBase]) -> None:
        given: dict[str, str] = {}
        order: list[tuple[str, LayerBase]] = []

        def collect(specs: list[Any], prefix: str) -> None:
            for i, spec in enumerate(specs):
                path = f"{prefix}[{i}]"
                order.append((path, spec))
                if spec.name is not None:
                    if spec.name in given:
                        self.problems.append(
                            f"{path}.name: expected a unique layer name, received {spec.name!r} "
                            f"(already used by {given[spec.name]})"
                        )
                    given.setdefault(spec.name, path)
                if isinstance(spec, ResidualSpec):
                    collect(spec.body, f"{path}.body")
                elif isinstance(spec, InceptionSpec):
                    for j, branch in enumerate(spec.branches):
                        collect(branch, f"{path}.branches[{j}]")

        collect(layers, "model.layers")
        counters: dict[str, int] = {}
        for _, spec in order:
            if spec.name is None:
                n = counters.get(spec.type, 0)
                while True:  # Keras-style auto names (conv2d_1, ...), skipping the given ones
                    n += 1
                    candidate = f"{spec.type}_{n}"
                    if candidate not in given:
                        break
                counters[spec.type] = n
                self.names[id(spec)] = candidate
            else:
                self.names[id(spec)] = spec.name

    def _synthetic(self, cls: type[LayerBase], path: str, fixed: dict[str, Any]) -> LayerBase:
        """A layer convtrain adds, taking model.defaults for its type where they apply."""
        ltype = cls.model_fields["type"].annotation.__args__[0]
        try:
            return cls.model_validate({**self.defaults.get(ltype, {}), **fixed, "type": ltype})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            self.problems.append(
                f"model.defaults.{ltype}.{key}: cannot apply to the {fixed.get('name')} layer "
                f"added for {path}: {first['msg']}"
            )
            raise _Stop from None

    # --- walking the stack ---------------------------------------------------------------

    def plan(self, layers: list[LayerBase], t: Tensor) -> list[Step]:
        steps, _ = self.walk(layers, t, "model.layers")
        return steps

    def walk(self, layers: list[Any], t: Tensor, prefix: str) -> tuple[list[Step], Tensor]:
        steps: list[Step] = []
        for i, spec in enumerate(layers):
            path = f"{prefix}[{i}]"
            if isinstance(spec, ResidualSpec):
                step = self.residual(spec, t, path)
            elif isinstance(spec, InceptionSpec):
                step = self.inception(spec, t, path)
            else:
                layout = t.layout
                if isinstance(spec, SPATIAL_SPECS) and t.spatial and spec.data_format:
                    layout = spec.data_format
                if layout != t.layout:
                    steps.append(
                        self.permute(t, layout, path, f"{self.names[id(spec)]}_to_{layout}")
                    )
                    t = steps[-1].out
                step = self.leaf(spec, t, path, self.names[id(spec)])
            steps.append(step)
            t = step.out
        return steps, t

    def leaf(self, spec: LayerBase, t: Tensor, path: str, name: str, added: str = "") -> Step:
        try:
            cost = ARITHMETIC[spec.type](spec, t, self.image, self.classes)
        except ShapeProblem as exc:
            self.problems.append(f"{path}{'.' + exc.field if exc.field else ''}: {exc.message}")
            raise _Stop from None
        return Step(
            path, name, spec.type, spec, t, cost.out, cost.trainable, cost.non_trainable,
            cost.macs, layout=t.layout, added=added,
        )  # fmt: skip

    def permute(self, t: Tensor, layout: str, path: str, name: str) -> Step:
        h, w = t.hw
        shape = (h, w, t.channels) if layout == LAST else (t.channels, h, w)
        out = replace(t, shape=shape, layout=layout)
        return Step(
            path, name, "permute", None, t, out, layout=layout, added=f"transpose to {layout}"
        )

    def _back_to(self, steps: list[Step], t: Tensor, layout: str, path: str, name: str) -> Tensor:
        """Blocks hand their output on in the layout they received."""
        if t.spatial and t.layout != layout:
            steps.append(self.permute(t, layout, path, name))
            return steps[-1].out
        return t

    def residual(self, spec: ResidualSpec, t: Tensor, path: str) -> Step:
        name = self.names[id(spec)]
        body, tb = self.walk(spec.body, t, f"{path}.body")
        tb = self._back_to(body, tb, t.layout, f"{path}.body", f"{name}_body_to_{t.layout}")
        step = Step(path, name, "residual", spec, t, tb, layout=t.layout, body=body)
        shortcut = t
        if spec.projection == "always" or tb.shape != t.shape:
            if not (t.spatial and tb.spatial):
                self.problems.append(
                    f"{path}.body: expected the body to keep the shape {describe_input(t)} "
                    f"(only 4-D tensors can be projected by a 1x1 convolution), received "
                    f"{describe_input(tb)}"
                )
                raise _Stop
            strides = tuple(max(1, tb.jump[a] // t.jump[a]) for a in (0, 1))
            if tuple(window(t.hw[a], 1, strides[a], 1, "same") for a in (0, 1)) != tb.hw:
                self.problems.append(
                    f"{path}.body: expected a body whose output size is the input size divided "
                    f"by its strides, so that a strided 1x1 projection can match it; received "
                    f"{fmt_shape(t.hw)} -> {fmt_shape(tb.hw)} (use padding: same in the body)"
                )
                raise _Stop
            conv = self._synthetic(
                Conv2DSpec, path,
                {"name": f"{name}_projection", "filters": tb.channels, "kernel_size": 1,
                 "strides": list(strides), "padding": "same", "dilation_rate": 1, "groups": 1,
                 "activation": None, "use_bias": not spec.projection_batch_norm,
                 "data_format": None},
            )  # fmt: skip
            step.shortcut.append(self.leaf(conv, t, path, conv.name or "", "residual projection"))
            if spec.projection_batch_norm:
                bn = self._synthetic(BatchNormSpec, path, {"name": f"{name}_projection_bn"})
                step.shortcut.append(
                    self.leaf(
                        bn, step.shortcut[-1].out, path, bn.name or "", "projection batch norm"
                    )
                )
            shortcut = step.shortcut[-1].out
        rf = tuple(max(tb.rf[a], shortcut.rf[a]) for a in (0, 1))
        merged = replace(tb, rf=rf)
        step.merge.append(
            Step(
                path, f"{name}_add", "add", None, tb, merged, layout=t.layout, added="residual sum"
            )
        )
        if spec.activation is not None:
            act = ActivationSpec(
                type="activation", activation=spec.activation, name=f"{name}_activation"
            )
            step.merge.append(
                self.leaf(act, merged, path, act.name or "", "activation after the sum")
            )
        step.out = step.merge[-1].out
        return add_totals(step)

    def inception(self, spec: InceptionSpec, t: Tensor, path: str) -> Step:
        name = self.names[id(spec)]
        step = Step(path, name, "inception", spec, t, t, layout=t.layout)
        outs: list[Tensor] = []
        for j, branch in enumerate(spec.branches):
            bpath = f"{path}.branches[{j}]"
            steps, tb = self.walk(branch, t, bpath)
            tb = self._back_to(steps, tb, t.layout, bpath, f"{name}_branch{j}_to_{t.layout}")
            if not tb.spatial:
                self.problems.append(
                    f"{bpath}: expected a branch that keeps a 4-D tensor (to concatenate on the "
                    f"channel axis), received {describe_input(tb)}"
                )
                raise _Stop
            if outs and tb.hw != outs[0].hw:
                self.problems.append(
                    f"{bpath}: expected the same spatial size as {path}.branches[0] "
                    f"({fmt_shape(outs[0].hw)}), received {fmt_shape(tb.hw)}; branches are "
                    f"concatenated on the channel axis"
                )
                raise _Stop
            step.branches.append(steps)
            outs.append(tb)
        channels = sum(o.channels for o in outs)
        rf = tuple(max(o.rf[a] for o in outs) for a in (0, 1))
        jump = tuple(max(o.jump[a] for o in outs) for a in (0, 1))
        out = Tensor(outs[0].with_spatial(outs[0].hw, channels), t.layout, rf, jump)  # type: ignore[arg-type]
        step.merge.append(
            Step(
                path,
                f"{name}_concat",
                "concatenate",
                None,
                t,
                out,
                layout=t.layout,
                added="branch concatenation",
            )
        )
        step.out = out
        return add_totals(step)

    # --- the classifier head -------------------------------------------------------------

    def head(self, layers: list[Any], steps: list[Step]) -> None:
        last, path = layers[-1], f"model.layers[{len(layers) - 1}]"
        own = isinstance(last, DenseSpec) and (
            last.units == "classes" or (last.units == self.classes and last.activation == "softmax")
        )
        if own and last.activation != "softmax":
            self.problems.append(
                f"{path}.activation: expected softmax for the classifier head (units: classes), "
                f"received {last.activation or 'linear'!r}"
            )
        t = steps[-1].out
        if len(t.shape) != 1:
            what = "its own classifier head" if own else "the classifier head added after it"
            self.problems.append(
                f"{path}: expected a 2-D output (batch, features) for {what}, received "
                f"{describe_input(t)}; a dense layer on a 4-D tensor acts per pixel, so add "
                f"flatten or global_avg_pool before the head"
            )
            return
        if not own:
            head = self._synthetic(
                DenseSpec,
                "the head",
                {"name": "classifier", "units": self.classes, "activation": "softmax"},
            )
            steps.append(self.leaf(head, t, "model.layers", "classifier", "classifier head"))


def _check_names(plan: Plan) -> list[str]:
    seen: dict[str, Step] = {}
    problems = []
    for step in plan.leaves():
        first = seen.setdefault(step.name, step)
        if first is not step:
            user, other = (first, step) if step.added else (step, first)
            what = other.path
            if other.added:
                where = "" if other.path == "model.layers" else f" for {other.path}"
                what = f"the {other.added} layer convtrain adds{where}"
            problems.append(
                f"{user.path}.name: expected a name not used by another layer, received "
                f"{step.name!r}, the name of {what}"
            )
    if "image" in seen:  # the Input layer's name
        problems.append(f"{seen['image'].path}.name: 'image' is reserved for the model input")
    return problems


def plan_model(experiment: Experiment, num_classes: int) -> Plan:
    """The plan of `experiment`'s model with a `num_classes`-way head; see Plan.problems."""
    assert experiment.model.input is not None
    h, w = experiment.model.input.image_size
    t = Tensor((h, w, experiment.model.input.channels))
    planner = _Planner(experiment, num_classes)
    steps: list[Step] = []
    if not planner.problems:
        try:
            steps = planner.plan(experiment.model.layers, t)
            planner.head(experiment.model.layers, steps)
        except _Stop:
            pass
    plan = Plan(t, steps, num_classes, planner.problems)
    if not plan.problems:
        plan.problems.extend(_check_names(plan))
    return plan


def check_stack(experiment: Experiment) -> list[str]:
    """Shape problems of the model, one line each (`model.layers[3].kernel_size: ...`)."""
    return plan_model(experiment, resolve_classes(experiment)[0]).problems
