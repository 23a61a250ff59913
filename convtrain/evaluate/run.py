"""`convtrain evaluate`: predict a run's saved split with one of its checkpoints, write reports and plots.

Called by the CLI (`run_evaluate`) and by the trainer at the end of training (`evaluate_run`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from convtrain.config.schema import Experiment
from convtrain.errors import ConvtrainError
from convtrain.evaluate.figures import Evaluated, write_plots
from convtrain.evaluate.loading import (
    SPLITS,
    check_model,
    choose,
    load_experiment,
    load_model,
)
from convtrain.evaluate.metrics import (
    Predictions,
    compute_metrics,
    confused_pairs,
    softmax_if_logits,
)
from convtrain.evaluate.reports import format_summary, metrics_summary, write_reports
from convtrain.progress import Progress
from convtrain.rundir import RunDir


def run_evaluate(
    run_dir: str | Path, checkpoint: str | None = None, split: str | None = None
) -> None:
    """The CLI entry: defaults from the run's `eval` section."""
    run = RunDir.open(run_dir, need=("config", "split", "checkpoint"))
    experiment = load_experiment(run)
    _evaluate(
        run,
        experiment,
        checkpoint or experiment.eval.checkpoint,
        split or experiment.eval.split,
    )


def evaluate_run(run: RunDir, checkpoint: str, split: str) -> dict[str, Any]:
    """Evaluate, write reports/ and plots/, print a summary; return the content of metrics.json."""
    return _evaluate(run, load_experiment(run), checkpoint, split)


def _evaluate(run: RunDir, experiment: Experiment, checkpoint: str, split: str) -> dict[str, Any]:
    from convtrain.data.index import resolve_root
    from convtrain.data.split import load_split

    split = choose(split, SPLITS, "split")
    saved = load_split(run.split)
    items = tuple(getattr(saved, split))
    if not items:
        other = "val" if split == "test" else "test"
        raise ConvtrainError(
            f"{run.split}: expected images in the {split} split, received none "
            f"(evaluate another split with --split {other})"
        )
    model = load_model(run, checkpoint)
    check_model(model, run.checkpoint(checkpoint), experiment, len(saved.classes))
    root = resolve_root(experiment.data)

    probs = _predict(model, experiment, items, len(saved.classes))
    pred = Predictions(
        classes=tuple(saved.classes),
        y_true=np.array([label for _, label in items], dtype=np.int64),
        probs=probs,
    )
    metrics = compute_metrics(pred, experiment.eval.top_k)
    pairs = confused_pairs(metrics)
    summary = metrics_summary(metrics, checkpoint, split)
    files = [path for path, _ in items]
    write_reports(run.reports, metrics, pairs, pred, files, summary)
    title = f"{experiment.name} - {split} split, {checkpoint} checkpoint"
    write_plots(run, Evaluated(experiment, model, pred, metrics, files, root, title))
    click.echo(format_summary(summary, pairs, run.path))
    from convtrain.experiments.html import run_report

    click.echo(f"report: {run_report(run.path)}")
    return summary


def _predict(model: Any, experiment: Experiment, items: tuple, num_classes: int) -> np.ndarray:
    from convtrain.data.pipeline import make_eval_dataset

    dataset = make_eval_dataset(experiment, items, num_classes)
    batches = math.ceil(len(items) / experiment.train.batch_size)
    progress = Progress(batches, "evaluate")
    outputs = []
    for images, _ in dataset:
        outputs.append(np.asarray(model.predict_on_batch(images)))
        progress.update()
    progress.close()
    out = np.concatenate(outputs, axis=0) if outputs else np.zeros((0, num_classes))
    if out.shape != (len(items), num_classes):
        raise RuntimeError(
            f"expected {len(items)} predictions of {num_classes} classes, received {out.shape}"
        )
    return softmax_if_logits(out)
