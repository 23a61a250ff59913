"""The reference: the experiment's model trained by a minimal hand-written Keras loop.

The training images are held in memory as one float32 tensor (no tf.data, no metrics, no
callbacks). Without augmentation its throughput is what the model alone costs on this machine;
with `augment=True` each step first applies the config's augmentation to its batch (convtrain's
own `augment_batch`, the same work as convtrain's pipeline, done in line as a hand-written loop
would). convtrain's trainer is compared against both: the ratios show what the input pipeline
and the trainer's bookkeeping cost (or save).
"""

from __future__ import annotations

import time

import numpy as np

from convtrain.config.schema import Experiment


def steady_rate(images: int, epoch_seconds: list[float]) -> float:
    """Images/s of the median steady epoch (the first one traces and compiles: dropped)."""
    steady = epoch_seconds[1:] or epoch_seconds
    return images / float(np.median(steady))


def in_memory_training_set(experiment: Experiment) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint8 images [N, H, W, C], int labels [N], classes) of the experiment's training split."""
    from convtrain.data.pipeline import _cache_for
    from convtrain.data.split import make_split

    split = make_split(experiment)
    everything = (*split.train, *split.val, *split.test)
    cache = _cache_for(experiment.data, everything)
    rows = np.array([cache.rows[path] for path, _ in split.train], dtype=np.int64)
    labels = np.array([label for _, label in split.train], dtype=np.int32)
    return np.asarray(cache.images[rows]), labels, len(split.classes)


class HandLoop:
    """The experiment's model, optimizer and loss in a GradientTape loop over in-memory tensors.

    Build it inside convtrain.train.session.keras_session (seed, dtype policy, strategy).
    """

    def __init__(self, experiment: Experiment, augment: bool = False) -> None:
        """augment: apply the config's augmentation to each batch (if the config has any)."""
        import keras
        import tensorflow as tf

        from convtrain.data.augment import augment_batch
        from convtrain.model.build import build_model
        from convtrain.train.optim import make_optimizer

        images, labels, num_classes = in_memory_training_set(experiment)
        self.images = len(labels)
        self._x = tf.constant(images.astype(np.float32) / 255.0)
        self._y = tf.one_hot(labels, num_classes, dtype=tf.float32)
        self._batch = experiment.train.batch_size
        self._rng = np.random.default_rng(experiment.seed)
        model = build_model(experiment, num_classes)
        optimizer = make_optimizer(experiment.train.optimizer)
        if experiment.train.mixed_precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss_fn = keras.losses.CategoricalCrossentropy(
            label_smoothing=experiment.train.label_smoothing
        )

        cfg = experiment.augment
        augmenting = augment and cfg.enabled
        self._draws = 0

        @tf.function  # not under XLA: ImageProjectiveTransformV3 has no XLA kernel on CPU
        def batch(x_all: tf.Tensor, y_all: tf.Tensor, index: tf.Tensor, seed: tf.Tensor):
            xb, yb = tf.gather(x_all, index), tf.gather(y_all, index)
            return (augment_batch(xb, seed, cfg) if augmenting else xb), yb

        @tf.function(jit_compile=experiment.train.jit_compile)
        def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        self._batch_fn = batch
        self._step = step

    def epoch(self) -> float:
        """Train one epoch in a new random order; its wall-clock seconds."""
        import tensorflow as tf

        order = self._rng.permutation(self.images)
        start = time.perf_counter()
        for i in range(0, self.images, self._batch):
            self._draws += 1
            seed = tf.constant([self._draws, 0], tf.int64)
            xb, yb = self._batch_fn(self._x, self._y, tf.constant(order[i : i + self._batch]), seed)
            loss = self._step(xb, yb)
        float(loss)  # wait for the last step
        return time.perf_counter() - start


PLAIN_KERAS = {"mixed_precision": "float32", "jit_compile": False, "fused_batch_norm": False}


def is_plain(experiment: Experiment) -> bool:
    """Whether the experiment's performance options are all plain Keras's."""
    return all(getattr(experiment.train, k) == v for k, v in PLAIN_KERAS.items())


def reference_loop(experiment: Experiment) -> HandLoop:
    """The plain Keras hand loop: float32, no XLA, Keras's own batch norm, whatever the
    experiment's performance options: what the model costs written by hand with stock Keras.

    Every training variant's process runs it too (a plain variant's own hand loop is this one):
    the same work each time, so variants measured minutes apart, under a different machine load,
    compare through their ratio to it.
    """
    import keras

    train = experiment.train.model_copy(update=PLAIN_KERAS)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return HandLoop(experiment.model_copy(update={"train": train}))
    finally:
        keras.mixed_precision.set_global_policy(previous)
