"""The text, CSV and JSON reports of an evaluation, each written atomically into `reports/`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convtrain.evaluate.metrics import ConfusedPair, Metrics, Predictions
from convtrain.evaluate.summary import METRICS, MetricsRecord
from convtrain.io import atomic_write_text

REPORT_TXT = "classification_report.txt"
REPORT_JSON = "classification_report.json"
CONFUSION_CSV = "confusion_matrix.csv"
PAIRS_CSV = "confused_pairs.csv"
PREDICTIONS_CSV = "predictions.csv"


def metrics_summary(metrics: Metrics, checkpoint: str, split: str) -> MetricsRecord:
    """The content of metrics.json."""
    return MetricsRecord(
        checkpoint=checkpoint,
        split=split,
        num_images=metrics.num_images,
        num_classes=len(metrics.classes),
        accuracy=metrics.accuracy,
        mean_per_class_accuracy=metrics.mean_per_class_accuracy,
        top_k=metrics.top_k,
        top_k_accuracy=metrics.top_k_accuracy,
    )


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def confusion_csv(metrics: Metrics) -> str:
    header = ["true \\ predicted", *metrics.classes]
    rows = [
        [name, *map(int, row)] for name, row in zip(metrics.classes, metrics.confusion, strict=True)
    ]
    return _csv([header, *rows])


def pairs_csv(pairs: Sequence[ConfusedPair]) -> str:
    rows = [[p.true, p.predicted, p.count, f"{p.fraction:.4f}"] for p in pairs]
    return _csv([["true", "predicted", "count", "fraction_of_true"], *rows])


def predictions_csv(pred: Predictions, files: Sequence[str]) -> str:
    rows = [
        [f, pred.classes[t], pred.classes[p], f"{c:.4f}", int(t == p)]
        for f, t, p, c in zip(files, pred.y_true, pred.y_pred, pred.confidence, strict=True)
    ]
    return _csv([["file", "true", "predicted", "confidence", "correct"], *rows])


def write_reports(
    folder: Path,
    metrics: Metrics,
    pairs: Sequence[ConfusedPair],
    pred: Predictions,
    files: Sequence[str],
    summary: MetricsRecord,
) -> list[Path]:
    """Write every report file; return their paths."""
    texts = {
        "metrics.json": summary.dumps(),
        REPORT_TXT: metrics.report_text,
        REPORT_JSON: _json(_json_safe(metrics.report)),
        CONFUSION_CSV: confusion_csv(metrics),
        PAIRS_CSV: pairs_csv(pairs),
        PREDICTIONS_CSV: predictions_csv(pred, files),
    }
    for name, text in texts.items():
        atomic_write_text(folder / name, text)
    return [folder / name for name in texts]


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def format_summary(summary: MetricsRecord, pairs: Sequence[ConfusedPair], where: Path) -> str:
    """The few lines printed after an evaluation."""
    lines = [
        f"{summary.split} split, {summary.checkpoint} checkpoint: "
        f"{summary.num_images} images, {summary.num_classes} classes",
        *(f"  {summary.label(m):<25}{getattr(summary, m):.4f}" for m in METRICS),
    ]
    if pairs:
        lines.append("most confused (true -> predicted: images, fraction of the true class):")
        width = max(len(p.true) for p in pairs[:10])
        lines += [
            f"  {p.true:<{width}} -> {p.predicted}: {p.count} ({p.fraction:.0%})"
            for p in pairs[:10]
        ]
    else:
        lines.append("no confusions: every image was classified correctly")
    lines.append(f"reports in {where / 'reports'}, plots in {where / 'plots'}")
    return "\n".join(lines)
