"""Classification metrics from true labels and predicted probabilities (numpy and scikit-learn only).

Mean per-class accuracy (the mean of per-class recall) is the CALTECH-101 protocol metric: plain
accuracy rewards a model for the big classes (airplanes, faces, motorbikes hold a fifth of the
images), the per-class mean weighs every category equally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import classification_report


@dataclass(frozen=True)
class Predictions:
    """What a model said about one split: `probs[i]` is a distribution over `classes`."""

    classes: tuple[str, ...]
    y_true: np.ndarray  # int [N]
    probs: np.ndarray  # float [N, C]

    def __post_init__(self) -> None:
        n, c = len(self.y_true), len(self.classes)
        if self.probs.shape != (n, c):
            raise ValueError(
                f"expected probabilities of shape ({n}, {c}) for {n} images and {c} classes, "
                f"received {self.probs.shape}"
            )

    @property
    def y_pred(self) -> np.ndarray:
        return np.argmax(self.probs, axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return np.max(self.probs, axis=1)


@dataclass(frozen=True)
class ConfusedPair:
    true: str
    predicted: str
    count: int
    fraction: float  # of the true class's images


@dataclass(frozen=True)
class Metrics:
    classes: tuple[str, ...]
    num_images: int
    accuracy: float
    mean_per_class_accuracy: float
    top_k: int  # as used: the configured k, capped at the number of classes
    top_k_accuracy: float
    confusion: np.ndarray  # int [C, C], rows true, columns predicted
    report_text: str
    report: dict[str, Any]

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall per class; NaN for a class with no image in the split."""
        support = self.support
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / support, np.nan)


def softmax_if_logits(outputs: np.ndarray) -> np.ndarray:
    """Probabilities from a model's outputs: kept when they already are, softmax of logits otherwise.

    A head may end in `activation: softmax` or in a linear layer trained `from_logits`.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.size and outputs.min() >= 0.0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def top_k_indices(probs: np.ndarray, k: int) -> np.ndarray:
    """[N, k] class indices, most probable first; ties keep the lower class index first."""
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def compute_metrics(pred: Predictions, top_k: int) -> Metrics:
    if len(pred.y_true) == 0:
        raise ValueError("expected at least one image to evaluate, received none")
    num_classes = len(pred.classes)
    y_pred = pred.y_pred
    cm = confusion_matrix(pred.y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    k = min(top_k, num_classes)
    in_top_k = (top_k_indices(pred.probs, k) == pred.y_true[:, None]).any(axis=1)
    labels = list(range(num_classes))
    common = {
        "labels": labels,
        "target_names": list(pred.classes),
        "zero_division": 0,
    }
    return Metrics(
        classes=pred.classes,
        num_images=int(len(pred.y_true)),
        accuracy=float(np.mean(y_pred == pred.y_true)),
        # Classes absent from the split have no recall; they are left out of the mean.
        mean_per_class_accuracy=float(np.mean(np.diag(cm)[present] / support[present])),
        top_k=k,
        top_k_accuracy=float(np.mean(in_top_k)),
        confusion=cm,
        report_text=classification_report(pred.y_true, y_pred, digits=3, **common),
        report=classification_report(pred.y_true, y_pred, output_dict=True, **common),
    )


def confused_pairs(metrics: Metrics) -> list[ConfusedPair]:
    """Every (true, predicted) pair of distinct classes with at least one image, worst first."""
    cm = metrics.confusion
    support = metrics.support
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    pairs = [
        ConfusedPair(
            true=metrics.classes[i],
            predicted=metrics.classes[j],
            count=int(off[i, j]),
            fraction=float(off[i, j] / support[i]),
        )
        for i, j in zip(rows, cols, strict=True)
    ]
    # Ties broken by name so the file is the same on every run.
    return sorted(pairs, key=lambda p: (-p.count, -p.fraction, p.true, p.predicted))
