"""Differential test against Keras: random conv/pool stacks, some impossible.

For each stack convtrain's verdict (a valid config, or one clean line per problem naming its
YAML path) must be Keras's (the model builds and runs a forward pass), and on valid stacks
every layer's output shape and parameter count, and the total, must be Keras's. The Keras side
is built straight from the YAML keys (they are Keras's own argument names), not through
convtrain's builder. channels_last only: TensorFlow's CPU kernels cannot run channels_first
convolutions, which convtrain's builder refuses on a machine without a GPU (test_build.py).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from convtrain.commands.common import planned
from convtrain.config.load import validate
from convtrain.errors import ConfigError

keras = pytest.importorskip("keras")

SEED = 14
CASES = 300
CLASSES = 3
KERAS_CLASS = {
    "conv2d": "Conv2D",
    "separable_conv2d": "SeparableConv2D",
    "depthwise_conv2d": "DepthwiseConv2D",
    "max_pool": "MaxPooling2D",
    "avg_pool": "AveragePooling2D",
}


def _pair(rng: random.Random, low: int, high: int, bad: float = 0.02) -> int | list[int]:
    """n or [rows, columns]; now and then an impossible 0 or -1."""
    if rng.random() < bad:
        return rng.choice([0, -1])
    if rng.random() < 0.6:
        return rng.randint(low, high)
    return [rng.randint(low, high), rng.randint(low, high)]


def _dilation(rng: random.Random) -> int | list[int]:
    return 1 if rng.random() < 0.5 else _pair(rng, 1, 3)


def _layer(rng: random.Random) -> dict[str, Any]:
    ltype = rng.choice(list(KERAS_CLASS))
    if ltype in ("max_pool", "avg_pool"):
        layer: dict[str, Any] = {"type": ltype, "pool_size": _pair(rng, 1, 4)}
        if rng.random() < 0.5:  # else strides default to pool_size, in both
            layer["strides"] = _pair(rng, 1, 3)
    else:
        layer = {
            "type": ltype,
            "kernel_size": _pair(rng, 1, 5),
            "strides": 1 if rng.random() < 0.4 else _pair(rng, 1, 3),
            "dilation_rate": _dilation(rng),
        }
        if ltype != "depthwise_conv2d":
            layer["filters"] = rng.randint(1, 8) if rng.random() > 0.02 else 0
        if ltype == "conv2d":  # groups must divide filters and channels: often they do
            layer["groups"] = rng.choice([1, 1, 2, 3, 4])
            if layer["filters"] and rng.random() < 0.7:
                layer["filters"] = layer["groups"] * rng.randint(1, 3)
        else:
            layer["depth_multiplier"] = rng.randint(1, 3) if rng.random() > 0.02 else 0
    layer["padding"] = rng.choice(["valid", "same"])
    return layer


def _case(rng: random.Random) -> tuple[list[dict[str, Any]], list[int], str]:
    size = [rng.randint(1, 20), rng.randint(1, 20)]
    return [_layer(rng) for _ in range(rng.randint(1, 4))], size, rng.choice(["rgb", "grayscale"])


CASE_LIST = [_case(random.Random(SEED * 1000 + i)) for i in range(CASES)]


def convtrain_verdict(layers: list[dict], size: list[int], color: str) -> Any:
    """The plan, or the problem lines (each one line naming a model.layers path)."""
    raw = {
        "data": {"classes": [f"c{i}" for i in range(CLASSES)], "image_size": size,
                 "color_mode": color},
        "model": {"layers": [*layers, {"type": "flatten"}]},
    }  # fmt: skip
    try:
        # What `convtrain train` does: the schema, then the stack planned with the classes.
        return planned(validate(raw, "fuzz"), CLASSES, "fuzz")
    except ConfigError as exc:
        for line in exc.lines():
            assert "\n" not in line and line.startswith("fuzz: model.layers["), line
        return exc.lines()


def keras_verdict(layers: list[dict], size: list[int], color: str) -> Any:
    """(per-layer output shapes, per-layer parameters, total), or why Keras failed."""
    channels = 3 if color == "rgb" else 1
    try:
        inputs = keras.Input((*size, channels))
        x, built = inputs, []
        for spec in layers:
            args = {k: v for k, v in spec.items() if k != "type"}
            layer = getattr(keras.layers, KERAS_CLASS[spec["type"]])(**args)
            x = layer(x)
            built.append(layer)
        x = keras.layers.Flatten()(x)
        model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(x))
    except Exception as exc:  # noqa: BLE001 - any refusal is a verdict
        return f"build: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    try:
        out = model(np.random.default_rng(0).random((1, *size, channels), dtype=np.float32))
        assert tuple(out.shape) == (1, CLASSES)
    except Exception as exc:  # noqa: BLE001
        return f"run: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    shapes = [tuple(layer.output.shape[1:]) for layer in built]
    return shapes, [layer.count_params() for layer in built], model.count_params()


def test_convtrain_agrees_with_keras_on_random_stacks() -> None:
    disagreements, valid = [], 0
    for i, (layers, size, color) in enumerate(CASE_LIST):
        if i % 50 == 0:
            keras.backend.clear_session()  # keep Keras's graph and name counters small
        ours, theirs = convtrain_verdict(layers, size, color), keras_verdict(layers, size, color)
        case = f"case {i}: {size} {color} {layers}"
        if isinstance(ours, list) or isinstance(theirs, str):
            if isinstance(ours, list) != isinstance(theirs, str):
                disagreements.append(f"{case}\n  convtrain: {ours}\n  keras: {theirs}")
            continue
        valid += 1
        steps = ours.steps[: len(layers)]
        plan = (
            [s.out.shape for s in steps],
            [s.trainable + s.non_trainable for s in steps],
            sum(s.trainable + s.non_trainable for s in ours.leaves()),
        )
        if plan != theirs:
            disagreements.append(f"{case}\n  convtrain: {plan}\n  keras: {theirs}")
    assert disagreements == [], "\n".join(disagreements)
    # Both kinds of verdict are well represented (the generator is not degenerate).
    assert 0.3 * CASES < valid < 0.8 * CASES, valid
