"""Receptive fields with a known answer: explain's theoretical field is inspect's, a single
convolution's effective field is exactly its kernel's footprint, and for any stack the gradient
of a unit is zero outside its theoretical field. Untrained models (random weights) suffice:
these are properties of the layer stack, not of training.

Also the helpers other explain tests use: a run directory built by hand around a model of any
layer stack (no training), and `field_of`, the effective field of one unit from explain's probe.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, make_dataset

from convtrain.config.load import dump_config, load_config, validate
from convtrain.data.split import Split
from convtrain.errors import ConvtrainError
from convtrain.explain import geometry, raster
from convtrain.model.plan import plan_model
from convtrain.rundir import RunDir

CLASSES = ("alpha", "beta", "gamma")


def build_run(base: Path, layers: list, size: int = 32, color_mode: str = "rgb", **train) -> RunDir:
    """A run directory around an untrained model of `layers`: config, split, checkpoints.

    Built with check_device=False: TensorFlow's CPU kernels run these channels_first layers
    eagerly (what explain does), though the trainer refuses to train them without a GPU.
    """
    import keras

    from convtrain.model.build import build_model

    root = make_dataset(base / "ds", {c: 4 for c in CLASSES}, size_range=(size, size + 8))
    raw = {
        "name": "hand",
        "seed": 3,
        "data": {"root": str(root), "image_size": size, "color_mode": color_mode,
                 "cache_dir": str(base / "cache")},
        "model": {"layers": copy.deepcopy(layers)},
        "train": {"epochs": 1, **train},
        "eval": {"top_k": 2},
    }  # fmt: skip
    experiment = validate(raw)
    run = RunDir(base / "run")
    run.path.mkdir(parents=True)
    run.config.write_text(dump_config(experiment))
    items = [
        (f"{c}/image_{i:04d}.jpg", label) for label, c in enumerate(CLASSES) for i in (1, 2, 3, 4)
    ]
    Split(classes=CLASSES, train=tuple(items[::2]), val=(), test=tuple(items[1::2])).write(
        run.split
    )
    keras.utils.set_random_seed(0)
    model = build_model(experiment, len(CLASSES), check_device=False)
    run.checkpoints.mkdir()
    model.save(run.checkpoint("initial"))
    for w in model.weights:  # "training": a known change from the initial weights
        w.assign(w + 0.05 * np.random.default_rng(1).normal(size=w.shape).astype("float32"))
    model.save(run.checkpoint("best"))
    model.save(run.checkpoint("last"))
    return run


def field_of(run: RunDir, layer_name: str, images: int = 2):
    """(plan, layer, unit, erf [N, H, W], box) of the centre unit of `layer_name`: the gradient
    computed here with Keras and TensorFlow alone, the field from explain's geometry."""
    import keras
    import tensorflow as tf

    experiment = load_config(run.config)
    plan = plan_model(experiment, len(CLASSES))
    layer = geometry.choose_layer(plan, layer_name)
    unit = geometry.centre_unit(plan, layer.name)
    model = keras.models.load_model(run.checkpoint("best"), safe_mode=True, compile=False)
    upto = keras.Model(model.inputs, model.get_layer(layer.output).output)
    h, w = experiment.data.image_size
    rng = np.random.default_rng(2)
    x = tf.constant(rng.uniform(size=(images, h, w, experiment.data.channels)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = upto(x, training=False)
        r, c = unit
        at = out[:, :, r, c] if layer.channels_axis == 1 else out[:, r, c, :]
        total = tf.reduce_sum(at)
    erf = np.abs(tape.gradient(total, x).numpy()).sum(axis=-1)
    _, box = geometry.theoretical_box(plan, layer.name, unit)
    return plan, layer, unit, erf, box


def conv(filters: int = 4, k: int = 3, **kw) -> dict:
    return {"type": "conv2d", "filters": filters, "kernel_size": k, "activation": "tanh", **kw}


# --- the theoretical field is inspect's -------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    ["stridednet.yaml", "resnet_small_101.yaml", "inception_small_101.yaml", "sweeps/dilation.yaml",
     "sweeps/downsample.yaml", "sweeps/padding.yaml", "qa_64x5x5_stride2.yaml"],
)  # fmt: skip
def test_every_units_theoretical_field_has_inspects_size(config: str) -> None:
    plan = plan_model(load_config(REPO / "configs" / config), 10)
    spatial = [layer for layer in geometry.layers(plan) if layer.spatial]
    assert spatial
    for layer in spatial:
        (rlo, rhi), (clo, chi) = geometry.intervals(plan, layer.name)
        assert set((rhi - rlo + 1).tolist()) == {layer.step.out.rf[0]}, layer.name
        assert set((chi - clo + 1).tolist()) == {layer.step.out.rf[1]}, layer.name
        # Units are a jump apart: their fields slide over the image by inspect's jump.
        assert set(np.diff(rlo).tolist()) <= {layer.step.out.jump[0]}, layer.name


