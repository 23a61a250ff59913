"""The model plan: every Keras layer the builder will create, with its name, layout, output
shape, parameters, MACs, receptive field and jump, computed without TensorFlow.

`plan_model` is the single source of layer names, data formats and inserted layers (transposes,
residual projections, the classifier head): the builder follows the plan, `inspect` prints it,
and `check_stack` (called on every config load) reports the problems it finds. What each layer
kind does to a tensor is in its module under convtrain/layers/; this module walks the stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from pydantic import ValidationError

from convtrain.config.schema import Experiment
from convtrain.errors import ConvtrainError
from convtrain.layers import KIND_BY_TYPE
from convtrain.layers.base import LayerBase
from convtrain.layers.dense import DenseSpec
from convtrain.layers.registry import sublayers
from convtrain.layers.tensor import LAST, ShapeProblem, Step, Tensor, describe_input

# CALTECH-101's object categories (BACKGROUND_Google, excluded by default, is not one).
DEFAULT_CLASSES = 101


@dataclass
class Plan:
    input: Tensor
    steps: list[Step]
    num_classes: int
    problems: list[str]

    def rows(self, steps: list[Step] | None = None, depth: int = 0) -> Iterator[tuple[int, Step]]:
        """Every step in order, blocks followed by their (indented) layers."""
        for step in self.steps if steps is None else steps:
            yield depth, step
            if step.is_block:
                yield from self.rows(step.children(), depth + 1)

    def leaves(self) -> Iterator[Step]:
        """The steps that are Keras layers."""
        return (s for _, s in self.rows() if not s.is_block)


class _Stop(Exception):
    """A shape problem was recorded; later shapes would be meaningless."""


class _Planner:
    """Walks the layer stack; each kind's `cost` or `plan` (convtrain/layers) does one layer."""

    def __init__(self, experiment: Experiment, num_classes: int):
        assert experiment.model.input is not None  # filled in from data by the schema
        self.image = experiment.model.input.image_size
        self.defaults: dict[str, dict[str, Any]] = experiment.model.defaults
        self.classes = num_classes
        self.problems: list[str] = []
        self.names: dict[int, str] = {}
        self._name_layers(experiment.model.layers)

    def _name_layers(self, layers: list[LayerBase]) -> None:
        given: dict[str, str] = {}
        order: list[LayerBase] = []

        def collect(specs: list[Any], prefix: str) -> None:
            for i, spec in enumerate(specs):
                path = f"{prefix}[{i}]"
                order.append(spec)
                if spec.name is not None:
                    if spec.name in given:
                        self.problems.append(
                            f"{path}.name: expected a unique layer name, received {spec.name!r} "
                            f"(already used by {given[spec.name]})"
                        )
                    given.setdefault(spec.name, path)
                for suffix, inner in sublayers(KIND_BY_TYPE[spec.type], spec):
                    collect(inner, f"{path}{suffix}")

        collect(layers, "model.layers")
        counters: dict[str, int] = {}
        for spec in order:
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

    # --- what a kind's plan function may call (convtrain.layers.registry.PlanContext) -----

    def name(self, spec: LayerBase) -> str:
        return self.names[id(spec)]

    def fail(self, problem: str) -> NoReturn:
        self.problems.append(problem)
        raise _Stop

    def synthetic(self, cls: type[LayerBase], path: str, fixed: dict[str, Any]) -> Any:
        """A layer convtrain adds, taking model.defaults for its type where they apply."""
        ltype = cls.model_fields["type"].annotation.__args__[0]
        try:
            return cls.model_validate({**self.defaults.get(ltype, {}), **fixed, "type": ltype})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            self.fail(
                f"model.defaults.{ltype}.{key}: cannot apply to the {fixed.get('name')} layer "
                f"added for {path}: {first['msg']}"
            )

    def walk(self, layers: list[Any], t: Tensor, prefix: str) -> tuple[list[Step], Tensor]:
        steps: list[Step] = []
        for i, spec in enumerate(layers):
            path = f"{prefix}[{i}]"
            kind = KIND_BY_TYPE[spec.type]
            if kind.plan is not None:
                step = kind.plan(self, spec, t, path)
            else:
                layout = t.layout
                if kind.has_data_format and t.spatial and spec.data_format:
                    layout = spec.data_format
                if layout != t.layout:
                    steps.append(self.permute(t, layout, path, f"{self.name(spec)}_to_{layout}"))
                    t = steps[-1].out
                step = self.leaf(spec, t, path, self.name(spec))
            steps.append(step)
            t = step.out
        return steps, t

    def leaf(self, spec: LayerBase, t: Tensor, path: str, name: str, added: str = "") -> Step:
        try:
            cost = KIND_BY_TYPE[spec.type].cost(spec, t, self)
        except ShapeProblem as exc:
            self.fail(f"{path}{'.' + exc.field if exc.field else ''}: {exc.message}")
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

    def back_to(self, steps: list[Step], t: Tensor, layout: str, path: str, name: str) -> Tensor:
        if t.spatial and t.layout != layout:
            steps.append(self.permute(t, layout, path, name))
            return steps[-1].out
        return t

    # --- the classifier head ---------------------------------------------------------------

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
            head = self.synthetic(
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
            steps, _ = planner.walk(experiment.model.layers, t, "model.layers")
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


def resolve_classes(experiment: Experiment, override: int | None = None) -> tuple[int, str]:
    """The number of classes for the head, and where it comes from (for display)."""
    classes = experiment.data.classes
    if isinstance(classes, list):
        if override is not None and override != len(classes):
            raise ConvtrainError(
                f"--classes: expected {len(classes)} (the length of data.classes) or no value, "
                f"received {override}"
            )
        return len(classes), "from data.classes"
    if override is not None:
        if override < 2:
            raise ConvtrainError(f"--classes: expected an integer >= 2, received {override}")
        return override, "from --classes"
    return DEFAULT_CLASSES, (
        f"data.classes is 'all': assumed {DEFAULT_CLASSES} (CALTECH-101's categories); "
        f"pass --classes N to change"
    )
