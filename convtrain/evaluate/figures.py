"""Which figures an evaluation draws, from what, and where they go (`plots/`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from convtrain.config.schema import Experiment
from convtrain.data.decode import decode_image
from convtrain.evaluate.metrics import Metrics, Predictions
from convtrain.explain.sections import looks_at, with_gradcam
from convtrain.history import History
from convtrain.plots.evaluation import plot_confusion_matrix, plot_filters, plot_per_class_accuracy
from convtrain.plots.grid import image_grid
from convtrain.plots.training import Best, plot_learning_curves
from convtrain.progress import QUIET, Reporter
from convtrain.rundir import RunDir

MISCLASSIFIED_SHOWN = 32
# image_grid shortens longer titles with an ellipsis (whole title, newline included).
GRID_TITLE_CHARS = 24

PLOTS = {
    "confusion": "confusion_matrix.png",
    "per_class": "per_class_accuracy.png",
    "curves": "learning_curves.png",
    "misclassified": "misclassified.png",
    "filters": "filters.png",
    "looks_at": "what_the_network_looks_at.png",  # issue 16: convtrain.explain.sections
}


@dataclass(frozen=True)
class Evaluated:
    """What one evaluation produced, as the figures need it."""

    experiment: Experiment
    model: Any
    pred: Predictions
    metrics: Metrics
    files: Sequence[str]  # relative to `root`, parallel to pred
    root: Path
    title: str  # "<name> - <split> split, <checkpoint> checkpoint"


def write_plots(
    run: RunDir, ev: Evaluated, history: History | None, best: Best, reporter: Reporter = QUIET
) -> list[Path]:
    """Every figure of the evaluation; learning curves only from a `history`, marked at `best`."""
    out = {key: run.plots / name for key, name in PLOTS.items()}
    m = ev.metrics
    plot_confusion_matrix(
        m.confusion,
        m.classes,
        out["confusion"],
        title=f"Confusion matrix (row-normalised) - {ev.title}, {m.num_images} images",
    )
    plot_per_class_accuracy(
        m.per_class_accuracy,
        m.support,
        m.classes,
        out["per_class"],
        mean=m.mean_per_class_accuracy,
        title=f"Per-class accuracy - {ev.title}",
    )
    written = {"confusion", "per_class"}
    if history is not None:
        title = f"Learning curves - {ev.experiment.name}"
        plot_learning_curves(history, out["curves"], title=title, best=best)
        written.add("curves")
    if _misclassified(ev, out["misclassified"]):
        written.add("misclassified")
    if _looks_at(ev, out["looks_at"]):  # issue 16
        written.add("looks_at")
    conv = first_conv(ev.model)
    if conv is not None:
        kernel = keras.ops.convert_to_numpy(conv.kernel)
        title = f"First convolution '{conv.name}' - {ev.experiment.name}"
        plot_filters(kernel, out["filters"], title=title)
        written.add("filters")
    for key, path in out.items():
        # A figure this evaluation has nothing for must not survive from an earlier one.
        if key not in written and path.exists():
            path.unlink()
            reporter.note(f"note: removed {path} (nothing to draw this time)")
    return [out[key] for key in PLOTS if key in written]


def first_conv(model: Any) -> Any | None:
    """The first Conv2D layer, looking inside nested models and blocks."""
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, keras.layers.Conv2D):
            return layer
        inner = first_conv(layer)
        if inner is not None:
            return inner
    return None


def _clip(name: str, n: int) -> str:
    return name if len(name) <= n else name[: max(n - 1, 1)] + "\u2026"


def grid_title(true: str, predicted: str, confidence: float) -> str:
    """'true\\npredicted 87%', the names shortened to fit image_grid's title length."""
    tail = f" {confidence:.0%}"
    room = GRID_TITLE_CHARS - 1 - len(tail)
    # The longer name gives way first; a short one is never cut.
    keep_true = min(len(true), max(room - len(predicted), room // 2))
    return f"{_clip(true, keep_true)}\n{_clip(predicted, room - keep_true)}{tail}"


def _misclassified(ev: Evaluated, path: Path) -> bool:
    pred = ev.pred
    wrong = np.nonzero(pred.y_pred != pred.y_true)[0]
    if not len(wrong):
        return False
    # The most confident mistakes first: the most telling ones.
    chosen = sorted(wrong, key=lambda i: (-pred.confidence[i], i))[:MISCLASSIFIED_SHOWN]
    data = ev.experiment.data
    images = np.stack(
        [
            decode_image(ev.root / ev.files[i], data.image_size, data.resize, data.color_mode)
            for i in chosen
        ]
    )
    # issue 16: each mistake with the Grad-CAM of the class it was taken for.
    images, overlay = with_gradcam(
        ev.model, ev.experiment, images, pred.y_pred[chosen], len(pred.classes)
    )
    titles = [
        grid_title(pred.classes[pred.y_true[i]], pred.classes[pred.y_pred[i]], pred.confidence[i])
        for i in chosen
    ]
    shown = (
        f"{len(chosen)} most confident of {len(wrong)}"
        if len(chosen) < len(wrong)
        else f"all {len(wrong)}"
    )
    image_grid(
        images,
        titles,
        path,
        f"Misclassified ({shown}) - {ev.title}\neach: true class / predicted class, confidence"
        f"{overlay}",
        title_colors=["#b2182b"] * len(chosen),
    )
    return True


def _looks_at(ev: Evaluated, path: Path) -> bool:
    """issue 16: Grad-CAM of correct and misclassified images per class, side by side."""
    data = ev.experiment.data

    def pixels(i: int) -> np.ndarray:
        return decode_image(ev.root / ev.files[i], data.image_size, data.resize, data.color_mode)

    pred = ev.pred
    args = (ev.model, ev.experiment, pred.classes, pixels, pred.y_true, pred.probs)
    return looks_at(*args, path, ev.title) is not None
