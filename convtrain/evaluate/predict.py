"""The top-k classes of a few images, preprocessed exactly as the run's data (`convtrain predict`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtrain.config.schema import Experiment
from convtrain.data.decode import decode_images
from convtrain.data.split import Split
from convtrain.evaluate.metrics import softmax_if_logits, top_k_indices
from convtrain.rundir import RunDir
from convtrain.train.loading import check_model, load_experiment, load_model


@dataclass(frozen=True)
class ImagePrediction:
    image: str
    top: tuple[tuple[str, float], ...]  # (class, probability), most probable first


def predict_images(
    run: RunDir, images: Sequence[str | Path], top_k: int, checkpoint: str
) -> list[ImagePrediction]:
    experiment = load_experiment(run)
    pixels = decode_images(images, experiment.data)  # a bad file fails before the model loads
    return predict(run, experiment, run.read(Split).classes, images, pixels, top_k, checkpoint)


def predict(
    run: RunDir,
    experiment: Experiment,
    classes: Sequence[str],
    images: Sequence[str | Path],
    pixels: Sequence[np.ndarray],
    top_k: int,
    checkpoint: str,
) -> list[ImagePrediction]:
    """The top-k classes of decoded images (`pixels`, parallel to `images`) by the checkpoint."""
    model = load_model(run, checkpoint)
    check_model(model, run.checkpoint(checkpoint), experiment, len(classes))
    batch = np.stack(pixels).astype(np.float32) / 255.0
    probs = softmax_if_logits(np.asarray(model.predict_on_batch(batch)))
    k = min(top_k, len(classes))
    return [
        ImagePrediction(str(path), tuple((classes[c], float(row[c])) for c in top))
        for path, row, top in zip(images, probs, top_k_indices(probs, k), strict=True)
    ]


def format_table(results: Sequence[ImagePrediction]) -> str:
    width = max(len(c) for r in results for c, _ in r.top)
    blocks = []
    for r in results:
        lines = [r.image]
        lines += [f"  {i}. {c:<{width}}  {p:7.2%}" for i, (c, p) in enumerate(r.top, start=1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_json(results: Sequence[ImagePrediction]) -> str:
    payload = [
        {"image": r.image, "predictions": [{"class": c, "probability": p} for c, p in r.top]}
        for r in results
    ]
    return json.dumps(payload, indent=2)


FORMATS = {"table": format_table, "json": format_json}
