"""Learning curves: loss, accuracy and learning rate per epoch, with the best epoch marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from convtrain.evaluate.history import History
from convtrain.plots.save import save_figure

TRAIN_COLOR, VAL_COLOR, BEST_COLOR = "tab:blue", "tab:orange", "tab:green"


def _curves(ax: Axes, history: History, metric: str, best: int | None) -> None:
    drawn = False
    for name, label, color in (
        (metric, "training", TRAIN_COLOR),
        (f"val_{metric}", "validation", VAL_COLOR),
    ):
        if history.has(name):
            drawn = True
            ax.plot(
                history.epochs,
                history.columns[name],
                marker="o",
                markersize=3,
                label=label,
                color=color,
            )
    ax.set_title(metric.capitalize())
    ax.set_xlabel("Epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)
        return
    if best is not None:
        ax.axvline(
            best, color=BEST_COLOR, linestyle="--", linewidth=1, label=f"best epoch ({best})"
        )
    ax.legend(fontsize=8)


def _learning_rate(ax: Axes, history: History, best: int | None) -> None:
    ax.set_title("Learning rate")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("lr")
    ax.grid(alpha=0.3)
    if not history.has("lr"):
        ax.text(
            0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes
        )
        return
    lr = history.columns["lr"]
    ax.plot(
        history.epochs, lr, marker="o", markersize=3, color="tab:purple", drawstyle="steps-post"
    )
    finite = lr[np.isfinite(lr)]
    # A decaying schedule spans decades: a log axis shows each step, a linear one flattens them.
    if finite.min() > 0 and finite.max() / finite.min() > 10:
        ax.set_yscale("log")
    if best is not None:
        ax.axvline(best, color=BEST_COLOR, linestyle="--", linewidth=1)


def plot_learning_curves(
    history: History, path: Path, *, title: str, best: tuple[int, str] | None
) -> Path:
    """`best`: (epoch, monitored metric) as chosen by `History.best_epoch`."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    epoch = best[0] if best else None
    _curves(axes[0], history, "loss", epoch)
    _curves(axes[1], history, "accuracy", epoch)
    _learning_rate(axes[2], history, epoch)
    for ax in axes:
        # Integer epochs only, however few there are.
        ax.xaxis.get_major_locator().set_params(integer=True)
    subtitle = f" - best epoch {best[0]} by {best[1]}" if best else ""
    fig.suptitle(f"{title}{subtitle}")
    return save_figure(fig, path)
