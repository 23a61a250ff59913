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
        # One trace per batch size at most (the last batch of a split is smaller).
        self._graph = tf.function(self._pass, reduce_retracing=True, autograph=False)

    def _scores(self, h: tf.Tensor, out: tf.Tensor) -> tf.Tensor:
        if not _is_softmax(self.head):
            return tf.cast(out, tf.float32)
        z = tf.matmul(tf.cast(h, tf.float32), tf.cast(self.head.kernel, tf.float32))
        if self.head.bias is not None:
            z = z + tf.cast(self.head.bias, tf.float32)
        return z

    def _pass(self, x: tf.Tensor, wanted: dict[str, tf.Tensor]) -> tuple:
        """Forward and backward in one graph: the maps, probabilities, class of each map,
        the gradient of each class's score at the Grad-CAM layer, and of the unit at the image.

        A graph, not eager ops: eagerly, every convolution's gradient also computes the filter's
        gradient, which nothing here needs, and TensorFlow 2.21's oneDNN kernel for it crashed
        the process on a batch of one image (a segmentation fault, measured on a residual block).
        The graph prunes what no output uses.
        """
        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(x)
            *maps, h, out = self.net(x, training=False)
            by_name = dict(zip(self.names, maps, strict=True))
            z = self._scores(h, out)
            probs = tf.cast(out, tf.float32)
            classes = {"predicted": tf.argmax(probs, axis=1, output_type=tf.int32), **wanted}
            scores = {
                role: tf.reduce_sum(z * tf.one_hot(c, tf.shape(probs)[1]))
                for role, c in classes.items()
            }
            unit = None
            if self.rf is not None:
                rf_map = tf.cast(by_name[self.rf.output], tf.float32)
                r, c = self.unit
                at = rf_map[:, :, r, c] if self.rf.channels_axis == 1 else rf_map[:, r, c, :]
                unit = tf.reduce_sum(at)
        a = by_name[self.cam.output]
        grads = {role: tape.gradient(score, a) for role, score in scores.items()}
        erf = tape.gradient(unit, x) if unit is not None else tf.zeros_like(x)
        return by_name, probs, classes, grads, erf

    def __call__(self, batch: np.ndarray, wanted: Mapping[str, np.ndarray] | None = None) -> Probed:
        """`wanted`: role -> [N] class indices (-1: no map) besides the predicted class."""
        x = tf.convert_to_tensor(np.asarray(batch, dtype=np.float32))
        given = {
            k: tf.convert_to_tensor(np.asarray(v, dtype=np.int32))
            for k, v in (wanted or {}).items()
        }
        by_name, probs, classes, grads, erf = self._graph(x, given)
        activations = _channels_last(by_name[self.cam.output], self.cam)
        cams = {}
        for role, g in grads.items():
            weights = _channels_last(g, self.cam).mean(axis=(1, 2), keepdims=True)  # alpha_k
            cams[role] = np.maximum((weights * activations).sum(axis=-1), 0.0)
        features = {f.name: _channels_last(by_name[f.output], f) for f in self.features}
        return Probed(
            probs=probs.numpy(),
            cams=cams,
            classes={k: v.numpy() for k, v in classes.items()},
            erf=np.abs(erf.numpy().astype(np.float64)).sum(axis=-1) if self.rf else None,
            features=features,
        )
