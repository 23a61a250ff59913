"""The planner's values: a tensor's shape and geometry, a layer's cost, one planned layer.

Shapes exclude the batch axis. A spatial tensor is (H, W, C) in channels_last layout and
(C, H, W) in channels_first; after flatten or a global pool it is (features,).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    """What one leaf layer does to its input: the output and what computing it costs."""

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


@dataclass
class Step:
    """One Keras layer of the plan, or a block (residual, inception...) holding its layers."""

    path: str  # YAML path of the config entry this layer comes from
    name: str
    kind: str  # a YAML layer type, or an inserted one: "permute", "add", "concatenate"...
    spec: Any  # the layer's spec (a LayerBase), None for inserted layers without one
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
        return bool(self.body or self.shortcut or self.branches or self.merge)

    def children(self) -> list[Step]:
        return [*self.body, *(s for b in self.branches for s in b), *self.shortcut, *self.merge]

    def add_totals(self) -> Step:
        """A block's cost: the sum of its layers'."""
        for child in self.children():
            self.trainable += child.trainable
            self.non_trainable += child.non_trainable
            self.macs += child.macs
        return self


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def describe_input(t: Tensor) -> str:
    return f"({', '.join(['batch', *map(str, t.shape)])})"
