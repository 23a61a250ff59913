"""TF-free shape arithmetic: hand-computed shapes, parameters, MACs, receptive fields, warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from convtrain.config import load_config, validate
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.layers.window import window
from convtrain.model.lint import warnings
from convtrain.model.plan import check_stack, plan_model, resolve_classes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def exp(layers: list, size: int | list = 32, classes="abc", **model):
    data = {"image_size": size}
    data["classes"] = "all" if classes == "all" else list(classes)
    e = validate({"data": data, "model": {"layers": layers, **model}}, "test")
    problems = check_stack(e)  # validate() checks the schema; planning checks the layer stack
    if problems:
        raise ConfigError(problems, source="test")
    return e


def leaves(layers: list, size=32, **kw):
    e = exp(layers, size, **kw)
    return {s.name: s for s in plan_model(e, 3).leaves()}


@pytest.mark.parametrize(
    "size,kernel,stride,dilation,padding,expected",
    [
        (32, 3, 1, 1, "valid", 30),
        (32, 3, 1, 1, "same", 32),
        (96, 7, 2, 1, "valid", 45),
        (45, 3, 2, 1, "same", 23),
        (32, 3, 1, 2, "valid", 28),  # a dilated 3x3 covers 5x5
        (5, 7, 1, 1, "valid", -1),
    ],
)
def test_window(size, kernel, stride, dilation, padding, expected) -> None:
    assert window(size, kernel, stride, dilation, padding) == expected


def test_conv2d_shape_params_macs_rf() -> None:
    s = leaves(
        [{"type": "conv2d", "name": "c", "filters": 8, "kernel_size": 3}, {"type": "flatten"}]
    )
    c = s["c"]
    assert c.out.shape == (30, 30, 8)
    assert c.trainable == 3 * 3 * 3 * 8 + 8
    assert c.macs == 30 * 30 * 8 * (3 * 3 * 3)
    assert (c.out.rf, c.out.jump) == ((3, 3), (1, 1))


def test_rectangular_kernel_and_strides() -> None:
    s = leaves(
        [
            {"type": "conv2d", "name": "c", "filters": 2, "kernel_size": [5, 1], "strides": [2, 1]},
            {"type": "flatten"},
        ],
        size=[20, 10],
    )
    assert s["c"].out.shape == (8, 10, 2)
    assert s["c"].out.rf == (5, 1) and s["c"].out.jump == (2, 1)


def test_grouped_and_depthwise_arithmetic() -> None:
    e = validate(
        {
            "data": {"classes": ["a", "b"], "image_size": 8, "color_mode": "grayscale"},
            "model": {
                "layers": [
                    {"type": "conv2d", "name": "c", "filters": 4, "kernel_size": 1},
                    {"type": "conv2d", "name": "g", "filters": 8, "kernel_size": 3,
                     "padding": "same", "groups": 2, "use_bias": False},
                    {"type": "separable_conv2d", "name": "sep", "filters": 16, "kernel_size": 3,
                     "padding": "same", "depth_multiplier": 2},
                    {"type": "depthwise_conv2d", "name": "dw", "kernel_size": 3,
                     "depth_multiplier": 2},
                    {"type": "flatten"},
                ]
            },
        }
    )  # fmt: skip
    s = {x.name: x for x in plan_model(e, 2).leaves()}
    assert s["g"].trainable == 3 * 3 * (4 // 2) * 8
    assert s["g"].macs == 8 * 8 * 8 * (3 * 3 * 2)
    # separable: depthwise 3x3 on 8 channels x2, then 1x1 from 16 to 16, plus 16 biases
    assert s["sep"].trainable == 3 * 3 * 8 * 2 + 16 * 16 + 16
    assert s["sep"].macs == 8 * 8 * (3 * 3 * 16 + 16 * 16)
    assert s["dw"].out.shape == (6, 6, 32)
    assert s["dw"].trainable == 3 * 3 * 16 * 2 + 32
    assert s["dw"].macs == 6 * 6 * 3 * 3 * 32


def test_batch_norm_dense_and_pools() -> None:
    s = leaves(
        [
            {"type": "conv2d", "name": "c", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "batch_norm", "name": "bn"},
            {"type": "batch_norm", "name": "bn2", "center": False},
            {"type": "max_pool", "name": "mp", "pool_size": 3, "strides": 2},
            {"type": "avg_pool", "name": "ap"},
            {"type": "dense", "name": "pixel", "units": 5},
            {"type": "global_avg_pool", "name": "gap"},
            {"type": "dense", "name": "fc", "units": 7, "use_bias": False},
        ]
    )
    assert (s["bn"].trainable, s["bn"].non_trainable) == (8, 8)
    assert (s["bn2"].trainable, s["bn2"].non_trainable) == (4, 8)
    assert s["mp"].out.shape == (15, 15, 4)  # (32 - 3) // 2 + 1
    assert s["ap"].out.shape == (7, 7, 4)  # strides default to pool_size
    assert s["pixel"].out.shape == (7, 7, 5)  # dense acts on the last axis
    assert (s["pixel"].trainable, s["pixel"].macs) == (4 * 5 + 5, 49 * 4 * 5)
    assert s["gap"].out.shape == (5,)
    assert (s["fc"].trainable, s["fc"].macs) == (35, 35)
    assert s["classifier"].trainable == 7 * 3 + 3


def test_receptive_field_and_jump_through_a_stack() -> None:
    s = leaves(
        [
            {"type": "conv2d", "name": "a", "filters": 2, "kernel_size": 3},
            {"type": "conv2d", "name": "b", "filters": 2, "kernel_size": 3, "strides": 2},
            {"type": "conv2d", "name": "c", "filters": 2, "kernel_size": 3},
            {"type": "conv2d", "name": "d", "filters": 2, "kernel_size": 3, "dilation_rate": 2},
            {"type": "max_pool", "name": "p"},
            {"type": "flatten"},
        ],
        size=64,
    )
    assert [s[n].out.rf[0] for n in "abcdp"] == [3, 5, 9, 17, 19]
    assert [s[n].out.jump[0] for n in "abcdp"] == [1, 2, 2, 2, 4]


def test_residual_identity_and_projection() -> None:
    body = [{"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"}]
    plan = plan_model(
        exp([{"type": "residual", "name": "r", "body": body}, {"type": "flatten"}]), 3
    )
    assert [s.name for s in plan.leaves()][:2] == ["conv2d_1", "r_add"]
    down = [{"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": "same", "strides": 2}]
    plan = plan_model(
        exp(
            [
                {"type": "residual", "name": "r", "body": down, "activation": "relu"},
                {"type": "flatten"},
            ]
        ),
        3,
    )
    s = {x.name: x for x in plan.leaves()}
    assert s["r_projection"].out.shape == (16, 16, 6)
    assert s["r_projection"].spec.strides == (2, 2)
    assert s["r_projection"].trainable == 3 * 6  # no bias: batch norm follows
    assert (s["r_projection_bn"].trainable, s["r_projection_bn"].non_trainable) == (12, 12)
    assert s["r_activation"].out.shape == (16, 16, 6)
    block = plan.steps[0]
    assert block.trainable == sum(c.trainable for c in block.children())


def test_inception_concatenates_channels() -> None:
    plan = plan_model(
        exp(
            [
                {
                    "type": "inception",
                    "name": "inc",
                    "branches": [
                        [{"type": "conv2d", "filters": 4, "kernel_size": 1}],
                        [{"type": "conv2d", "filters": 6, "kernel_size": 5, "padding": "same"}],
                        [{"type": "max_pool", "pool_size": 3, "strides": 1, "padding": "same"}],
                    ],
                },
                {"type": "global_avg_pool"},
            ]
        ),
        3,
    )
    block = plan.steps[0]
    assert block.out.shape == (32, 32, 4 + 6 + 3)
    assert block.out.rf == (5, 5)
    assert block.merge[0].name == "inc_concat"


def test_channels_first_layout_shapes() -> None:
    s = leaves(
        [
            {"type": "conv2d", "name": "c", "filters": 4, "kernel_size": 3,
             "data_format": "channels_first"},
            {"type": "global_avg_pool", "name": "g", "data_format": "channels_first"},
        ]
    )  # fmt: skip
    assert s["c_to_channels_first"].out.shape == (3, 32, 32)
    assert s["c"].out.shape == (4, 30, 30)
    assert s["g"].out.shape == (4,)


def test_check_stack_problems_name_the_layer() -> None:
    e = exp(
        [{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"}, {"type": "flatten"}]
    )
    assert check_stack(e) == []
    bad = e.model_copy(deep=True)
    bad.model.layers[0].kernel_size = (3, 40)
    bad.model.layers[0].padding = "valid"
    assert check_stack(bad) == [
        "model.layers[0].kernel_size: expected a window no larger than its 32x32 input under "
        "'valid' padding, received 3x40 (use padding: same, a smaller window or fewer "
        "downsampling layers)"
    ]


def test_residual_inside_residual_error_path() -> None:
    with pytest.raises(ConvtrainError) as err:
        exp(
            [
                {
                    "type": "residual",
                    "body": [
                        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"},
                        {"type": "residual", "body": [{"type": "flatten"}]},
                    ],
                },
                {"type": "flatten"},
            ]
        )
    assert str(err.value) == (
        "test: model.layers[0].body[1].body: expected the body to keep the shape (batch, 32, 32, 2) "
        "(only 4-D tensors can be projected by a 1x1 convolution), received (batch, 2048)"
    )


def test_resolve_classes() -> None:
    assert resolve_classes(exp([{"type": "flatten"}])) == (3, "from data.classes")
    everything = exp([{"type": "flatten"}], classes="all")
    assert resolve_classes(everything, 7) == (7, "from --classes")
    n, note = resolve_classes(everything)
    assert n == 101 and "assumed 101" in note and "--classes" in note
    with pytest.raises(ConvtrainError):
        resolve_classes(everything, 1)


def _warnings(layers: list, size=32) -> list[str]:
    return warnings(plan_model(exp(layers, size), 3))


def test_warning_even_kernel() -> None:
    assert _warnings(
        [{"type": "conv2d", "name": "c", "filters": 2, "kernel_size": 4, "padding": "same"},
         {"type": "global_avg_pool"}]
    ) == [
        "model.layers[0] (c): even kernel size 4x4 has no centre pixel, so 'same' padding pads "
        "one side more and features shift by half a pixel; odd sizes avoid it"
    ]  # fmt: skip


def test_warning_valid_padding_counts_discarded_pixels() -> None:
    assert _warnings(
        [{"type": "conv2d", "name": "c", "filters": 2, "kernel_size": 7, "strides": 2},
         {"type": "global_avg_pool"}],
        size=96,
    ) == [
        "model.layers[0] (c): 'valid' padding maps 96x96 to 45x45 and discards the last 1 "
        "row(s) and 1 column(s), which no 7x7 window with strides 2x2 reaches; padding: same "
        "keeps them"
    ]  # fmt: skip
    # a 2x2 pool on an even map loses nothing: no warning
    assert _warnings([{"type": "max_pool"}, {"type": "global_avg_pool"}]) == []


def test_warning_large_map_and_dense_on_4d() -> None:
    lines = _warnings(
        [
            {"type": "dense", "name": "px", "units": 4},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.1},
            {"type": "dense", "name": "fc", "units": 8},
        ]
    )
    assert lines == [
        "model.layers[0] (px): dense on a 4-D tensor (32x32x3) acts on each pixel's last axis "
        "separately (like a 1x1 convolution); add flatten or global_avg_pool before it if you "
        "meant a fully connected layer",
        "model.layers[3] (fc): a 32x32x4 map reaches this dense layer (4,096 inputs, 32,776 "
        "parameters); downsample further or use global_avg_pool instead of flatten",
    ]


def test_check_stack_is_tensorflow_free() -> None:
    # Its speed is measured by `make bench` (the start-up of `convtrain inspect`), not here.
    assert check_stack(load_config(CONFIGS / "resnet_small_101.yaml")) == []
    code = (
        "import sys; from convtrain.config import load_config; "
        f"load_config({str(CONFIGS / 'inception_small_101.yaml')!r}); "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
