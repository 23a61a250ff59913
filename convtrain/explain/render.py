"""One PNG per explained image: prediction, Grad-CAM, receptive fields, feature maps.

A `Sheet` is a picture laid out by hand in inches, top to bottom; images and text are rasters
(convtrain.explain.raster) placed at exact pixels: matplotlib's layout engine and axes made a
figure take two seconds, this a fraction of one. Every colour has its colour bar. Written by
the project's saver.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import convtrain.plots  # noqa: F401 - selects the Agg backend before any figure exists
from convtrain.explain import geometry, raster
from convtrain.explain.measure import scaled
from convtrain.explain.records import GradCam, ImageExplanation
from convtrain.model.plan import Plan
from convtrain.plots.save import save_image

ERF_CMAP, FEATURE_CMAP = "magma", "viridis"
CHANNELS_SHOWN = 8
DPI = 100
WIDTH = 12.0  # inches: 1200 pixels, the report's page width
PANEL = 190  # pixels on an image panel's longer side
TILE = 118  # pixels on a feature-map tile's longer side
GAP = 4  # pixels between feature-map tiles
CHAR_IN = 0.065  # inches a 7.5-point character takes along a colour bar's label
YELLOW, CYAN = (255, 221, 0), (0, 230, 255)
_ROLE = {"predicted": "predicted", "true": "true class", "requested": "--class"}


@dataclass(frozen=True)
class Picture:
    """Everything one image's figure draws (arrays from the probe, numbers from measure)."""

    pixels: np.ndarray  # uint8 [H, W, C]
    cams: dict[str, np.ndarray]  # role -> the layer's map [h, w], not rescaled
    erf: np.ndarray | None  # [H, W]
    features: dict[str, np.ndarray]  # layer name -> [h, w, channels]
    record: ImageExplanation
    title: str


class Sheet:
    """A picture filled top to bottom: `band` reserves a strip of inches; x and y in inches.

    Everything is drawn into one RGB array at its final pixels, text included (rasterised
    once by matplotlib's Agg renderer, convtrain.explain.raster), then written as a PNG: no
    axes, no layout engine, nothing composited twice (measured: a figure went from 2 s with
    axes and constrained layout to about 0.2 s).
    """

    def __init__(self, height: float, width: float = WIDTH):
        self.width, self.height, self.top = width, height, height
        self.canvas = np.full((round(height * DPI), round(width * DPI), 3), 255, dtype=np.uint8)

    def band(self, height: float) -> float:
        self.top -= height
        return self.top

    def image(self, pixels: np.ndarray, x: float, y: float) -> None:
        """`pixels` (uint8 RGB, or RGBA blended by its alpha) with its bottom-left at (x, y)."""
        self._paste(pixels, round(x * DPI), round(y * DPI))

    def _paste(self, pixels: np.ndarray, left: int, bottom: int) -> None:
        h, w = pixels.shape[:2]
        top = self.canvas.shape[0] - bottom - h
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + h, self.canvas.shape[0]), min(left + w, self.canvas.shape[1])
        if r0 >= r1 or c0 >= c1:
            return
        src = pixels[r0 - top : r1 - top, c0 - left : c1 - left]
        dst = self.canvas[r0:r1, c0:c1]
        if src.shape[-1] == 4:
            alpha = src[..., 3:4].astype(np.float32) / 255.0
            dst[:] = (src[..., :3] * alpha + dst * (1.0 - alpha)).round().astype(np.uint8)
        else:
            dst[:] = src

    def save(self, path: Path) -> Path:
        """The picture as a PNG, through the project's saver."""
        return save_image(self.canvas, path, dpi=DPI)

    def text(
        self, x: float, y: float, s: str, *, fontsize: float = 8.5, fontweight: str = "normal",
        family: str = "sans-serif", color: str = "#222222", ha: str = "left",
        va: str = "baseline", rotation: int = 0,
    ) -> None:  # fmt: skip
        block, descent = raster.text_block(s, fontsize, fontweight, family, color, DPI, ha)
        if rotation == 90:
            block, descent = np.rot90(block), 0.0
        h, w = block.shape[:2]
        left = x * DPI - {"left": 0, "center": w / 2, "right": w}[ha]
        bottom = y * DPI - {"baseline": descent, "bottom": 0, "center": h / 2, "top": h}[va]
        self._paste(block, round(left), round(bottom))

    def caption(self, x: float, y: float, side: float, text: str) -> None:
        """A title centred over the panel of `side` inches at (x, y)."""
        self.text(x + side / 2, y + side + 0.08, text, ha="center", fontsize=9)

    def bar(self, cmap: str, x: float, y: float, h: float, ticks, label: str) -> None:
        """A vertical colour bar: `ticks` are (position in [0, 1] of the bar, text)."""
        self.image(raster.gradient_bar(cmap, (round(h * DPI), 12)), x, y)
        for pos, text in ticks:
            self.text(x + 0.16, y + pos * h, text, va="center", fontsize=7.5)
        # A short bar (one row of feature maps) cannot hold a long label on one line: wrapped,
        # so it is not cut at the sheet's edge (seen on a one-layer run).
        lines = textwrap.wrap(label, max(10, int(h / CHAR_IN)))
        self.text(x + 0.55, y + h / 2, "\n".join(lines), rotation=90, va="center", ha="center",
                  fontsize=7.5)  # fmt: skip


