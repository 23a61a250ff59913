"""Evaluate a run's checkpoint on one split of its saved split: predictions, reports, figures.

Everything that can fail on the run directory or the data is checked before anything is
written, so a damaged run directory is never made worse by an evaluation that cannot finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from convtrain.config.schema import Experiment
from convtrain.data.index import resolve_root
from convtrain.data.pipeline import make_eval_dataset
from convtrain.data.split import Split
from convtrain.errors import ConvtrainError
from convtrain.evaluate.figures import Evaluated, write_plots
from convtrain.evaluate.metrics import (
    ConfusedPair,
    Predictions,
    compute_metrics,
    confused_pairs,
    softmax_if_logits,
)
from convtrain.evaluate.reports import metrics_summary, write_reports
from convtrain.evaluate.summary import MetricsRecord
from convtrain.history import History
from convtrain.plots.training import Best
from convtrain.progress import QUIET, Reporter
from convtrain.rundir import RunDir
from convtrain.train.loading import SPLITS, check_model, choose, load_model


@dataclass(frozen=True)
class Evaluation:
    summary: MetricsRecord  # what reports/metrics.json now holds
    pairs: list[ConfusedPair]  # the confusions, worst first


def evaluate_checkpoint(
    run: RunDir,
    experiment: Experiment,
    split: Split,
    checkpoint: str,
    part: str,
    *,
    history: History | None = None,
    best: Best = None,
    reporter: Reporter = QUIET,
) -> Evaluation:
    """Predict `part` of `split` with the checkpoint; write reports/ and plots/."""
    part = choose(part, SPLITS, "split")
    items = tuple(getattr(split, part))
    if not items:
        other = "val" if part == "test" else "test"
        raise ConvtrainError(
            f"{run.split}: expected images in the {part} split, received none "
            f"(evaluate another split with --split {other})"
        )
    model = load_model(run, checkpoint)
    check_model(model, run.checkpoint(checkpoint), experiment, len(split.classes))
    root = resolve_root(experiment.data)

    probs = _predict(model, experiment, items, len(split.classes), reporter)
    pred = Predictions(
        classes=tuple(split.classes),
        y_true=np.array([label for _, label in items], dtype=np.int64),
        probs=probs,
    )
    metrics = compute_metrics(pred, experiment.eval.top_k)
    pairs = confused_pairs(metrics)
    summary = metrics_summary(metrics, checkpoint, part)
    files = [path for path, _ in items]
    write_reports(run.reports, metrics, pairs, pred, files, summary)
    title = f"{experiment.name} - {part} split, {checkpoint} checkpoint"
    evaluated = Evaluated(experiment, model, pred, metrics, files, root, title)
    write_plots(run, evaluated, history, best, reporter)
    return Evaluation(summary, pairs)


def _predict(
    model: Any, experiment: Experiment, items: tuple, num_classes: int, reporter: Reporter
) -> np.ndarray:
    dataset = make_eval_dataset(experiment, items, num_classes, reporter)
    batches = math.ceil(len(items) / experiment.train.batch_size)
    outputs = []
    with reporter.task("evaluate", batches) as advance:
        for images, _ in dataset:
            outputs.append(np.asarray(model.predict_on_batch(images)))
            advance(1)
    out = np.concatenate(outputs, axis=0) if outputs else np.zeros((0, num_classes))
    if out.shape != (len(items), num_classes):
        raise RuntimeError(
            f"expected {len(items)} predictions of {num_classes} classes, received {out.shape}"
        )
    return softmax_if_logits(out)
