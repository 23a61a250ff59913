"""train.fused_batch_norm: Keras's batch norm, on TensorFlow's fused kernel when training."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from convtrain.config.schema import Experiment
from convtrain.model.build import build_model
from convtrain.model.fused_bn import fuse_batch_norm
from convtrain.train.checkpoints import load_checkpoint


@pytest.fixture
def policy():
    """Restores the global dtype policy a test sets."""
    previous = keras.mixed_precision.global_policy()
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy(previous)


def small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 5))
    x = keras.layers.Conv2D(6, 3)(inputs)
    x = keras.layers.BatchNormalization(
        momentum=0.9, gamma_initializer="random_uniform", beta_initializer="random_uniform"
    )(x)
    x = keras.layers.BatchNormalization(center=False, scale=False)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.BatchNormalization()(x)  # 2-D: stays on Keras's path
    return keras.Model(inputs, keras.layers.Dense(3, dtype="float32")(x))


def train_steps(model: keras.Model, steps: int = 3) -> tuple[list, list, np.ndarray]:
    """Gradients of the first step, every weight after `steps` SGD steps, inference output."""
    x = tf.random.stateless_normal((4, 9, 9, 5), seed=[1, 2], mean=2.0, stddev=3.0)
    optimizer = keras.optimizers.SGD(0.05)
    first = None
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - 1.0) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        first = first or [g.numpy() for g in grads]
        optimizer.apply(grads, model.trainable_variables)
    return first, [w.numpy() for w in model.weights], model(x, training=False).numpy()


def op_types(model: keras.Model, training: bool) -> set[str]:
    fn = tf.function(lambda x: model(x, training=training))
    graph = fn.get_concrete_function(tf.TensorSpec((None, *model.input_shape[1:]))).graph
    return {op.type for op in graph.get_operations()}


# bfloat16 keeps 8 bits of mantissa: its results agree to an ulp or two (about 1%).
@pytest.mark.parametrize(("dtype", "rtol"), [("float32", 1e-4), ("bfloat16", 1e-2)])
def test_the_fused_layers_train_as_keras_does(policy, dtype, rtol) -> None:
    policy(dtype)
    keras_model, fused = small_model(), small_model()
    assert fuse_batch_norm(fused) == 3
    (g1, w1, y1), (g2, w2, y2) = train_steps(keras_model), train_steps(fused)
    # The gradients, through the kernel's own gradient. The conv bias's is zero in theory (batch
    # norm subtracts it again): rounding noise, so the tolerance is scaled to the largest gradient.
    scale = max(np.abs(g).max() for g in g1)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=10 * rtol, atol=10 * rtol * scale)
    for a, b in zip(w1, w2, strict=True):  # weights, and the moving mean and (biased) variance
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol / 10)
    np.testing.assert_allclose(y1, y2, rtol=rtol, atol=rtol)


def test_only_4d_training_calls_take_the_fused_kernel() -> None:
    model = small_model()
    fuse_batch_norm(model)
    training = op_types(model, training=True)
    assert "FusedBatchNormV3" in training
    assert "Mean" in training  # the 2-D batch norm after Flatten keeps Keras's moments
    assert "FusedBatchNormV3" not in op_types(model, training=False)
    assert "FusedBatchNormV3" not in op_types(small_model(), training=True)


def experiment(fused: bool) -> Experiment:
    return Experiment.model_validate(
        {
            "name": "bn",
            "data": {"image_size": 16, "split": {"method": "stratified", "val": 0.2, "test": 0.2}},
            "model": {
                "layers": [
                    {"type": "conv2d", "filters": 4, "kernel_size": 3},
                    {"type": "batch_norm"},
                    {"type": "global_avg_pool"},
                ]
            },
            "train": {"fused_batch_norm": fused},
        }
    )


def test_build_model_follows_the_option_and_saves_plain_keras(tmp_path) -> None:
    assert "FusedBatchNormV3" in op_types(build_model(experiment(True), 3), training=True)
    model = build_model(experiment(False), 3)
    assert "FusedBatchNormV3" not in op_types(model, training=True)

    fused = build_model(experiment(True), 3)
    fused.save(tmp_path / "m.keras")
    loaded = load_checkpoint(tmp_path / "m.keras", compile=False)
    bn = loaded.get_layer("batch_norm_1")
    assert type(bn) is keras.layers.BatchNormalization and "call" not in vars(bn)
    assert "FusedBatchNormV3" not in op_types(loaded, training=True)