def short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def panels(rec: ImageExplanation, cams: dict) -> list[tuple[GradCam, str]]:
    """The Grad-CAM maps to draw: a true-class map equal to the predicted one is drawn once."""
    drawn: dict[str, tuple[GradCam, list[str]]] = {}
    for g in rec.gradcam:
        if g.role in cams:
            drawn.setdefault(g.class_name, (g, []))[1].append(_ROLE[g.role])
    return [(g, ", ".join(roles)) for g, roles in drawn.values()]


def cam_panel(pixels: np.ndarray, cam: np.ndarray, g: GradCam, plan: Plan, layer: str, side: int):
    """The image with the class's Grad-CAM over it and a + at its peak, `side` pixels."""
    size = raster.fit(pixels.shape, side)
    heat = scaled(geometry.upsample(cam, plan, layer))
    out = raster.blend(raster.resize(raster.rgb(pixels), size), raster.resize(heat, size))
    if g.peak is not None:
        scale = size[0] / pixels.shape[0]
        raster.plus(out, raster.to_panel(g.peak[0], scale), raster.to_panel(g.peak[1], scale))
    return out


def top_k(sheet: Sheet, rec: ImageExplanation, x: float, y: float, height: float) -> None:
    """The top-k probabilities as bars on a grey 100% track (green: the true class)."""
    preds = rec.predictions
    label_w, track = 1.2, 1.25
    sheet.text(x + (label_w + track) / 2, y + height + 0.08, f"top-{len(preds)} (green: true class)",
               ha="center", fontsize=9)  # fmt: skip
    row = height / max(len(preds), 1)
    for i, p in enumerate(preds):
        yc = y + height - (i + 0.5) * row
        bar_h = max(4, round(min(row * 0.6, 0.22) * DPI))
        bar = np.full((bar_h, round(track * DPI), 3), 235, dtype=np.uint8)
        colour = (26, 152, 80) if p.class_name == rec.true_class else (140, 140, 140)
        bar[:, : round(track * DPI * p.probability)] = colour
        sheet.image(bar, x + label_w, yc - bar_h / DPI / 2)
        sheet.text(
            x + label_w - 0.06, yc, short(p.class_name, 16), ha="right", va="center", fontsize=8
        )
        sheet.text(
            x + label_w + track + 0.06, yc, f"{p.probability:.1%}", va="center", fontsize=7.5
        )


