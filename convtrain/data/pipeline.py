"""tf.data pipelines reading the decoded-image cache.

Batches of row indices are gathered from the cache's memory map (memory stays bounded at any
image size), scaled to [0, 1], augmented (training only) and prefetched. Shuffling and
augmentation are seeded by the experiment seed: the same seed gives the same batches, and
each epoch gets a new order and new augmentations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from convtrain.config.schema import DataConfig, Experiment
from convtrain.data.augment import augment_batch
from convtrain.data.cache import ImageCache, open_cache, open_cache_for
from convtrain.data.index import index_dataset, resolve_root
from convtrain.data.split import Split
from convtrain.errors import ConvtrainError
from convtrain.progress import QUIET, Reporter

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Datasets:
    split: Split
    train: tf.data.Dataset  # (float32 [B, H, W, C] in [0, 1], one-hot float32 [B, classes])
    val: tf.data.Dataset | None  # None when the split has no validation images
    test: tf.data.Dataset
    steps_per_epoch: int


def _cache_for(
    data: DataConfig, items: Sequence[tuple[str, int]], reporter: Reporter = QUIET
) -> ImageCache:
    """The cache holding `items`; built (decoding only what changed) when it does not."""
    root = resolve_root(data)
    cache = open_cache_for(root, items, data)
    if cache is None:
        index = index_dataset(data)
        folders = sorted({path.split("/", 1)[0] for path, _ in items})
        if not set(folders) <= set(index.classes):
            # A split loaded from a file may use classes that data.classes does not select.
            index = index_dataset(data.model_copy(update={"classes": folders, "exclude": []}))
        cache = open_cache(index, data, reporter)
    failed = dict(cache.failed)
    missing = [path for path, _ in items if path not in cache.rows]
    if missing:
        first = missing[0]
        reason = failed.get(first, "not in the dataset folder")
        raise ConvtrainError(
            f"{root}: expected every image of the split to be readable, received {len(missing)} "
            f"that are not (first: {first}: {reason})"
        )
    return cache


def _rows_labels(
    cache: ImageCache, items: Sequence[tuple[str, int]]
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array([cache.rows[path] for path, _ in items], dtype=np.int64)
    labels = np.array([label for _, label in items], dtype=np.int32)
    return rows, labels


# A cache at most this large is copied into memory once and gathered by TensorFlow itself:
# no Python call per batch (numpy_function holds the GIL, which a 2-core machine feels).
# Larger caches (all of CALTECH-101 at 224x224 is 1.4 GB) stay memory-mapped from disk.
IN_MEMORY_BYTES = 1 << 30


def _loader(cache: ImageCache):
    images = cache.images
    shape = images.shape[1:]
    if images.nbytes <= IN_MEMORY_BYTES:
        resident = tf.convert_to_tensor(np.asarray(images))

        def load_resident(rows: tf.Tensor) -> tf.Tensor:
            return tf.cast(tf.gather(resident, rows), tf.float32) / 255.0

        return load_resident

    def gather(rows: np.ndarray) -> np.ndarray:
        # Reading rows in file order is kinder to the page cache than shuffled order.
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *shape), dtype=np.uint8)
        out[order] = images[rows[order]]
        return out

    def load(rows: tf.Tensor) -> tf.Tensor:
        batch = tf.numpy_function(gather, [rows], tf.uint8, stateful=False)
        batch.set_shape([None, *shape])
        return tf.cast(batch, tf.float32) / 255.0

    return load


def _batches(
    cache: ImageCache, items: Sequence[tuple[str, int]], num_classes: int, batch_size: int
) -> tf.data.Dataset:
    rows, labels = _rows_labels(cache, items)
    load = _loader(cache)
    ds = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(batch_size)
    ds = ds.map(
        lambda r, y: (load(r), tf.one_hot(y, num_classes, dtype=tf.float32)),
        num_parallel_calls=AUTOTUNE,
    )
    return ds.prefetch(AUTOTUNE)


def make_eval_dataset(
    experiment: Experiment,
    items: Sequence[tuple[str, int]],
    num_classes: int,
    reporter: Reporter = QUIET,
) -> tf.data.Dataset:
    """Unshuffled, unaugmented batches of `items`, with the training element spec."""
    if not items:
        raise ConvtrainError("expected at least one image to evaluate, received none")
    cache = _cache_for(experiment.data, items, reporter)
    return _batches(cache, items, num_classes, experiment.train.batch_size)


def data_threads(configured: int | None) -> int:
    """train.data_threads, or 1 when the CPU trains: on a 2-core machine, augmentation running in
    parallel with the training step slowed training more than augmenting on one thread
    (docs/performance.md). With a GPU the CPU is free: tf.data chooses."""
    if configured is not None:
        return configured
    return AUTOTUNE if tf.config.list_physical_devices("GPU") else 1


def make_datasets(experiment: Experiment, split: Split, reporter: Reporter = QUIET) -> Datasets:
    everything = (*split.train, *split.val, *split.test)
    cache = _cache_for(experiment.data, everything, reporter)
    num_classes, batch_size, seed = len(split.classes), experiment.train.batch_size, experiment.seed
    rows, labels = _rows_labels(cache, split.train)
    load = _loader(cache)
    train = (
        tf.data.Dataset.from_tensor_slices((rows, labels))
        .shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    # One random int64 per batch seeds that batch's augmentation; new values every epoch.
    batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    augment = experiment.augment

    def prepare(batch: tuple[tf.Tensor, tf.Tensor], draw: tf.Tensor):
        images = load(batch[0])
        if augment.enabled:
            images = augment_batch(images, tf.stack([draw, tf.constant(seed, tf.int64)]), augment)
        return images, tf.one_hot(batch[1], num_classes, dtype=tf.float32)

    threads = data_threads(experiment.train.data_threads)
    train = tf.data.Dataset.zip((train, batch_seeds)).map(prepare, num_parallel_calls=threads)
    if threads != AUTOTUNE:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        train = train.with_options(options)
    return Datasets(
        split=split,
        train=train.prefetch(AUTOTUNE),
        val=_batches(cache, split.val, num_classes, batch_size) if split.val else None,
        test=_batches(cache, split.test, num_classes, batch_size),
        steps_per_epoch=math.ceil(len(split.train) / batch_size),
    )