def test_a_3x3_layer_with_dilation_2_sees_5x5() -> None:
    """Dilation 2 doubles the reach of a 3x3 kernel: (3 - 1) x 2 + 1 = 5 pixels a side."""
    for dilation, side in ((1, 3), (2, 5), (3, 7)):
        raw = {"model": {"layers": [conv(dilation_rate=dilation), {"type": "global_avg_pool"}]},
               "data": {"image_size": 16}}  # fmt: skip
        plan = plan_model(validate(raw), 3)
        unit = geometry.centre_unit(plan, "conv2d_1")
        size, _ = geometry.theoretical_box(plan, "conv2d_1", unit)
        assert size == (side, side) == plan.steps[0].out.rf


# --- effective fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "dilation", "padding"), [(3, 1, "valid"), (5, 1, "same"), (3, 2, "same"), (3, 2, "valid")]
)
def test_one_convolutions_effective_field_is_its_kernel_footprint(
    tmp_path: Path, k: int, dilation: int, padding: str
) -> None:
    layers = [
        {"type": "conv2d", "filters": 4, "kernel_size": k, "dilation_rate": dilation,
         "padding": padding},  # linear: every tap of the kernel passes gradient
        {"type": "global_avg_pool"},
    ]  # fmt: skip
    run = build_run(tmp_path, layers, size=17)
    plan, layer, unit, erf, box = field_of(run, "conv2d_1")
    rows, cols = geometry.centres(plan, layer.name)
    centre = (int(rows[unit[0]]), int(cols[unit[1]]))
    taps = {(centre[0] + dilation * (i - k // 2), centre[1] + dilation * (j - k // 2))
            for i in range(k) for j in range(k)}  # fmt: skip
    for e in erf:
        assert {tuple(p) for p in np.argwhere(e > 0)} == taps
    span = (k - 1) * dilation + 1
    assert (box[2] - box[0] + 1, box[3] - box[1] + 1) == (span, span)


STACKS = {
    "strided valid conv, pool, conv": [
        conv(k=5, strides=2), {"type": "max_pool"}, conv(padding="same"),
        {"type": "global_avg_pool"}],
    "same padding, stride 2 on an even size": [
        conv(strides=2, padding="same"), conv(k=4, strides=2, padding="same"),
        {"type": "avg_pool", "pool_size": 3, "strides": 1, "padding": "same"},
        {"type": "global_avg_pool"}],
    "separable and depthwise, dilated": [
        {"type": "separable_conv2d", "filters": 6, "kernel_size": 3, "dilation_rate": 2,
         "activation": "tanh"},
        {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 2, "strides": 2,
         "padding": "same", "activation": "tanh"},
        {"type": "global_max_pool"}],
    "residual with a strided projection": [
        conv(padding="same"),
        {"type": "residual", "activation": "relu", "body": [
            conv(8, strides=2, padding="same"), {"type": "batch_norm"}, conv(8, padding="same")]},
        {"type": "residual", "body": [conv(8, padding="same")]},
        {"type": "global_avg_pool"}],
    "inception branches of different kernels": [
        conv(6, strides=2),
        {"type": "inception", "branches": [
            [conv(2, k=1)], [conv(2, k=1), conv(3, k=3, padding="same")],
            [conv(2, k=5, padding="same", dilation_rate=2)],
            [{"type": "max_pool", "pool_size": 3, "strides": 1, "padding": "same"}, conv(2, k=1)]]},
        {"type": "global_avg_pool"}],
    "channels_first convolutions and pools": [
        conv(padding="same", data_format="channels_first"),
        {"type": "max_pool", "data_format": "channels_first"},
        {"type": "batch_norm"},
        conv(6, k=3, data_format="channels_first", dilation_rate=2),
        {"type": "global_avg_pool", "data_format": "channels_first"}],
}  # fmt: skip


@pytest.mark.parametrize("stack", list(STACKS))
def test_effective_field_is_zero_outside_the_theoretical_one(tmp_path: Path, stack: str) -> None:
    run = build_run(tmp_path, STACKS[stack], size=30)
    plan = plan_model(load_config(run.config), len(CLASSES))
    checked = geometry.feature_layers(plan)
    assert checked, "the stack has convolutions"
    for layer in checked:
        _, _, _, erf, (top, left, bottom, right) = field_of(run, layer.name)
        inside = np.zeros(erf.shape[1:], dtype=bool)
        inside[top : bottom + 1, left : right + 1] = True
        assert (erf[:, ~inside] == 0).all(), layer.name
        assert (erf[:, inside].sum(axis=1) > 0).all(), layer.name


def test_a_layer_name_that_does_not_exist_lists_the_valid_ones() -> None:
    plan = plan_model(load_config(REPO / "configs" / "stridednet.yaml"), 4)
    with pytest.raises(ConvtrainError) as info:
        geometry.choose_layer(plan, "conv9")
    message = str(info.value)
    assert message.startswith("--layer: expected the name of a layer with a spatial output")
    assert "conv1, conv2a, activation_1" in message and "'conv9'" in message
    assert "\n" not in message


@pytest.mark.parametrize(("name", "kind"), [("fc1", "dense"), ("flatten_1", "flatten")])
def test_a_non_spatial_layer_is_refused_with_the_reason(name: str, kind: str) -> None:
    plan = plan_model(load_config(REPO / "configs" / "stridednet.yaml"), 4)
    with pytest.raises(ConvtrainError) as info:
        geometry.choose_layer(plan, name)
    message = str(info.value)
    assert f"received {name!r}, a {kind} layer whose output is (batch, " in message
    assert "Grad-CAM weighs the channels of a feature map" in message
    assert "the last spatial layer is 'dropout_3'" in message


def test_the_default_layer_is_the_last_spatial_one_and_a_block_is_its_merge() -> None:
    plan = plan_model(load_config(REPO / "configs" / "resnet_small_101.yaml"), 4)
    layer = geometry.choose_layer(plan, None)
    assert layer.step.kind == "residual"
    assert layer.output == layer.step.merge[-1].name  # the block's last Keras layer
    assert geometry.choose_layer(plan, layer.output).name == layer.output


def test_build_run_writes_a_loadable_config(tmp_path: Path) -> None:
    run = build_run(tmp_path, [conv(), {"type": "global_avg_pool"}], size=16)
    assert yaml.safe_load(run.config.read_text())["model"]["layers"][0]["type"] == "conv2d"
    assert {p.name for p in run.checkpoints.iterdir()} == {
        "best.keras",
        "initial.keras",
        "last.keras",
    }


@pytest.mark.parametrize(
    ("field", "window"),
    [
        ((31, 31, 33, 33), (24, 24, 16, 16)),  # a 3x3 field: the 16 pixels around it
        ((29, 29, 35, 35), (22, 22, 21, 21)),  # 7x7: three times its side
        ((0, 0, 2, 2), (0, 0, 16, 16)),  # at a corner: the window moves inside the image
        ((-3, 60, 1, 66), (0, 43, 21, 21)),  # past the border: the same
        ((13, 13, 50, 50), (0, 0, 64, 64)),  # large: the whole image, not zoomed
    ],
)
def test_a_small_field_is_shown_zoomed(field: tuple, window: tuple) -> None:
    assert raster.zoom_window(field, (64, 64, 3)) == window


def test_zoomed_panels_keep_the_field_where_it_is() -> None:
    # The effective field drawn on the zoomed panel covers exactly the theoretical box's pixels.
    pixels = np.zeros((64, 64, 3), np.uint8)
    erf = np.zeros((64, 64))
    erf[31:34, 31:34] = 1.0
    shown = raster.field_panels(
        pixels, erf, (31, 31, 33, 33), 160, (255, 221, 0), "magma", (0, 230, 255)
    )
    assert shown.zoomed and shown.window == (24, 24, 16, 16) and shown.scale == 10
    lit = np.argwhere(shown.effective.sum(axis=-1) > 300)  # bright: not the map's dark 0
    assert lit.min(axis=0).tolist() == [70, 70] and lit.max(axis=0).tolist() == [99, 99]
    assert shown.at(32, 32) == (85, 85)  # the unit's centre pixel, in the panel
