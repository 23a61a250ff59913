"""Plots comparing runs: accuracy against cost, and validation curves overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.ticker import EngFormatter, MaxNLocator, NullFormatter

from convtrain.io import atomic_save

if TYPE_CHECKING:
    from convtrain.experiments.compare import RunSummary

LABELS = {
    "accuracy": "accuracy",
    "mean_per_class_accuracy": "mean per-class accuracy",
    "top_k_accuracy": "top-k accuracy",
}


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_save(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format="png"), ".png")
    plt.close(fig)


def cost_plot(runs: list[RunSummary], metric: str, path: Path, names: dict[str, str]) -> None:
    """One point per run: the metric against parameters (left) and multiply-accumulates (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    best = max(runs, key=lambda r: r.metrics.get(metric, float("-inf")))
    for ax, attr, xlabel in (
        (axes[0], "params", "parameters"),
        (axes[1], "macs", "multiply-accumulates per image"),
    ):
        for r in runs:
            y = r.metrics.get(metric)
            if y is None:
                continue
            x = getattr(r, attr)
            star = r is best
            ax.scatter(
                x,
                y,
                s=90 if star else 45,
                marker="*" if star else "o",
                color="#d62728" if star else "#1f77b4",
                zorder=3,
            )
            ax.annotate(
                names[r.name], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8
            )
        xs = [getattr(r, attr) for r in runs]
        # A log axis only when the runs span a decade; a narrow range reads better linearly.
        wide = min(xs) > 0 and max(xs) / min(xs) >= 10
        if wide:
            ax.set_xscale("log")
        else:  # at most five ticks: labels such as "240.0k" would run into each other
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(EngFormatter(places=1, sep=""))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{xlabel}{' (log scale)' if wide else ''}")
        ax.margins(x=0.25, y=0.15)  # room for the labels
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(LABELS.get(metric, metric))
    fig.suptitle(f"{LABELS.get(metric, metric)} against cost ({len(runs)} runs; star = best)")
    _save(fig, path)


def curves_plot(runs: list[RunSummary], path: Path, names: dict[str, str]) -> None:
    """Validation accuracy (or training accuracy when a run has no val split) per epoch, overlaid."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    cmap = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    for i, r in enumerate(runs):
        key = "val_accuracy" if any("val_accuracy" in row for row in r.history) else "accuracy"
        loss_key = "val_loss" if key == "val_accuracy" else "loss"
        epochs = [row["epoch"] for row in r.history if key in row]
        colour = cmap(i % cmap.N)
        axes[0].plot(
            epochs,
            [row[key] for row in r.history if key in row],
            color=colour,
            label=names[r.name] if key == "val_accuracy" else f"{names[r.name]} (train)",
        )
        axes[1].plot(
            [row["epoch"] for row in r.history if loss_key in row],
            [row[loss_key] for row in r.history if loss_key in row],
            color=colour,
        )
    axes[0].set_title("validation accuracy")
    axes[1].set_title("validation loss")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy")
    losses = [y for line in axes[1].get_lines() for y in line.get_ydata() if y > 0]
    # One diverging run would flatten every other curve against the axis on a linear scale.
    wide = bool(losses) and max(losses) / min(losses) >= 20
    if wide:
        axes[1].set_yscale("log")
    axes[1].set_ylabel("loss (log scale)" if wide else "loss")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("learning curves of the compared runs")
    _save(fig, path)
