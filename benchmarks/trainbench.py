"""One training variant, measured in a process of its own (thread settings are per process).

Epochs of convtrain's trainer (its tf.data pipeline from the memory-mapped cache, its compiled
model, Keras fit) alternate with epochs of the hand-written loop on the same model fed from
in-memory tensors, so both see the same machine load; the ratio of their median steady epochs
is the pipeline's and trainer's overhead. With --same-work, when the config augments, a second
hand loop does the same augmentation in its step: the ratio to it compares the same work. The
convtrain model is then evaluated on the test split: evaluation throughput, and test accuracy
after this short training run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.handloop import HandLoop, is_plain, reference_loop, steady_rate

FRESH_ITERATORS = "--fresh-iterators"
SAME_WORK = "--same-work"


def _interleaved(hand: HandLoop, augmented: HandLoop | None, reference: HandLoop | None) -> Any:
    """A callback timing each convtrain epoch, then one epoch of each hand loop after it."""
    import keras

    class Interleave(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.hand_seconds: list[float] = []
            self.convtrain_seconds: list[float] = []
            self.reference_seconds: list[float] = []
            self.augmented_seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.convtrain_seconds.append(time.perf_counter() - self._start)
            self.hand_seconds.append(hand.epoch())
            if augmented is not None:
                self.augmented_seconds.append(augmented.epoch())
            # No reference loop of its own when the hand loop is already the plain one.
            self.reference_seconds.append(
                reference.epoch() if reference is not None else self.hand_seconds[-1]
            )

    return Interleave()


def measure_variant(
    config: str,
    overrides: Sequence[str],
    epochs: int,
    fresh_iterators: bool = False,
    same_work: bool = False,
) -> dict[str, Any]:
    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    from convtrain.config.load import load_config
    from convtrain.data.index import with_data_root
    from convtrain.data.pipeline import make_datasets
    from convtrain.data.split import make_split
    from convtrain.model.build import build_model
    from convtrain.train.fit import compile_model, fit_data
    from convtrain.train.session import keras_session

    experiment = with_data_root(load_config(config, overrides))
    load_before = os.getloadavg()
    with keras_session(experiment, experiment.seed):
        split = make_split(experiment)
        datasets = make_datasets(experiment, split)
        num_classes = len(split.classes)
        model = build_model(experiment, num_classes)
        compile_model(model, experiment, num_classes)
        hand = HandLoop(experiment)
        augmented = (
            HandLoop(experiment, augment=True) if same_work and experiment.augment.enabled else None
        )
        reference = None if is_plain(experiment) else reference_loop(experiment)
        timer = _interleaved(hand, augmented, reference)
        # convtrain's own data arguments, without validation: training throughput only.
        data = fit_data(dataclasses.replace(datasets, val=None))
        if fresh_iterators:  # what the trainer did before fit_data: a new iterator per epoch
            data = {"x": datasets.train}
        model.fit(**data, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer])
        hand_seconds, convtrain_seconds = timer.hand_seconds, timer.convtrain_seconds
        eval_seconds = []
        for _ in range(2):  # the first pass traces the test function
            start = time.perf_counter()
            metrics = model.evaluate(datasets.test, verbose=0, return_dict=True)
            eval_seconds.append(time.perf_counter() - start)
    images = len(split.train)
    return {
        "overrides": list(overrides),
        "fresh_iterators": fresh_iterators,
        "epochs": epochs,
        "train_images": images,
        "test_images": len(split.test),
        "convtrain_epoch_seconds": [round(s, 3) for s in convtrain_seconds],
        "hand_epoch_seconds": [round(s, 3) for s in hand_seconds],
        "convtrain_images_per_s": round(steady_rate(images, convtrain_seconds), 1),
        "hand_images_per_s": round(steady_rate(images, hand_seconds), 1),
        "hand_augmented_epoch_seconds": [round(s, 3) for s in timer.augmented_seconds],
        "hand_augmented_images_per_s": (
            round(steady_rate(images, timer.augmented_seconds), 1) if augmented else None
        ),
        "reference_epoch_seconds": [round(s, 3) for s in timer.reference_seconds],
        "reference_images_per_s": round(steady_rate(images, timer.reference_seconds), 1),
        "eval_images_per_s": round(len(split.test) / min(eval_seconds), 1),
        "test_accuracy": round(float(metrics["accuracy"]), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadavg": [round(x, 2) for x in (*load_before, *os.getloadavg())],
    }


def main(argv: Sequence[str]) -> None:
    """`python -m benchmarks.trainbench CONFIG EPOCHS [--fresh-iterators] [--same-work]
    [KEY=VALUE ...]`.

    Prints one JSON line on stdout.
    """
    config, epochs, *rest = argv
    flags = {FRESH_ITERATORS, SAME_WORK}
    overrides = [item for item in rest if item not in flags]
    result = measure_variant(
        config, overrides, int(epochs), FRESH_ITERATORS in rest, SAME_WORK in rest
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
