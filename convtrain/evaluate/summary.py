"""metrics.json: an evaluation's headline figures, the record `compare` and report.html read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from convtrain.records import Record

# The headline metrics, in the order every table and summary shows them.
METRICS = ("accuracy", "mean_per_class_accuracy", "top_k_accuracy")


class MetricsRecord(Record):
    FILE = "reports/metrics.json"
    MISSING = "missing: the run was not evaluated (run `convtrain evaluate` on it)"

    checkpoint: Literal["best", "last"]
    split: Literal["test", "val"]
    num_images: int = Field(ge=1)
    num_classes: int = Field(ge=2)
    accuracy: float = Field(ge=0, le=1)
    mean_per_class_accuracy: float = Field(ge=0, le=1)
    top_k: int = Field(ge=1)  # as used: the configured k, capped at the number of classes
    top_k_accuracy: float = Field(ge=0, le=1)

    def label(self, metric: str) -> str:
        return {
            "accuracy": "accuracy",
            "mean_per_class_accuracy": "mean per-class accuracy",
            "top_k_accuracy": f"top-{self.top_k} accuracy",
        }[metric]

    def headline(self) -> str:
        """'accuracy 0.8125, mean per-class accuracy 0.8000, top-2 accuracy 0.9375'."""
        return ", ".join(f"{self.label(m)} {getattr(self, m):.4f}" for m in METRICS)
