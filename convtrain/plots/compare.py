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

FEW = 4  # runs whose full labels fit beside their points

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
    chosen: int | None = None,
) -> None:
    """One point per run: its score against parameters (left) and multiply-accumulates (right).

    `chosen`: the run a sweep selected on its validation split, starred instead of the best
    score drawn (a sweep's plotted test score must not look like what chose its winner)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    # A few runs are named with their settings beside the point; more such labels run into
    # each other (seen in a 15-trial sweep), so each point then carries its run's name only and
    # the settings are in the curves' legend and the table.
    tags = list(names) if len(names) <= FEW else [n.split(": ", 1)[0] for n in names]
    scored = [i for i, y in enumerate(scores) if y is not None]
    best = chosen if chosen is not None else max(scored, key=lambda i: scores[i], default=None)
    for ax, costs, xlabel in (
        (axes[0], params, "parameters"),
        (axes[1], macs, "multiply-accumulates per image"),
    ):
        # Runs at the same point share one label (printed over each other they read as none).
        at: dict[tuple[float, float], list[int]] = {}
        for i in scored:
            at.setdefault((costs[i], scores[i]), []).append(i)
        for (x, y), runs in at.items():
            star = best in runs
            ax.scatter(
                x,
                y,
                s=90 if star else 45,
                marker="*" if star else "o",
                color="#d62728" if star else "#1f77b4",
                zorder=4 if star else 3,
            )
            label = "\n".join(tags[i] for i in runs)
            # centred on its point: a label of several runs would otherwise climb to the next
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(7, 0), fontsize=8,
                        va="center")  # fmt: skip
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
    axes[0].set_ylabel(f"test {LABELS.get(metric, metric)}")
    star = "star = chosen on validation" if chosen is not None else "star = best"
    fig.suptitle(f"test {LABELS.get(metric, metric)} against cost ({len(names)} runs; {star})")
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
    fig.suptitle("learning curves of the compared runs")
    # Below both panels: inside one, a long legend hides the curves it names.
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=1 if len(names) <= FEW else 2,
        frameon=False,
    )
    fig.tight_layout()
    save_figure(fig, path, tight=True)
