"""Batch normalization's training step on TensorFlow's fused kernel (`train.fused_batch_norm`).

Keras 3 normalises a training batch with separate ops (moments, subtract, scale, shift, each
with its own gradient); TensorFlow's FusedBatchNormV3 and its gradient do it in one pass each.
On this project's 2-core CPU that made a StridedNet training step about 15% faster
(docs/performance.md). The result is Keras's, up to float rounding: the same normalisation by
the biased batch variance, the same moving-average update, computed in float32 as Keras does.

The layers stay `keras.layers.BatchNormalization`: only the training-mode call of each instance
is swapped, so a saved model is plain Keras and loads anywhere without convtrain. Inference,
masks, renorm, synchronized BN and anything but a 4-D channels-last input keep Keras's path.
"""

from __future__ import annotations

import types
from typing import Any


def _fusable(layer: Any, inputs: Any, training: Any, mask: Any) -> bool:
    rank = len(inputs.shape)
    return (
        bool(training)
        and layer.trainable
        and mask is None
        and not layer.renorm
        and not layer.synchronized
        and rank == 4
        and layer.axis % rank == 3
    )


def _call(layer: Any, inputs: Any, training: Any = None, mask: Any = None) -> Any:
    import tensorflow as tf

    if not _fusable(layer, inputs, training, mask):
        return type(layer).call(layer, inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)  # as Keras: float16/bfloat16 inputs normalise in float32
    channels = x.shape[-1]
    gamma = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels])
    beta = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels])
    empty = tf.constant([], tf.float32)
    y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=empty,
        variance=empty,
        epsilon=layer.epsilon,
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=True,
    )
    # The kernel normalises by the biased variance but returns the unbiased one (n - 1);
    # Keras's moving variance averages the biased one.
    n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    variance = variance * tf.maximum(n - 1.0, 0.0) / n
    m = layer.momentum
    for stat, batch in ((layer.moving_mean, mean), (layer.moving_variance, variance)):
        # Read in float32: under mixed precision a variable read autocasts to bfloat16/float16.
        stat.assign(tf.cast(stat, tf.float32) * m + tf.stop_gradient(batch) * (1.0 - m))
    return tf.cast(y, layer.compute_dtype)


def fuse_batch_norm(model: Any) -> int:
    """Route every BatchNormalization layer of `model` through the fused kernel when training
    (convtrain's models are flat: blocks are built into the one functional graph); returns how
    many layers were routed."""
    import keras

    count = 0
    for layer in model.layers:
        if type(layer) is keras.layers.BatchNormalization:
            layer.call = types.MethodType(_call, layer)
            count += 1
    return count
