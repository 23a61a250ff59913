"""Every registered layer kind: its examples validate, plan, build with Keras and run, and the
plan's per-layer output shapes and parameter counts are Keras's."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convtrain.config.load import validate
from convtrain.layers import KIND_BY_TYPE, LAYER_TYPES, docs
from convtrain.layers.registry import Example
from convtrain.layers.tensor import FIRST
from convtrain.model.build import build_model
from convtrain.model.plan import plan_model

keras = pytest.importorskip("keras")

# The registry, in listing order (error messages, docs). A new kind adds its name here.
EXPECTED = [
    "conv2d",
    "separable_conv2d",
    "depthwise_conv2d",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "global_max_pool",
    "zero_padding",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "dropout",
    "spatial_dropout",
    "flatten",
    "dense",
    "activation",
    "residual",
    "inception",
    "squeeze_excite",
]

EXAMPLES = [
    pytest.param(t, example, id=f"{t}-{i}")
    for t, kind in KIND_BY_TYPE.items()
    for i, example in enumerate(kind.examples)
]
CLASSES = 3


def test_registered_kinds() -> None:
    assert list(LAYER_TYPES) == EXPECTED


@pytest.mark.parametrize("ltype", LAYER_TYPES)
def test_kind_is_complete(ltype: str) -> None:
    kind = KIND_BY_TYPE[ltype]
    assert kind.examples, "give at least one example"
    assert (kind.spec.__doc__ or "").strip(), "the spec's docstring is its docs text"
    for name in re.findall(r"[A-Z]\w+", kind.keras):
        assert hasattr(keras.layers, name), name
    # model.defaults.<type> is validated with the stand-ins of the required keys.
    kind.spec.model_validate({**kind.stand_ins({}), "type": ltype})
    for field, info in kind.spec.model_fields.items():
        if field != "type":
            assert info.description, f"{ltype}.{field} needs a description (docs, schema)"


def test_docs_config_md_layer_tables_are_current() -> None:
    text = docs.CONFIG_MD.read_text(encoding="utf-8")
    assert docs.update(text) == text, "run: python -m convtrain.layers.docs --write"
    for ltype in LAYER_TYPES:
        assert f"\n### {ltype}\n" in text


def _config(example: Example) -> dict:
    layers = example.stack()
    if layers[-1].get("units") != "classes":  # not its own head: flatten for convtrain's
        layers.append({"type": "flatten"})
    return {
        "data": {
            "classes": [f"c{i}" for i in range(CLASSES)],
            "image_size": example.image_size,
            "color_mode": example.color_mode,
        },
        "model": {"layers": layers},
    }


def _kinds(steps) -> set[str]:
    return {s.kind for s in steps} | {k for s in steps for k in _kinds(s.children())}


@pytest.mark.parametrize("ltype,example", EXAMPLES)
def test_example_plan_equals_keras(ltype: str, example: Example) -> None:
    exp = validate(_config(example), f"{ltype} example")
    plan = plan_model(exp, CLASSES)
    assert plan.problems == []
    assert ltype in _kinds(plan.steps)
    model = build_model(exp, CLASSES, check_device=False)
    leaves = list(plan.leaves())
    assert sorted(layer.name for layer in model.layers) == sorted(
        ["image", *(s.name for s in leaves)]
    )
    for step in leaves:
        layer = model.get_layer(step.name)
        assert tuple(layer.output.shape[1:]) == step.out.shape, step.name
        trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        non_trainable = sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
        assert (trainable, non_trainable) == (step.trainable, step.non_trainable), step.name
    assert model.count_params() == sum(s.trainable + s.non_trainable for s in leaves)
    if any(s.layout == FIRST for s in leaves):
        return  # TensorFlow's CPU kernels cannot run NCHW convolutions (see build._check_device)
    x = np.zeros((2, *plan.input.shape), dtype="float32")
    assert model(x).shape == (2, CLASSES)
