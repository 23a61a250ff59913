"""The same test images across the trials of a sweep, side by side (`convtrain compare`).

Two figures for the sweep's report: `compare_gradcam.png` (each trial's Grad-CAM of its
predicted class on a few test images) and `compare_layer.png` (the layer the sweep changed:
its strongest feature maps, and the theoretical beside the effective receptive field of its
centre unit, so kernel 3/5/7, dilation 1/2 or a stride against a pool are seen, not only read).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convtrain.data.decode import decode_image
from convtrain.data.index import resolve_root
from convtrain.data.split import Split
from convtrain.explain import geometry, measure, raster
from convtrain.explain.render import DPI, ERF_CMAP, Sheet, mosaic, short, strongest
from convtrain.explain.sections import GREEN, RED, changed_layer
from convtrain.model.plan import Plan, plan_model
from convtrain.rundir import RunDir
from convtrain.train.loading import check_model, load_experiment, load_model

IMAGES = 4  # test images, one per class (the first classes of the first trial's split)
CELL = 120  # pixels per image
CHANNELS = 6
FILES = ("compare_gradcam.png", "compare_layer.png")


@dataclass
class Trial:
    label: str
    plan: Plan
    layer: geometry.Layer
    why: str
    cam_layer: str
    pixels: np.ndarray  # uint8 [N, H, W, C], the trial's own preprocessing
    probs: np.ndarray
    cams: np.ndarray  # [N, H, W] in [0, 1]
    features: np.ndarray  # [h, w, c] of the changed layer on the first image
    erf: np.ndarray
    field: Any  # records.ReceptiveField


def _sample(split: Split, n: int) -> list[tuple[str, int]]:
    firsts: dict[int, str] = {}
    for path, label in split.test:
        firsts.setdefault(label, path)
    return [(firsts[c], c) for c in sorted(firsts)[:n]]


def _trial(path: Path, label: str, keys: Sequence[str], sample: list[tuple[str, int]]) -> Trial:
    from convtrain.explain.probe import Probe  # imports TensorFlow, started by compare_section

    run = RunDir.open(path, need=("config", "split", "checkpoint"))
    experiment = load_experiment(run)
    classes = Split.read(run.split).classes
    plan = plan_model(experiment, len(classes))
    model = load_model(run, experiment.eval.checkpoint)
    check_model(model, run.checkpoint(experiment.eval.checkpoint), experiment, len(classes))
    layer, why = changed_layer(plan, keys)
    cam = geometry.choose_layer(plan, None)
    unit = geometry.centre_unit(plan, layer.name)
    d = experiment.data
    root = resolve_root(d)
    pixels = np.stack(
        [decode_image(root / p, d.image_size, d.resize, d.color_mode) for p, _ in sample]
    )
    probed = Probe(model, cam, layer, (layer,), unit)(pixels.astype(np.float32) / 255.0)
    cams = np.stack(
        [measure.scaled(geometry.upsample(c, plan, cam.name)) for c in probed.cams["predicted"]]
    )
    field = measure.receptive_field(probed.erf[0], plan, layer.name, unit)
    return Trial(label, plan, layer, why, cam.name, pixels, probed.probs, cams,
                 probed.features[layer.name][0], probed.erf[0], field)  # fmt: skip


def _cam_figure(trials: list[Trial], classes: Sequence[str], sample, path: Path) -> Path:
    size = raster.fit(trials[0].pixels.shape[1:], CELL)
    label_w, cell_w, cell_h = 2.3, size[1] / DPI + 0.12, size[0] / DPI + 0.45
    width = max(label_w + len(sample) * cell_w + 1.0, 8.0)
    sheet = Sheet(1.0 + cell_h * len(trials) + 0.1, width=width)
    y = sheet.band(1.0)
    sheet.text(width / 2, y + 0.65, "The same test images across the trials: Grad-CAM of each "
               "trial's predicted class", ha="center", fontsize=10.5, fontweight="bold")  # fmt: skip
    for j, (p, c) in enumerate(sample):
        sheet.text(label_w + j * cell_w + size[1] / DPI / 2, y + 0.12,
                   f"{short(Path(p).name, 16)}\ntrue: {short(classes[c], 14)}", ha="center",
                   fontsize=8)  # fmt: skip
    top = sheet.top
    for t in trials:
        y = sheet.band(cell_h) + 0.3
        sheet.text(0.15, y + size[0] / DPI / 2, "\n".join(_wrap(t.label, 28)) + f"\non {t.cam_layer}",
                   va="center", fontsize=8)  # fmt: skip
        for j, (_, c) in enumerate(sample):
            cell = raster.blend(
                raster.resize(raster.rgb(t.pixels[j]), size), raster.resize(t.cams[j], size)
            )
            x = label_w + j * cell_w
            sheet.image(cell, x, y)
            k = int(np.argmax(t.probs[j]))
            sheet.text(x + size[1] / DPI / 2, y - 0.17, f"{short(classes[k], 13)} {t.probs[j, k]:.0%}",
                       ha="center", fontsize=7.5, color=GREEN if k == c else RED)  # fmt: skip
    height = min(top - sheet.top - 0.3, 2.5)
    sheet.bar(raster.CAM_CMAP, width - 0.9, top - height - 0.1, height,
              [(0, "0"), (1, "1")], "Grad-CAM / its max")  # fmt: skip
    return sheet.save(path)


def _wrap(text: str, n: int) -> list[str]:
    return textwrap.wrap(text, n) or [""]


def _layer_figure(trials: list[Trial], image_name: str, path: Path) -> Path:
    size = raster.fit(trials[0].pixels.shape[1:], CELL)
    tile = raster.fit(trials[0].features.shape, 72)
    fmap_w = max(min(CHANNELS, t.features.shape[-1]) for t in trials) * (tile[1] + 4) / DPI
    width = max(2.3 + fmap_w + 0.3 + 2 * (size[1] / DPI + 0.15) + 2.9, 10.0)
    row_h = max(size[0], tile[0]) / DPI + 0.75
    sheet = Sheet(0.9 + row_h * len(trials), width=width)
    y = sheet.band(0.9)
    sheet.text(width / 2, y + 0.55, f"The layer the sweep changed, on {image_name}: its strongest "
               "feature maps, and the receptive field of its centre unit", ha="center",
               fontsize=10.5, fontweight="bold")  # fmt: skip
    sheet.text(width / 2, y + 0.3, "feature maps: each channel from its minimum (dark) to its "
               "maximum (yellow); yellow box: the theoretical field (inspect's arithmetic); right "
               "of it: the effective field", ha="center", fontsize=8.5)  # fmt: skip
    start = sheet.top
    for t in trials:
        y = sheet.band(row_h) + 0.25
        sheet.text(0.15, y + row_h - 0.55, "\n".join(_wrap(t.label, 28)), va="top", fontsize=8)
        sheet.text(2.3, y + row_h - 0.45, f"{t.layer.caption()} ({t.why})", fontsize=8)
        order, _ = strongest(t.features, CHANNELS)
        sheet.image(mosaic(t.features[..., order], tile), 2.3, y + (size[0] - tile[0]) / DPI)
        x = 2.3 + fmap_w + 0.3
        f = t.field
        erf = t.erf if f.effective.support is not None else None
        shown = raster.field_panels(t.pixels[0], erf, f.theoretical.box, max(size), (255, 221, 0),
                                    ERF_CMAP, (0, 230, 255))  # fmt: skip
        sheet.image(shown.theory, x, y)
        x += size[1] / DPI + 0.15
        if shown.effective is not None:
            sheet.image(shown.effective, x, y)
        e, th = f.effective, f.theoretical
        text = [f"theoretical {th.size[0]}x{th.size[1]}"]
        if e.size_90 is not None:
            text.append(f"effective: 90% in {e.size_90[0]}x{e.size_90[1]}")
            text.append(f"{e.inside_share:.0%} inside the theoretical")
        else:
            text.append(e.note or "")
        if shown.zoomed:
            text.append(f"(both {shown.caption()})")
        sheet.text(
            x + size[1] / DPI + 0.15, y + size[0] / DPI, "\n".join(text), va="top", fontsize=8
        )
    height = min(start - sheet.top - 0.4, 2.5)
    ticks = [(np.sqrt(v), f"{v:g}") for v in (0, 0.05, 0.25, 0.5, 1)]
    sheet.bar(
        ERF_CMAP, width - 0.85, start - height - 0.2, height, ticks, "|d unit / d pixel| / max"
    )
    return sheet.save(path)


def compare_section(
    runs: Sequence[tuple[Path, str]], keys: Sequence[str], out_dir: Path
) -> list[Path]:
    """Write FILES into `out_dir` for the runs (path, label), the first trial's test images."""
    from convtrain.tfquiet import import_tensorflow  # compare starts it only for a sweep

    first = RunDir.open(runs[0][0], need=("config", "split", "checkpoint"))
    split = Split.read(first.split)
    sample = _sample(split, IMAGES)
    if not sample:
        return []
    import_tensorflow()
    trials = [_trial(path, label, keys, sample) for path, label in runs]
    return [
        _cam_figure(trials, split.classes, sample, out_dir / FILES[0]),
        _layer_figure(trials, Path(sample[0][0]).name, out_dir / FILES[1]),
    ]
