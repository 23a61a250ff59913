"""A titled grid of images (augmentation previews, misclassified test images) as a PNG."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from convtrain.plots.save import save_figure

_CELL = 1.55  # inches per image
_TITLE_CHARS = 24


def _columns(n: int) -> int:
    # About twice as wide as tall: 32 images -> 8 x 4, 12 -> 5 x 3, 100 -> 14 x 8.
    return max(1, min(n, max(4, round(math.sqrt(n * 2)))))


def _shorten(text: str) -> str:
    return text if len(text) <= _TITLE_CHARS else text[: _TITLE_CHARS - 1] + "\u2026"


def _displayable(images: np.ndarray) -> np.ndarray:
    """float [0, 1] or uint8 [0, 255] images, [N, H, W] or [N, H, W, 1|3], as matplotlib wants."""
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(
            f"expected images [N, H, W] or [N, H, W, 1 or 3], received shape {images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    return np.clip(images.astype(np.float32), 0.0, 1.0)


def image_grid(
    images: np.ndarray,
    titles: list[str],
    path: Path,
    title: str,
    title_colors: list[str] | None = None,
) -> None:
    """Write `images` (float in [0, 1] or uint8) as a grid, each with its title, to a PNG."""
    images = _displayable(np.asarray(images))
    n = len(images)
    if n == 0:
        raise ValueError("expected at least one image, received none")
    if len(titles) != n or (title_colors is not None and len(title_colors) != n):
        raise ValueError(
            f"expected one title (and colour) per image: {n} images, received {len(titles)} "
            f"titles and {None if title_colors is None else len(title_colors)} colours"
        )
    cols = _columns(n)
    rows = math.ceil(n / cols)
    height, width = images.shape[1:3]
    title_lines = max(t.count("\n") + 1 for t in titles)
    cell_h = _CELL * min(2.0, max(0.5, height / width)) + 0.16 * title_lines + 0.06
    fig = Figure(
        figsize=(cols * _CELL, rows * cell_h + 0.5), facecolor="white", layout="constrained"
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    axes = fig.subplots(rows, cols, squeeze=False)
    gray = images.ndim == 3
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        vmax = 255 if images.dtype == np.uint8 else 1.0
        ax.imshow(
            images[i],
            cmap="gray" if gray else None,
            vmin=0,
            vmax=vmax,
            # Small images are shown with their real pixels instead of a blur.
            interpolation="nearest" if max(height, width) < 96 else "antialiased",
        )
        color = title_colors[i] if title_colors is not None else "#222222"
        ax.set_title(_shorten(titles[i]), fontsize=8, color=color, pad=3)
    # Wrap to the figure's width (about 7.5 bold characters per inch at 11 points).
    chars = max(30, int(cols * _CELL * 7.5))
    lines = [wrapped for line in title.splitlines() for wrapped in textwrap.wrap(line, chars)]
    fig.suptitle("\n".join(lines), fontsize=11, fontweight="bold")
    save_figure(fig, Path(path), dpi=110)
