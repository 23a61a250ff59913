"""Plots comparing runs: accuracy against cost, and validation curves overlaid.

Each takes the runs' figures as plain sequences (one item per run, in the same order) and
histories as records, so it draws what it is given and reads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import EngFormatter, MaxNLocator, NullFormatter

from convtrain.history import History
from convtrain.plots.save import save_figure

LABELS = {
    "accuracy": "accuracy",
    "mean_per_class_accuracy": "mean per-class accuracy",
    "top_k_accuracy": "top-k accuracy",
}


def cost_plot(
    names: Sequence[str],
    scores: Sequence[float | None],
    params: Sequence[int],
    macs: Sequence[int],
    metric: str,
    path: Path,
) -> None:
    """One point per run: its score against parameters (left) and multiply-accumulates (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    scored = [i for i, y in enumerate(scores) if y is not None]
    best = max(scored, key=lambda i: scores[i], default=None)
    for ax, costs, xlabel in (
        (axes[0], params, "parameters"),
        (axes[1], macs, "multiply-accumulates per image"),
    ):
        for i in scored:
            x, y = costs[i], scores[i]
            star = i == best
            ax.scatter(
                x,
                y,
                s=90 if star else 45,
                marker="*" if star else "o",
                color="#d62728" if star else "#1f77b4",
                zorder=3,
            )
            ax.annotate(names[i], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        xs = list(costs)
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
    fig.suptitle(f"{LABELS.get(metric, metric)} against cost ({len(names)} runs; star = best)")
    save_figure(fig, path, tight=True)


def _finite(history: History, name: str) -> tuple[np.ndarray, np.ndarray]:
    values = history.column(name)
    keep = np.isfinite(values)
    return history.epochs[keep], values[keep]


def curves_plot(names: Sequence[str], histories: Sequence[History | None], path: Path) -> None:
    """Validation accuracy (or training accuracy when a run has no val split) per epoch, overlaid."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, (name, history) in enumerate(zip(names, histories, strict=True)):
        if history is None:
            continue
        key = "val_accuracy" if history.has("val_accuracy") else "accuracy"
        loss_key = "val_loss" if key == "val_accuracy" else "loss"
        colour = cmap(i % cmap.N)
        axes[0].plot(
            *_finite(history, key),
            color=colour,
            label=name if key == "val_accuracy" else f"{name} (train)",
        )
        axes[1].plot(*_finite(history, loss_key), color=colour)
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
    save_figure(fig, path, tight=True)
