"""Layer kinds, one module each (timm-style), and the tables derived from their registry.

Importing this package imports every kind module in it, so a new kind is one new file: its
`register(...)` call adds it to every listing (see docs/adding-a-layer.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from convtrain.layers.registry import LayerKind, ordered, union

# The modules of this package that are not layer kinds.
_SUPPORT = {"base", "docs", "keras_objects", "registry", "tensor", "window"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SUPPORT:
        importlib.import_module(f"{__name__}.{_module.name}")

KIND_BY_TYPE: dict[str, LayerKind] = {k.type: k for k in ordered()}
LAYER_TYPES: tuple[str, ...] = tuple(KIND_BY_TYPE)
SPEC_BY_TYPE = {t: k.spec for t, k in KIND_BY_TYPE.items()}
LayerSpec = union(list(KIND_BY_TYPE.values()))

# Blocks hold layers: their specs name `LayerSpec`, which exists only now.
for _kind in KIND_BY_TYPE.values():
    if _kind.nested:
        _kind.spec.model_rebuild(_types_namespace={"LayerSpec": LayerSpec})

__all__ = ["KIND_BY_TYPE", "LAYER_TYPES", "SPEC_BY_TYPE", "LayerKind", "LayerSpec"]