def header(sheet: Sheet, pic: Picture, plan: Plan) -> None:
    rec = pic.record
    side = PANEL / DPI
    y = sheet.band(side + 0.75) + 0.15
    sheet.text(0.2, y + side + 0.4, f"Grad-CAM on {rec.gradcam_layer}: where the evidence for "
               "each class lies (+: the peak)", fontsize=9.5, fontweight="bold")  # fmt: skip
    h, w = pic.pixels.shape[:2]
    sheet.image(raster.resize(raster.rgb(pic.pixels), raster.fit(pic.pixels.shape, PANEL)), 0.2, y)
    sheet.caption(0.2, y, side, f"the model's input ({h}x{w})")
    top_k(sheet, rec, 2.45, y + 0.05, side - 0.3)
    x = 5.35
    for g, roles in panels(rec, pic.cams):
        sheet.image(
            cam_panel(pic.pixels, pic.cams[g.role], g, plan, rec.gradcam_layer, PANEL), x, y
        )
        sheet.caption(x, y, side, f"{short(g.class_name)} ({roles})")
        if g.peak is None:
            sheet.text(x + side / 2, y + side / 2, "no positive\nevidence", ha="center", va="center",
                       color="white", fontsize=9, fontweight="bold")  # fmt: skip
        x += side + 0.12
    ticks = [(0, "0"), (0.5, "0.5"), (1, "1")]
    sheet.bar(raster.CAM_CMAP, x + 0.05, y, side, ticks, "Grad-CAM / its maximum")


def fields(sheet: Sheet, pic: Picture, plan: Plan) -> None:
    rf = pic.record.receptive_field
    side = PANEL / DPI
    y = sheet.band(side + 0.75) + 0.15
    t, e = rf.theoretical, rf.effective
    erf = pic.erf if pic.erf is not None and e.support is not None else None
    shown = raster.field_panels(pic.pixels, erf, t.box, PANEL, YELLOW, ERF_CMAP, CYAN)
    zoom = f" (both panels {shown.caption()} around it)" if shown.zoomed else ""
    sheet.text(0.2, y + side + 0.4, f"Receptive field of {rf.layer}'s unit {rf.unit}: theoretical "
               f"(yellow, inspect's arithmetic) and effective (Luo et al. 2016){zoom}",
               fontsize=9.5, fontweight="bold")  # fmt: skip
    rows, cols = geometry.centres(plan, rf.layer)
    cr, cc = shown.at(rows[rf.unit[0]], cols[rf.unit[1]])
    theory = shown.theory
    theory[max(cr - 2, 0) : cr + 3, max(cc - 2, 0) : cc + 3] = YELLOW
    sheet.image(theory, 0.2, y)
    sheet.caption(0.2, y, side, f"theoretical: {t.size[0]}x{t.size[1]}")
    x = 2.4
    if shown.effective is not None:
        sheet.image(shown.effective, x, y)
        title = f"effective: 90% in {e.size_90[0]}x{e.size_90[1]}"
        ticks = [(np.sqrt(v), f"{v:g}") for v in (0, 0.05, 0.25, 0.5, 1)]
        sheet.bar(ERF_CMAP, x + side + 0.08, y, side, ticks, "|d unit / d pixel| / max")
    else:
        sheet.text(x + side / 2, y + side / 2, "\n".join(textwrap.wrap(e.note or "not computed", 26)),
                   ha="center", va="center")  # fmt: skip
        title = "effective"
    sheet.caption(x, y, side, title)
    sheet.text(5.35, y + side, numbers(pic.record), va="top", family="monospace")


