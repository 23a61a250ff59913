"""The TensorFlow side of explain: one forward and one backward pass over a batch of images.

Grad-CAM takes the gradient of the class score *before* the softmax: a confident prediction
saturates the softmax, whose gradient then vanishes (an all-zero map on a model that is right).
convtrain's head is a softmax Dense, so its logits are recomputed from the Dense's input
(`h @ W + b`, in float32 as the head computes); a linear head's output already is the score.
Imported only once TensorFlow may start (the command has validated its arguments).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from convtrain.explain.geometry import Layer


@dataclass(frozen=True)
class Probed:
    probs: np.ndarray  # [N, classes], the model's own output
    cams: dict[str, np.ndarray]  # role -> [N, h, w]: ReLU(sum_k weight_k A_k), not rescaled
    classes: dict[str, np.ndarray]  # role -> [N] the class each map is for (-1: none)
    erf: np.ndarray | None  # [N, H, W]: |d unit / d image| summed over the image's channels
    features: dict[str, np.ndarray]  # layer name -> [N, h, w, channels] (channels last)


def _channels_last(t: tf.Tensor, layer: Layer) -> np.ndarray:
    x = tf.cast(t, tf.float32)
    if layer.channels_axis == 1:
        x = tf.transpose(x, (0, 2, 3, 1))
    return x.numpy()


def _is_softmax(layer: keras.layers.Layer) -> bool:
    return layer.get_config().get("activation") == "softmax"


class Probe:
    """The model rewired to return the maps explain needs, and the score before the softmax."""

    def __init__(
        self,
        model: keras.Model,
        cam: Layer,
        rf: Layer | None = None,
        features: tuple[Layer, ...] = (),
        unit: tuple[int, int] = (0, 0),
    ):
        self.cam, self.rf, self.features, self.unit = cam, rf, features, unit
        wanted = [cam, *([rf] if rf else []), *features]
        self.names = list(dict.fromkeys(layer.output for layer in wanted))
        self.head = model.layers[-1]
        outputs = [model.get_layer(name).output for name in self.names]
        self.net = keras.Model(model.inputs, [*outputs, self.head.input, model.outputs[0]])

    def _scores(self, h: tf.Tensor, out: tf.Tensor) -> tf.Tensor:
        if not _is_softmax(self.head):
            return tf.cast(out, tf.float32)
        z = tf.matmul(tf.cast(h, tf.float32), tf.cast(self.head.kernel, tf.float32))
        if self.head.bias is not None:
            z = z + tf.cast(self.head.bias, tf.float32)
        return z

    def __call__(self, batch: np.ndarray, wanted: Mapping[str, np.ndarray] | None = None) -> Probed:
        """`wanted`: role -> [N] class indices (-1: no map) besides the predicted class."""
        x = tf.convert_to_tensor(np.asarray(batch, dtype=np.float32))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            *maps, h, out = self.net(x, training=False)
            by_name = dict(zip(self.names, maps, strict=True))
            z = self._scores(h, out)
            probs = tf.cast(out, tf.float32).numpy()
            classes = {"predicted": np.argmax(probs, axis=1), **(wanted or {})}
            depth = probs.shape[1]
            scores = {
                role: tf.reduce_sum(z * tf.one_hot(np.asarray(c), depth))
                for role, c in classes.items()
            }
            if self.rf is not None:
                rf_map = tf.cast(by_name[self.rf.output], tf.float32)
                r, c = self.unit
                at = rf_map[:, :, r, c] if self.rf.channels_axis == 1 else rf_map[:, r, c, :]
                unit = tf.reduce_sum(at)
        a = by_name[self.cam.output]
        activations = _channels_last(a, self.cam)
        cams = {}
        for role, score in scores.items():
            g = _channels_last(tape.gradient(score, a), self.cam)
            weights = g.mean(axis=(1, 2), keepdims=True)  # Grad-CAM's alpha_k: pooled gradients
            cams[role] = np.maximum((weights * activations).sum(axis=-1), 0.0)
        erf = None
        if self.rf is not None:
            grad = tape.gradient(unit, x)
            erf = np.abs(grad.numpy().astype(np.float64)).sum(axis=-1)
        del tape
        features = {f.name: _channels_last(by_name[f.output], f) for f in self.features}
        return Probed(probs, cams, {k: np.asarray(v) for k, v in classes.items()}, erf, features)
