"""The Keras builder: names, inserted layers, and agreement with the TF-free plan."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from convtrain.config.load import load_config, validate
from convtrain.errors import ConvtrainError
from convtrain.layers import KIND_BY_TYPE, LAYER_TYPES
from convtrain.model import build
from convtrain.model.build import build_model
from convtrain.model.inspect import totals
from convtrain.model.plan import plan_model, resolve_classes

keras = pytest.importorskip("keras")

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def experiment(layers: list, size: int = 16, channels: str = "rgb", classes: int = 3, **model):
    return validate(
        {
            "data": {
                "classes": [f"c{i}" for i in range(classes)],
                "image_size": size,
                "color_mode": channels,
            },
            "model": {"layers": layers, **model},
        },
        "test",
    )


def assert_plan_equals_keras(exp, num_classes: int, check_device: bool = True) -> None:
    plan = plan_model(exp, num_classes)
    model = build_model(exp, num_classes, check_device=check_device)
    leaves = list(plan.leaves())
    assert {layer.name for layer in model.layers} == {"image", *(s.name for s in leaves)}
    for step in leaves:
        layer = model.get_layer(step.name)
        assert tuple(layer.output.shape[1:]) == step.out.shape, step.name
        trainable = sum(int(w.numpy().size) for w in layer.trainable_weights)
        non_trainable = sum(int(w.numpy().size) for w in layer.non_trainable_weights)
        assert (trainable, non_trainable) == (step.trainable, step.non_trainable), step.name
    t = totals(plan)
    assert model.count_params() == t.params
    assert sum(int(w.numpy().size) for w in model.trainable_weights) == t.trainable


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_builds_and_inspect_equals_keras(path: Path) -> None:
    exp = load_config(path)
    n, _ = resolve_classes(exp)
    assert_plan_equals_keras(exp, n)


def test_shipped_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {
        "stridednet.yaml",
        "qa_32x3x3_28px.yaml",
        "qa_64x5x5_stride2.yaml",
        "qa_128x3x3_he_normal.yaml",
        "resnet_small_101.yaml",
        "inception_small_101.yaml",
    } <= names


def _one_of_each() -> list[dict]:
    """One layer of each of the first 15 YAML types, in an order that keeps shapes legal
    (tests/test_registry.py builds every registered kind's own examples)."""
    return [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "groups": 1},
        {"type": "separable_conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
        {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 2},
        {"type": "batch_norm"},
        {"type": "activation", "activation": "relu"},
        {"type": "spatial_dropout", "rate": 0.1},
        {"type": "max_pool", "pool_size": 2},
        {"type": "residual", "body": [{"type": "conv2d", "filters": 4, "kernel_size": 1}]},
        {
            "type": "inception",
            "branches": [
                [{"type": "conv2d", "filters": 4, "kernel_size": 1}],
                [{"type": "avg_pool", "pool_size": 3, "strides": 1, "padding": "same"}],
            ],
        },
        {"type": "global_max_pool"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 6},
    ]


def _types(layers: list[dict]) -> set[str]:
    out = set()
    for layer in layers:
        out.add(layer["type"])
        out |= _types(layer.get("body", []))
        for branch in layer.get("branches", []):
            out |= _types(branch)
    return out


def test_registry_builds_every_registered_type() -> None:
    layers = _one_of_each()
    first = {
        "conv2d", "separable_conv2d", "depthwise_conv2d", "max_pool", "avg_pool",
        "global_avg_pool", "global_max_pool", "batch_norm", "dropout", "spatial_dropout",
        "flatten", "dense", "activation", "residual", "inception",
    }  # fmt: skip
    assert first - {"global_avg_pool", "flatten"} == _types(layers)
    assert first <= set(LAYER_TYPES)
    assert all(callable(KIND_BY_TYPE[t].build) for t in LAYER_TYPES)
    exp = experiment(layers)
    assert_plan_equals_keras(exp, 3)
    other = experiment(
        [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "global_avg_pool"}]
    )
    assert_plan_equals_keras(other, 3)
    flat = experiment([{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "flatten"}])
    assert_plan_equals_keras(flat, 3)


def test_names_auto_and_given_and_classifier_head() -> None:
    exp = experiment(
        [
            {"type": "conv2d", "filters": 4, "kernel_size": 3},
            {"type": "conv2d", "name": "conv2d_2", "filters": 4, "kernel_size": 3},
            {"type": "conv2d", "filters": 4, "kernel_size": 3},
            {"type": "flatten"},
        ]
    )
    model = build_model(exp, 3)
    names = [layer.name for layer in model.layers]
    # auto names skip the one the config gave explicitly
    assert names == ["image", "conv2d_1", "conv2d_2", "conv2d_3", "flatten_1", "classifier"]
    head = model.get_layer("classifier")
    assert head.units == 3 and head.activation.__name__ == "softmax"


def test_own_head_is_kept() -> None:
    exp = experiment(
        [
            {"type": "conv2d", "filters": 4, "kernel_size": 3},
            {"type": "global_avg_pool"},
            {"type": "dense", "name": "out", "units": "classes", "activation": "softmax"},
        ]
    )
    model = build_model(exp, 3)
    assert model.layers[-1].name == "out" and model.layers[-1].units == 3
    assert "classifier" not in [layer.name for layer in model.layers]


