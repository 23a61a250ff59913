"""Learning curves: loss, accuracy and learning rate per epoch, with the best epoch marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from convtrain.history import History
from convtrain.plots.save import save_figure

TRAIN_COLOR, VAL_COLOR, BEST_COLOR = "tab:blue", "tab:orange", "tab:green"
Best = tuple[int, str] | None  # (epoch, monitored metric), as History.best_epoch returns


def _message(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _mark_best(ax: Axes, history: History, best: Best, metric: str) -> None:
    if best is None:
        return
    epoch, monitor = best
    ax.axvline(epoch, color=BEST_COLOR, linestyle="--", linewidth=1, label=f"best epoch ({epoch})")
    if monitor in (metric, f"val_{metric}"):
        value = history.columns[monitor][int(np.flatnonzero(history.epochs == epoch)[0])]
        ax.plot(
            [epoch],
            [value],
            marker="*",
            markersize=13,
            color=BEST_COLOR,
            linestyle="none",
            label=f"best {monitor} {value:.4g}",
        )


def _curves(ax: Axes, history: History, metric: str, best: Best) -> None:
    ax.set_title(metric.capitalize())
    ax.set_xlabel("Epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    pairs = ((metric, "training", TRAIN_COLOR), (f"val_{metric}", "validation", VAL_COLOR))
    drawn = [name for name, _, _ in pairs if history.has(name)]
    if not drawn:
        _message(ax, f"no {metric} recorded")
        return
    for name, label, color in pairs:
        if name in drawn:
            values = history.columns[name]
            ax.plot(history.epochs, values, marker="o", markersize=3, label=label, color=color)
    _mark_best(ax, history, best, metric)
    ax.legend(fontsize=8)


def _learning_rate(ax: Axes, history: History, best: Best) -> None:
    ax.set_title("Learning rate")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("lr")
    ax.grid(alpha=0.3)
    if not history.has("lr"):
        _message(ax, "no learning rate recorded")
        return
    lr = history.columns["lr"]
    ax.plot(history.epochs, lr, marker="o", markersize=3, color="tab:purple")
    finite = lr[np.isfinite(lr)]
    # A decaying schedule spans decades: a log axis shows each step, a linear one flattens them.
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        ax.set_yscale("log")
    elif finite.size:
        # Linear from zero, without matplotlib's offset notation (a constant 1e-4 would otherwise
        # be drawn as "0.000100 + 1e-6" ticks around a flat line).
        ax.set_ylim(0.0, float(finite.max()) * 1.15 or 1.0)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useOffset=False)
    if best is not None:
        ax.axvline(best[0], color=BEST_COLOR, linestyle="--", linewidth=1)


def plot_learning_curves(history: History, path: Path, *, title: str, best: Best) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    _curves(axes[0], history, "loss", best)
    _curves(axes[1], history, "accuracy", best)
    _learning_rate(axes[2], history, best)
    for ax in axes:
        # Integer epochs only, however few there are.
        ax.xaxis.get_major_locator().set_params(integer=True)
    subtitle = f" - best epoch {best[0]} by {best[1]}" if best else ""
    fig.suptitle(f"{title}{subtitle}")
    return save_figure(fig, path)
