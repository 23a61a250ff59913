"""The layer registry: what a layer kind module provides, and the table of registered kinds.

A kind module (convtrain/layers/<kind>.py) defines its pydantic spec and calls `register` with
its arithmetic (`cost` for a single Keras layer, `plan` for a block of several), its Keras
builder, its inspect warnings and its examples. Everything that lists layer types (the config's
discriminated union, `model.defaults`, the planner, the builder, lint, docs/config.md's tables,
the JSON Schema and tests/test_registry.py) reads this table; see docs/adding-a-layer.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn, Protocol, Union

import yaml
from pydantic import Field

from convtrain.layers.base import LayerBase
from convtrain.layers.tensor import Cost, Step, Tensor


class PlanContext(Protocol):
    """What the planner (convtrain.model.plan) offers a kind's `cost` and `plan` functions."""

    image: tuple[int, int]  # the input image size, for messages
    classes: int  # the number of classes (dense `units: classes`)

    def name(self, spec: LayerBase) -> str: ...  # the Keras name of a config layer

    def walk(self, layers: list[Any], t: Tensor, prefix: str) -> tuple[list[Step], Tensor]: ...

    def leaf(self, spec: LayerBase, t: Tensor, path: str, name: str, added: str = "") -> Step: ...

    def synthetic(self, cls: type[LayerBase], path: str, fixed: dict[str, Any]) -> Any: ...

    def back_to(self, steps: list[Step], t: Tensor, layout: str, path: str, name: str) -> Tensor:
        """Append a transpose back to `layout` if `t` is not in it (blocks keep their layout)."""
        ...

    def fail(self, problem: str) -> NoReturn: ...  # record one problem line, stop planning


class Builder(Protocol):
    """What convtrain.model.build offers a kind's `build` function (Keras, imported there)."""

    keras: Any  # the keras module
    layers: Any  # keras.layers

    def objects(self, spec: Any, *fields: str) -> dict[str, Any]: ...

    def weights(self, spec: Any, prefix: str) -> dict[str, Any]: ...  # <prefix>_initializer...

    def bias_and_activity(self, spec: Any) -> dict[str, Any]: ...

    def steps(self, steps: list[Step], x: Any) -> Any: ...  # build a list of planned steps


@dataclass(frozen=True)
class Example:
    """A small legal stack using the kind, as YAML (a list of layers, as in `model.layers`):
    tests/test_registry.py builds it with Keras and compares, the docs show it."""

    layers: str
    image_size: int | tuple[int, int] = 12
    color_mode: str = "rgb"

    def stack(self) -> list[dict[str, Any]]:
        return yaml.safe_load(self.layers)


@dataclass(frozen=True)
class LayerKind:
    spec: type[LayerBase]
    keras: str  # the Keras layer(s) it builds, for the docs
    build: Callable[[Step, Any, Builder], Any]
    cost: Callable[[Any, Tensor, PlanContext], Cost] | None = None  # one Keras layer
    plan: Callable[[PlanContext, Any, Tensor, str], Step] | None = None  # a block of layers
    lint: tuple[Callable[[Step], str | None], ...] = ()
    examples: tuple[Example, ...] = ()
    # The required keys' stand-ins, so that `model.defaults.<type>` can be validated alone.
    stand_in: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(
        default_factory=dict
    )
    nested: tuple[tuple[str, int], ...] = ()  # fields holding layers: (name, 1 list / 2 lists)
    transparent: bool = False  # keeps its input tensor: lint looks through it
    order: int = 1000  # position in listings (error messages, docs)

    @property
    def type(self) -> str:
        return self.spec.model_fields["type"].annotation.__args__[0]

    @property
    def has_data_format(self) -> bool:
        return "data_format" in self.spec.model_fields

    def stand_ins(self, values: dict[str, Any]) -> dict[str, Any]:
        return self.stand_in(values) if callable(self.stand_in) else dict(self.stand_in)


KINDS: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> LayerKind:
    if (kind.cost is None) == (kind.plan is None):
        raise TypeError(f"{kind.spec.__name__}: give exactly one of cost (a layer), plan (a block)")
    if kind.type in KINDS:
        raise TypeError(f"layer type {kind.type!r} registered twice")
    KINDS[kind.type] = kind
    return kind


def ordered() -> list[LayerKind]:
    return sorted(KINDS.values(), key=lambda k: (k.order, k.type))


def union(kinds: list[LayerKind]) -> Any:
    """The discriminated union of the kinds' specs: what a `model.layers` entry may be."""
    return Annotated[Union[tuple(k.spec for k in kinds)], Field(discriminator="type")]  # noqa: UP007


def sublayers(kind: LayerKind, layer: Any) -> Iterator[tuple[str, Any]]:
    """(path suffix, layer list) of a block, from its spec or from its raw YAML mapping."""
    get = layer.get if isinstance(layer, dict) else lambda key: getattr(layer, key, None)
    for name, depth in kind.nested:
        value = get(name)
        if depth == 1:
            yield f".{name}", value
        elif isinstance(value, list):
            yield from ((f".{name}[{j}]", inner) for j, inner in enumerate(value))