def test_defaults_reach_layers_inside_residual_bodies() -> None:
    exp = experiment(
        [
            {
                "type": "residual",
                "name": "r",
                "body": [{"type": "conv2d", "filters": 6, "kernel_size": 3, "strides": 2}],
            },
            {"type": "global_avg_pool"},
        ],
        defaults={"conv2d": {"padding": "same", "kernel_initializer": "he_normal"}},
    )
    model = build_model(exp, 3)
    conv = model.get_layer("conv2d_1")
    assert conv.padding == "same" and type(conv.kernel_initializer).__name__ == "HeNormal"
    proj = model.get_layer("r_projection")
    assert proj.strides == (2, 2) and proj.kernel_size == (1, 1)
    assert type(proj.kernel_initializer).__name__ == "HeNormal"
    assert not proj.use_bias  # batch norm follows it
    assert model.get_layer("r_projection_bn")


def test_residual_without_shape_change_uses_identity_unless_always() -> None:
    body = [{"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"}]
    same = experiment([{"type": "residual", "name": "r", "body": body}, {"type": "flatten"}])
    names = [layer.name for layer in build_model(same, 3).layers]
    assert "r_projection" not in names and "r_add" in names
    always = experiment(
        [
            {"type": "residual", "name": "r", "body": body, "projection": "always"},
            {"type": "flatten"},
        ]
    )
    assert_plan_equals_keras(always, 3)
    assert "r_projection" in [layer.name for layer in build_model(always, 3).layers]


def test_initializer_regularizer_constraint_objects() -> None:
    exp = experiment(
        [
            {
                "type": "conv2d",
                "filters": 4,
                "kernel_size": 3,
                "kernel_initializer": {"type": "variance_scaling", "scale": 2.0, "mode": "fan_out"},
                "kernel_regularizer": {"l1_l2": {"l1": 0.01, "l2": 0.02}},
                "kernel_constraint": {"max_norm": 3},
                "bias_initializer": {"constant": 0.1},
            },
            {"type": "flatten"},
        ]
    )
    conv = build_model(exp, 3).get_layer("conv2d_1")
    assert conv.kernel_initializer.get_config()["mode"] == "fan_out"
    assert conv.kernel_regularizer.get_config() == pytest.approx({"l1": 0.01, "l2": 0.02})
    assert conv.kernel_constraint.get_config()["max_value"] == 3
    assert conv.bias_initializer.get_config()["value"] == pytest.approx(0.1)


CHANNELS_FIRST = [
    {
        "type": "conv2d",
        "name": "a",
        "filters": 4,
        "kernel_size": 3,
        "data_format": "channels_first",
    },
    {"type": "batch_norm", "name": "bn"},
    {"type": "max_pool", "name": "p", "data_format": "channels_last"},
    {"type": "flatten"},
]


def test_channels_first_inserts_transposes() -> None:
    exp = experiment(CHANNELS_FIRST)
    plan = plan_model(exp, 3)
    kinds = [(s.name, s.kind, s.out.shape) for s in plan.leaves()]
    assert kinds[:5] == [
        ("a_to_channels_first", "permute", (3, 16, 16)),
        ("a", "conv2d", (4, 14, 14)),
        ("bn", "batch_norm", (4, 14, 14)),
        ("p_to_channels_last", "permute", (14, 14, 4)),
        ("p", "max_pool", (7, 7, 4)),
    ]
    assert_plan_equals_keras(exp, 3, check_device=False)
    model = build_model(exp, 3, check_device=False)
    assert model.get_layer("bn").axis == 1  # batch norm follows the channels_first layout


def test_channels_first_without_gpu_is_a_user_error() -> None:
    exp = experiment(CHANNELS_FIRST)
    with mock.patch("tensorflow.config.list_physical_devices", return_value=[]):
        with pytest.raises(ConvtrainError) as err:
            build_model(exp, 3)
    assert str(err.value) == (
        "model.layers[0].data_format: expected channels_last on this machine (TensorFlow's "
        "CPU kernels cannot run channels_first convolutions or pooling and no GPU is visible), "
        "received channels_first"
    )


def test_build_module_does_not_import_tensorflow_at_import_time() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import convtrain.model.build, convtrain.model.inspect, convtrain.cli; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert build.INPUT_NAME == "image"


def test_small_model_trains_one_step() -> None:
    import numpy as np

    exp = experiment(
        [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "global_avg_pool"}]
    )
    model = build_model(exp, 3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x, verbose=0).sum(axis=1) == pytest.approx(np.ones(4), rel=1e-5)


@pytest.mark.parametrize(
    "spec_type,keras_class",
    [
        ("conv2d", "Conv2D"),
        ("separable_conv2d", "SeparableConv2D"),
        ("depthwise_conv2d", "DepthwiseConv2D"),
    ],
)
def test_conv_specs_take_every_keras_argument(spec_type: str, keras_class: str) -> None:
    import inspect

    from convtrain.layers import SPEC_BY_TYPE

    params = set(inspect.signature(getattr(keras.layers, keras_class).__init__).parameters)
    fields = set(SPEC_BY_TYPE[spec_type].model_fields) - {"type"}
    assert fields == params - {"self", "kwargs"} | {"name"}


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_head_stays_float32_under_mixed_precision(policy: str) -> None:
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        exp = experiment(
            [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "global_avg_pool"}]
        )
        model = build_model(exp, 3)
        assert model.get_layer("conv2d_1").compute_dtype == policy.removeprefix("mixed_")
        assert model.get_layer("classifier").compute_dtype == "float32"
        assert keras.backend.standardize_dtype(model.output.dtype) == "float32"
        assert keras.mixed_precision.global_policy().name == policy  # restored
    finally:
        keras.mixed_precision.set_global_policy(before)
