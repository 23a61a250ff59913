"""Evaluation figures: confusion matrix, per-class accuracy, first-layer filters.

Sizes grow with the number of classes so that 101 CALTECH-101 categories each keep a readable
label: every class is labelled, fonts shrink only down to a legible minimum.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import PowerNorm

from convtrain.plots.save import save_figure

# Below this many classes the confusion-matrix cells are annotated with their values.
ANNOTATE_MAX_CLASSES = 20


def _label_fontsize(n: int) -> float:
    return float(np.clip(150 / max(n, 1), 6.0, 10.0))


def plot_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], path: Path, *, title: str
) -> Path:
    """Row-normalised: cell (i, j) is the fraction of class i's images predicted as class j."""
    n = len(classes)
    support = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(support > 0, confusion / np.maximum(support, 1), np.nan)
    side = float(np.clip(0.2 * n + 3.0, 6.0, 26.0))
    fig, ax = plt.subplots(figsize=(side + 2.0, side), layout="constrained")
    # A class without images in the split: a grey row.
    cmap = plt.get_cmap("Blues").with_extremes(bad="0.85")
    # A square-root colour scale: with 101 classes most confusions are a few percent, which a
    # linear scale renders as white.
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    image = ax.imshow(rates, cmap=cmap, norm=norm, interpolation="nearest")
    font = _label_fontsize(n)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    # Wrapped to the figure's width: a long run name must not push the title off the image.
    ax.set_title("\n".join(textwrap.wrap(title, width=int(8 * side))))
    if n <= ANNOTATE_MAX_CLASSES:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    dark = rates[i, j] > 0.3
                    ax.text(
                        j,
                        i,
                        f"{rates[i, j]:.2f}\n({confusion[i, j]})",
                        ha="center",
                        va="center",
                        fontsize=max(font - 2, 5),
                        color="white" if dark else "black",
                    )
    else:
        # Faint grid lines make it possible to follow a row across a large matrix.
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="0.92", linewidth=0.3)
        ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(image, ax=ax, shrink=0.6, pad=0.01)
    bar.set_ticks([0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    bar.set_label("Fraction of the true class (square-root scale)")
    return save_figure(fig, path)


def plot_per_class_accuracy(
    accuracy: np.ndarray,
    support: np.ndarray,
    classes: Sequence[str],
    path: Path,
    *,
    mean: float,
    title: str,
) -> Path:
    """Horizontal bars, best class on top; classes without images in the split are left out."""
    keep = [i for i in range(len(classes)) if support[i] > 0]
    # Sorted by accuracy, ties by name, so the same evaluation draws the same chart.
    order = sorted(keep, key=lambda i: (-accuracy[i], classes[i]))
    n = len(order)
    fig, ax = plt.subplots(
        figsize=(9.0, float(np.clip(0.19 * n + 1.6, 3.5, 40.0))), layout="constrained"
    )
    y = np.arange(n)
    values = accuracy[order]
    colors = plt.get_cmap("RdYlGn")(0.15 + 0.7 * values)
    ax.barh(y, values, color=colors, edgecolor="0.3", linewidth=0.3, height=0.8)
    font = _label_fontsize(n)
    ax.set_yticks(y, [f"{classes[i]} ({int(support[i])})" for i in order], fontsize=font)
    ax.invert_yaxis()
    ax.set_ylim(n - 0.5, -0.5)
    ax.axvline(
        mean,
        color="black",
        linestyle="--",
        linewidth=1.2,
        label=f"mean per-class accuracy {mean:.3f}",
    )
    if n <= 40:
        # Inside the bar's left end, clear of the mean line; after the bar when it is too short.
        for yi, v in zip(y, values, strict=True):
            ax.text(0.01 if v >= 0.12 else v + 0.01, yi, f"{v:.2f}", va="center", fontsize=font)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("Accuracy (recall) on the split")
    ax.set_ylabel("Class (images in the split)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    ax.xaxis.set_ticks_position("both")
    ax.tick_params(axis="x", labeltop=True)
    return save_figure(fig, path)


def filter_tiles(kernel: np.ndarray) -> tuple[np.ndarray, str]:
    """Kernels [kh, kw, in, out] as displayable tiles in [0, 1], each filter scaled on its own.

    Three input channels: one RGB tile per filter, [out, kh, kw, 3], mode "rgb". Otherwise one
    grayscale tile per filter and input channel, [out, in, kh, kw], mode "channels".
    """
    k = np.asarray(kernel, dtype=np.float64)
    lo = k.min(axis=(0, 1, 2), keepdims=True)
    span = k.max(axis=(0, 1, 2), keepdims=True) - lo
    # A constant filter (e.g. all zeros) has no contrast to show: mid-grey.
    scaled = np.where(span > 0, (k - lo) / np.where(span > 0, span, 1.0), 0.5)
    if k.shape[2] == 3:
        return np.transpose(scaled, (3, 0, 1, 2)), "rgb"
    return np.transpose(scaled, (3, 2, 0, 1)), "channels"


def plot_filters(kernel: np.ndarray, path: Path, *, title: str, max_filters: int = 64) -> Path:
    tiles, mode = filter_tiles(kernel)
    shown = min(len(tiles), max_filters)
    if mode == "rgb":
        cols = math.ceil(math.sqrt(shown))
        rows = math.ceil(shown / cols)
        cells = [(f, None) for f in range(shown)]
    else:
        channels = tiles.shape[1]
        # One row per filter when there are several input channels, else a square grid.
        cols = channels if channels > 1 else math.ceil(math.sqrt(shown))
        rows = shown if channels > 1 else math.ceil(shown / cols)
        cells = [(f, c) for f in range(shown) for c in range(channels)]
    cell = 1.1
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(cols * cell, 4.0), rows * cell + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (f, c) in zip(axes.flat, cells, strict=False):
        if c is None:
            ax.imshow(tiles[f], interpolation="nearest")
            ax.set_title(f"{f}", fontsize=7)
        else:
            ax.imshow(tiles[f, c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{f}" if tiles.shape[1] == 1 else f"{f} ch{c}", fontsize=7)
    kh, kw, cin, cout = np.shape(kernel)
    more = f", first {shown} of {cout} shown" if shown < cout else ""
    fig.suptitle(
        f"{title}\n{cout} filters {kh}x{kw}x{cin}{more}, each scaled to [0, 1]", fontsize=10
    )
    return save_figure(fig, path)
