"""Pictures as RGB arrays, drawn with numpy at their final pixel size.

explain's figures place these with `figimage` (exact pixels, no axes): building one axes per
panel, with its ticks and layout, was most of a figure's time (measured: 0.65 s a figure with
axes, the budget being 8 figures in well under 5 s). Text too is drawn once into a raster by
matplotlib's Agg renderer and reused. Colour maps are matplotlib's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.colors import Normalize
from matplotlib.font_manager import FontProperties

CAM_CMAP = "jet"
CAM_ALPHA = 0.45  # the heat map's weight over the image


def rgb(pixels: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] from the model's uint8 input (grayscale repeated)."""
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to (rows, columns): the model's real pixels, not a blur."""
    h, w = image.shape[:2]
    rows = np.minimum(np.arange(size[0]) * h // size[0], h - 1)
    cols = np.minimum(np.arange(size[1]) * w // size[1], w - 1)
    return image[np.ix_(rows, cols)]


def fit(shape: tuple[int, ...], side: int) -> tuple[int, int]:
    """(rows, columns) of an image of `shape` scaled so its longer side is `side` pixels."""
    h, w = shape[:2]
    return (side, max(1, round(side * w / h))) if h >= w else (max(1, round(side * h / w)), side)


def coloured(values: np.ndarray, cmap: str, norm: Normalize | None = None) -> np.ndarray:
    """uint8 RGB of `values` through a colour map (NaN: white)."""
    cm = colormaps[cmap].with_extremes(bad="white")
    v = (norm or Normalize(0.0, 1.0, clip=True))(values)
    return (cm(v)[..., :3] * 255).astype(np.uint8)


def blend(base: np.ndarray, heat: np.ndarray, cmap: str = CAM_CMAP, alpha: float = CAM_ALPHA):
    """`heat` ([0, 1], the base's size) coloured and laid over `base` (uint8 RGB)."""
    top = coloured(heat, cmap).astype(np.float64)
    return (base * (1 - alpha) + top * alpha).round().astype(np.uint8)


def box(image: np.ndarray, top: int, left: int, bottom: int, right: int, colour, width: int = 2):
    """Draw a rectangle's outline (inclusive pixel bounds) in place; returns the image."""
    h, w = image.shape[:2]
    t, b = max(top, 0), min(bottom, h - 1)
    lo, r = max(left, 0), min(right, w - 1)
    for k in range(width):
        image[min(t + k, b), lo : r + 1] = colour
        image[max(b - k, t), lo : r + 1] = colour
        image[t : b + 1, min(lo + k, r)] = colour
        image[t : b + 1, max(r - k, lo)] = colour
    return image


def dashed_box(image: np.ndarray, top: int, left: int, bottom: int, right: int, colour):
    """A 1-pixel dashed outline (dashes of 4, gaps of 3) in place."""
    h, w = image.shape[:2]
    dash = (np.arange(max(h, w)) % 7) < 4
    for y in (max(top, 0), min(bottom, h - 1)):
        xs = np.arange(max(left, 0), min(right, w - 1) + 1)
        image[y, xs[dash[xs]]] = colour
    for x in (max(left, 0), min(right, w - 1)):
        ys = np.arange(max(top, 0), min(bottom, h - 1) + 1)
        image[ys[dash[ys]], x] = colour
    return image


def plus(image: np.ndarray, row: int, col: int, arm: int = 6, colour=(255, 255, 255)):
    """A '+' marker with a dark outline, in place."""
    h, w = image.shape[:2]
    for c, a, t in (((0, 0, 0), arm + 1, 2), (colour, arm, 1)):
        image[max(row - t, 0) : min(row + t + 1, h), max(col - a, 0) : min(col + a + 1, w)] = c
        image[max(row - a, 0) : min(row + a + 1, h), max(col - t, 0) : min(col + t + 1, w)] = c
    return image


def to_panel(image_px: float, scale: float) -> int:
    """An image pixel coordinate (its centre) in a panel scaled by `scale`."""
    return int((image_px + 0.5) * scale)


def gradient_bar(cmap: str, size: tuple[int, int]) -> np.ndarray:
    """A vertical colour bar of `size` pixels, the colour map's top at the top."""
    levels = np.linspace(1.0, 0.0, size[0])[:, None].repeat(size[1], axis=1)
    return coloured(levels, cmap)


# A field smaller than this share of the image is shown zoomed: a 3x3 first-layer field on a
# 64-pixel image is 6 pixels of a 120-pixel panel, a dot (seen on the kernel_size sweep).
ZOOM_FACTOR = 3  # the window is this many times the field's side ...
ZOOM_LEAST = 16  # ... and at least this many input pixels


def zoom_window(
    field: tuple[int, int, int, int], shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """(top, left, rows, columns) of the image to show around a receptive field `field`
    (inclusive input pixels, perhaps past the border): the whole image unless the field is small."""
    h, w = shape[:2]
    top, left, bottom, right = field
    side = max(ZOOM_LEAST, ZOOM_FACTOR * max(bottom - top + 1, right - left + 1))
    if side >= min(h, w):
        return 0, 0, h, w
    # centred on the field, moved inside the image
    t = min(max((top + bottom + 1) // 2 - side // 2, 0), h - side)
    lo = min(max((left + right + 1) // 2 - side // 2, 0), w - side)
    return t, lo, side, side


@dataclass(frozen=True)
class FieldPanels:
    """The theoretical box on the image and the effective field, cropped alike and scaled."""

    theory: np.ndarray
    effective: np.ndarray | None
    window: tuple[int, int, int, int]  # zoom_window's
    scale: float  # panel pixels per input pixel
    zoomed: bool

    def at(self, row: float, col: float) -> tuple[int, int]:
        """An input pixel's centre in the panels."""
        t, lo = self.window[:2]
        return to_panel(row - t, self.scale), to_panel(col - lo, self.scale)

    def caption(self) -> str:
        return f"zoomed: {self.window[2]}x{self.window[3]} pixels" if self.zoomed else ""


def field_panels(pixels: np.ndarray, erf: np.ndarray | None, field: tuple[int, int, int, int],
                 side: int, colour, erf_cmap: str, erf_colour) -> FieldPanels:  # fmt: skip
    """Both panels of a receptive field, `side` pixels on the longer side. The effective field
    is drawn on a square-root scale, so its tails (a few percent of its peak) stay visible."""
    t, lo, rows, cols = window = zoom_window(field, pixels.shape)
    size = fit((rows, cols), side)
    scale = size[0] / rows
    top, left, bottom, right = field
    bounds = (int((top - t) * scale), int((left - lo) * scale),
              int((bottom - t + 1) * scale) - 1, int((right - lo + 1) * scale) - 1)  # fmt: skip
    crop = rgb(pixels)[t : t + rows, lo : lo + cols]
    theory = box(resize(crop, size), *bounds, colour)
    effective = None
    if erf is not None and erf.max() > 0:
        shown = coloured(np.sqrt(erf[t : t + rows, lo : lo + cols] / erf.max()), erf_cmap)
        effective = dashed_box(resize(shown, size), *bounds, erf_colour)
    return FieldPanels(theory, effective, window, scale, (rows, cols) != pixels.shape[:2])


# --- text ------------------------------------------------------------------------------------

_LINE = 1.25  # line height, in font sizes


@functools.lru_cache(maxsize=4096)
def text_line(s: str, size: float, weight: str, family: str, colour: str, dpi: int) -> tuple:
    """One line of text as straight-alpha RGBA (uint8) and its descent in pixels, drawn by
    matplotlib's Agg renderer. Cached: the captions repeated on every image are drawn once
    (glyph rasterising is most of a figure's drawing time)."""
    prop = FontProperties(family=family, size=size, weight=weight)
    width, height, descent = RendererAgg(1, 1, dpi).get_text_width_height_descent(s, prop, False)
    w, h = max(1, math.ceil(width) + 2), max(1, math.ceil(height) + 2)
    renderer = RendererAgg(w, h, dpi)
    gc = renderer.new_gc()
    gc.set_foreground(colour)
    renderer.draw_text(gc, 1, h - 1 - descent, s, prop, 0)
    pixels = np.asarray(renderer.buffer_rgba()).copy()
    pixels.setflags(write=False)
    return pixels, descent


def text_block(
    s: str, size: float, weight: str, family: str, colour: str, dpi: int, align: str = "left"
) -> tuple:
    """Several lines (split on newlines) aligned left, center or right, as RGBA; and the last
    line's descent."""
    lines = [text_line(line or " ", size, weight, family, colour, dpi) for line in s.split("\n")]
    step = round(_LINE * size * dpi / 72)
    width = max(p.shape[1] for p, _ in lines)
    height = step * (len(lines) - 1) + lines[-1][0].shape[0]
    out = np.zeros((height, width, 4), dtype=np.uint8)
    for i, (p, _) in enumerate(lines):
        top = i * step
        rows = min(p.shape[0], height - top)
        out[top : top + rows, : p.shape[1]] = np.maximum(
            out[top : top + rows, : p.shape[1]], p[:rows]
        )
    return out, lines[-1][1]
