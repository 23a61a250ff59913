"""The filters of every convolution, and how far training moved them from initialisation.

After a few epochs at a small learning rate a filter is mostly its random initialisation, and
drawn alone it looks like noise; the change W - W0 (from `checkpoints/initial.keras`, written
when training starts) is what training learned. Each filter is scaled by its own largest
|weight|, so zero is always the middle of the colour scale and the sign is readable.
Each panel is one raster enlarged by a whole factor (sharp weights, no axes). The first layer
on an RGB image is drawn as colour patches, one per filter; a one-channel
layer (grayscale input, depthwise and separable convolutions' spatial part) as a grid of
tiles; deeper layers as a mosaic, one row per filter and one column per input channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize

from convtrain.explain import raster
from convtrain.explain.geometry import Layer
from convtrain.explain.render import DPI, WIDTH, Sheet
from convtrain.layers.tensor import Tensor

FILTERS_SHOWN, CHANNELS_SHOWN, TILES_SHOWN = 8, 16, 32
DIVERGING = "RdBu_r"
PANEL_WIDTH = 520  # pixels: two panels side by side on the 1200-pixel page


@dataclass(frozen=True)
class Kernel:
    layer: Layer
    weights: np.ndarray  # [kh, kw, in, filters] (depthwise: in = 1, one filter per channel)
    initial: np.ndarray | None
    reads_image: bool  # the layer's input is the image itself

    @property
    def mode(self) -> str:
        cin = self.weights.shape[2]
        if cin == 3 and self.reads_image:
            return "rgb"
        return "grid" if cin == 1 else "channels"

    @property
    def relative_change(self) -> float | None:
        if self.initial is None:
            return None
        norm = float(np.linalg.norm(self.initial))
        return float(np.linalg.norm(self.weights - self.initial)) / norm if norm > 0 else None


def _spatial_kernel(keras_layer, kind: str) -> np.ndarray:
    """The spatial weights as [kh, kw, in, filters]; a depthwise kernel as one-channel filters."""
    if kind == "conv2d":
        w = keras_layer.kernel
    else:
        w = keras_layer.depthwise_kernel if kind == "separable_conv2d" else keras_layer.kernel
    w = np.asarray(w.numpy() if hasattr(w, "numpy") else w, dtype=np.float64)
    if kind != "conv2d":
        kh, kw, cin, mult = w.shape
        w = w.reshape(kh, kw, 1, cin * mult)
    return w


def kernels(model, initial, convs: list[Layer], image: Tensor) -> list[Kernel]:
    out = []
    for layer in convs:
        w = _spatial_kernel(model.get_layer(layer.name), layer.step.kind)
        w0 = None
        if initial is not None:
            w0 = _spatial_kernel(initial.get_layer(layer.name), layer.step.kind)
            w0 = w0 if w0.shape == w.shape else None
        # Nothing spatial between it and the image (at most batch norm or an activation).
        reads_image = layer.step.inp.rf == (1, 1) and layer.step.inp.shape == image.shape
        out.append(Kernel(layer, w, w0, reads_image))
    return out


def _order(k: Kernel, n: int) -> np.ndarray:
    """Filters to show: those training changed most (or the largest, without W0)."""
    w = k.weights if k.initial is None else k.weights - k.initial
    norms = np.sqrt((w**2).sum(axis=(0, 1, 2)))
    return np.sort(np.argsort(-norms, kind="stable")[:n])


def _unit(w: np.ndarray) -> np.ndarray:
    """Each filter (last axis) divided by its largest |weight|: values in [-1, 1]."""
    top = np.abs(w).max(axis=(0, 1, 2), keepdims=True)
    return np.where(top > 0, w / np.where(top > 0, top, 1.0), 0.0)


def _tiles(tiles: list[np.ndarray], cols: int, gap: int = 3) -> np.ndarray:
    """Equal tiles [kh, kw(, 3)] in a grid, each enlarged by a whole factor (sharp weights) so
    the grid is about PANEL_WIDTH pixels wide; `gap` pixels of NaN (RGB: white) between them."""
    kh, kw = tiles[0].shape[:2]
    f = max(1, min((PANEL_WIDTH - (cols - 1) * gap) // (cols * kw), 24))
    th, tw = kh * f, kw * f
    rows = -(-len(tiles) // cols)
    shape = (rows * (th + gap) - gap, cols * (tw + gap) - gap, *tiles[0].shape[2:])
    out = np.full(shape, 1.0 if tiles[0].ndim == 3 else np.nan)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        big = np.repeat(np.repeat(t, f, axis=0), f, axis=1)
        out[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = big
    return out


def _grid(k: Kernel, w: np.ndarray) -> tuple[np.ndarray, str]:
    """The mosaic of `w` (the weights or their change) in [-1, 1] (RGB: [0, 1]), and its legend."""
    if k.mode == "rgb":
        chosen = _order(k, TILES_SHOWN)
        u = _unit(w[..., chosen])
        tiles = [0.5 + 0.5 * u[..., i] for i in range(len(chosen))]  # grey is zero
        return _tiles(tiles, min(8, len(tiles))), f"{len(chosen)} filters as RGB patches"
    if k.mode == "grid":
        chosen = _order(k, TILES_SHOWN)
        u = _unit(w[..., chosen])
        tiles = [u[:, :, 0, i] for i in range(len(chosen))]
        return _tiles(tiles, min(16, len(tiles))), f"{len(chosen)} one-channel filters"
    chosen = _order(k, FILTERS_SHOWN)
    moved = k.weights if k.initial is None else k.weights - k.initial
    channel_norm = np.sqrt((moved[..., chosen] ** 2).sum(axis=(0, 1, 3)))
    channels = np.sort(np.argsort(-channel_norm, kind="stable")[:CHANNELS_SHOWN])
    u = _unit(w[..., chosen])
    tiles = [u[:, :, c, f] for f in range(len(chosen)) for c in channels]
    what = f"{len(chosen)} filters (rows) x {len(channels)} of their input channels (columns)"
    return _tiles(tiles, len(channels)), what


def panel(k: Kernel, w: np.ndarray) -> tuple[np.ndarray, str]:
    """The mosaic as uint8 RGB, about PANEL_WIDTH pixels wide, and what it shows."""
    big, what = _grid(k, w)
    if k.mode == "rgb":
        return (np.clip(big, 0, 1) * 255).astype(np.uint8), what
    return raster.coloured(big, DIVERGING, Normalize(-1.0, 1.0, clip=True)), what


def plot_filters(found: list[Kernel], path: Path, title: str) -> Path:
    drawn = []
    for k in found:
        pair = [panel(k, k.weights)]
        if k.initial is not None:
            pair.append(panel(k, k.weights - k.initial))
        drawn.append(pair)
    heights = [max(p[0].shape[0] for p in pair) / DPI + 0.75 for pair in drawn]
    sheet = Sheet(0.8 + sum(heights))
    y = sheet.band(0.8)
    sheet.text(WIDTH / 2, y + 0.15, title, ha="center", fontsize=11, fontweight="bold")
    for k, pair, height in zip(found, drawn, heights, strict=True):
        y = sheet.band(height) + 0.15
        top = y + height - 0.15
        kh, kw, cin, cout = k.weights.shape
        change = k.relative_change
        moved = (
            f"; training moved it {change:.1%} of its initial norm" if change is not None else ""
        )
        sheet.text(0.2, top - 0.2, f"{k.layer.name} ({k.layer.step.kind}): {cout} filters "
                   f"{kh}x{kw}x{cin}{moved}", fontsize=9.5, fontweight="bold")  # fmt: skip
        for (image, what), x, name in zip(
            pair, (0.2, 6.0), ("weights", "change since init"), strict=False
        ):
            sheet.text(x, top - 0.42, f"{name}: {what}", fontsize=8.5)
            sheet.image(image, x, top - 0.52 - image.shape[0] / DPI)
        bar_h = min(pair[0][0].shape[0] / DPI, 2.0)
        if k.mode == "rgb":
            sheet.text(11.2, top - 0.52, "grey: 0\nbrighter:\npositive\ndarker:\nnegative",
                       va="top", fontsize=7.5)  # fmt: skip
        else:
            sheet.bar(DIVERGING, 11.2, top - 0.52 - bar_h, bar_h,
                      [(0, "-1"), (0.5, "0"), (1, "1")], "w / max|w| of its filter")  # fmt: skip
    return sheet.save(path)
