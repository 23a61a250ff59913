"""The model plan's data: every Keras layer the builder will create, as plain dataclasses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from convtrain.config.layers import LayerBase
from convtrain.config.schema import Experiment
from convtrain.errors import ConvtrainError
from convtrain.model.arithmetic import FIRST, LAST, Tensor

# CALTECH-101's object categories (BACKGROUND_Google, excluded by default, is not one).
DEFAULT_CLASSES = 101
PERMUTE_DIMS = {FIRST: (3, 1, 2), LAST: (2, 3, 1)}  # Keras Permute dims into that layout


@dataclass
class Step:
    """One Keras layer of the plan, or a block (residual, inception) holding its layers."""

    path: str  # YAML path of the config entry this layer comes from
    name: str
    kind: str  # a YAML layer type, or "permute", "add", "concatenate"
    spec: LayerBase | None
    inp: Tensor
    out: Tensor
    trainable: int = 0
    non_trainable: int = 0
    macs: int = 0
    layout: str = LAST  # the data_format the layer runs in
    body: list[Step] = field(default_factory=list)
    shortcut: list[Step] = field(default_factory=list)
    branches: list[list[Step]] = field(default_factory=list)
    merge: list[Step] = field(default_factory=list)
    added: str = ""  # why convtrain inserted this layer ("" for config layers)

    @property
    def is_block(self) -> bool:
        return self.kind in ("residual", "inception")

    def children(self) -> list[Step]:
        return [*self.body, *(s for b in self.branches for s in b), *self.shortcut, *self.merge]


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


def add_totals(step: Step) -> Step:
    for child in step.children():
        step.trainable += child.trainable
        step.non_trainable += child.non_trainable
        step.macs += child.macs
    return step


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
