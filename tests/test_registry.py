"""Every registered layer kind: its examples validate, plan, build with Keras and run, and the
plan's per-layer output shapes and parameter counts are Keras's."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convtrain.commands.common import planned
from convtrain.config.load import validate
from convtrain.errors import ConfigError
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


# --- refusals: one line naming the YAML path ---------------------------------------------------

REFUSED = [
    (
        "[{type: conv2d, filters: 6, kernel_size: 1}, {type: group_norm, groups: 4}]",
        "model.layers[1].groups: expected groups to divide the 6 input channels, received groups=4",
    ),
    (
        "[{type: group_norm}]",  # Keras's default, 32 groups, on 3 channels
        "model.layers[0].groups: expected groups to divide the 3 input channels, received groups=32",
    ),
    (
        "[{type: zero_padding, padding: [1, 2, 3]}]",
        "model.layers[0].padding: expected an integer >= 0, [rows, columns] or [[top, bottom], "
        "[left, right]], received [1, 2, 3]",
    ),
    (
        "[{type: zero_padding, padding: [[1, -1], [0, 0]]}]",
        "model.layers[0].padding: expected an integer >= 0, [rows, columns] or [[top, bottom], "
        "[left, right]], received [[1, -1], [0, 0]]",
    ),
    (
        "[{type: flatten}, {type: squeeze_excite}]",
        "model.layers[1]: squeeze_excite expected a 4-D input (batch, height, width, channels), "
        "received (batch, 432): it comes after a flatten, global pool or dense layer",
    ),
    (
        "[{type: squeeze_excite, ratio: 0}]",
        "model.layers[0].ratio: expected a number > 0.0, received 0",
    ),
    (
        "[{type: layer_norm, epsilon: 0}]",
        "model.layers[0].epsilon: expected a number > 0.0, received 0",
    ),
    (
        "[{type: conv2d, filters: 4, kernel_size: 3, strides: [1, 3], dilation_rate: [1, 2]}]",
        "model.layers[0].dilation_rate: expected dilation_rate 1 when strides > 1 (Keras cannot "
        "combine them), received dilation_rate=[1, 2] with strides=[1, 3]",
    ),
]


@pytest.mark.parametrize("layers,line", REFUSED, ids=[r[0] for r in REFUSED])
def test_refusal_is_one_line_naming_the_path(layers: str, line: str) -> None:
    with pytest.raises(ConfigError) as err:
        # What `convtrain inspect|train c.yaml` does: the schema, then the plan of the stack.
        planned(validate(_config(Example(layers)), "c.yaml"), CLASSES, "c.yaml")
    assert err.value.lines() == [f"c.yaml: {line}"]


@pytest.mark.parametrize("ltype", ["separable_conv2d", "depthwise_conv2d"])
def test_strides_with_dilation_accepted_where_keras_runs_them(ltype: str) -> None:
    # Keras's Conv2D refuses strides > 1 with dilation_rate > 1 (above); its SeparableConv2D and
    # DepthwiseConv2D build and run them on TensorFlow (issue 14), so convtrain accepts them.
    filters = ", filters: 4" if ltype == "separable_conv2d" else ""
    for strides, dilation in (([1, 3], [1, 2]), ([2, 2], [2, 2]), ([3, 1], [1, 2])):
        layers = f"[{{type: {ltype}{filters}, kernel_size: 3, strides: {strides}, dilation_rate: {dilation}}}]"
        test_example_plan_equals_keras(ltype, Example(layers, image_size=13))