def numbers(rec: ImageExplanation) -> str:
    best = rec.predictions[0]
    lines = [
        f"predicted   {short(best.class_name, 30)} ({best.probability:.1%})",
        f"true class  {rec.true_class or '(not a file of the split)'}",
    ]
    for g in rec.gradcam:
        where = f"row {g.peak[0]}, column {g.peak[1]}" if g.peak else "none (no positive evidence)"
        lines.append(f"peak {g.role + ':':<10} {where}")
    t, e = rec.receptive_field.theoretical, rec.receptive_field.effective
    lines.append(
        f"theoretical {t.size[0]}x{t.size[1]}: rows {t.box[0]}-{t.box[2]}, columns {t.box[1]}-{t.box[3]}"
    )
    if e.support is not None:
        lines.append(f"effective   90% of |gradient| in {e.size_90[0]}x{e.size_90[1]}, any in "
                     f"{e.support[0]}x{e.support[1]}")  # fmt: skip
        lines.append(f"            {e.inside_share:.1%} of it inside the theoretical field")
    lines.append("(dashed cyan: the theoretical field on the effective one)")
    return "\n".join(lines)


def strongest(maps: np.ndarray, n: int = CHANNELS_SHOWN) -> tuple[np.ndarray, np.ndarray]:
    """The n channels of [h, w, c] with the most activation energy (sum of squares), and shares."""
    energy = (maps.astype(np.float64) ** 2).sum(axis=(0, 1))
    order = np.argsort(-energy, kind="stable")[:n]
    total = energy.sum()
    return order, energy[order] / total if total > 0 else np.zeros(len(order))


def mosaic(maps: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """[h, w, n] channels side by side, each resized to `tile` pixels and scaled to its own
    range, in the feature colour map (uint8 RGB); white between tiles."""
    n = maps.shape[-1]
    ph, pw = tile
    out = np.full((ph, n * pw + (n - 1) * GAP), np.nan)
    for i in range(n):
        m = maps[..., i].astype(np.float64)
        lo, hi = m.min(), m.max()
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        out[:, i * (pw + GAP) : i * (pw + GAP) + pw] = raster.resize(m, tile)
    return raster.coloured(out, FEATURE_CMAP)


def feature_height(maps: np.ndarray) -> float:
    return raster.fit(maps.shape, TILE)[0] / DPI + 0.55


def feature_row(sheet: Sheet, layer: geometry.Layer, maps: np.ndarray) -> None:
    order, share = strongest(maps)
    ph, pw = raster.fit(maps.shape, TILE)
    y = sheet.band(feature_height(maps)) + 0.2
    sheet.text(0.2, y + ph / DPI + 0.1, f"{layer.caption()}: the {len(order)} of "
               f"{maps.shape[-1]} channels with the most energy", fontsize=9)  # fmt: skip
    sheet.image(mosaic(maps[..., order], (ph, pw)), 0.2, y)
    for i, (c, s) in enumerate(zip(order, share, strict=True)):
        sheet.text(0.2 + (i * (pw + GAP) + pw / 2) / DPI, y - 0.15, f"#{c}: {s:.0%}",
                   fontsize=7.5, ha="center", color="#444444")  # fmt: skip


def render(pic: Picture, plan: Plan, feature_layers: list[geometry.Layer], path: Path) -> Path:
    rows = [layer for layer in feature_layers if layer.name in pic.features]
    heights = [feature_height(pic.features[layer.name]) for layer in rows]
    side = PANEL / DPI
    sheet = Sheet(0.75 + 2 * (side + 0.75) + (0.4 if rows else 0) + sum(heights) + 0.15)
    y = sheet.band(0.75)
    sheet.text(WIDTH / 2, y + 0.12, pic.title, ha="center", fontsize=11, fontweight="bold")
    header(sheet, pic, plan)
    fields(sheet, pic, plan)
    if rows:
        y = sheet.band(0.4)
        sheet.text(0.2, y + 0.1, "Feature maps of every convolution and block, on this image "
                   "(under each: #channel and its share of the layer's activation energy)",
                   fontsize=9.5, fontweight="bold")  # fmt: skip
        start = sheet.top
        for layer in rows:
            feature_row(sheet, layer, pic.features[layer.name])
        height = min(start - sheet.top - 0.4, 4.0)
        sheet.bar(FEATURE_CMAP, WIDTH - 0.85, start - height - 0.2, height,
                  [(0, "min"), (1, "max")], "each channel from its minimum to its maximum")  # fmt: skip
    return sheet.save(path)
