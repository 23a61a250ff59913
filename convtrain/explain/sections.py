"""Grad-CAM where users already look: `convtrain evaluate` (and report.html), and the report of
a sweep (`convtrain compare`): library functions that take what the caller has loaded and write
a figure, so the evaluation and the comparison need one call each.

Imports neither convtrain.evaluate nor convtrain.experiments (they call this module).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError
from convtrain.explain import geometry, raster
from convtrain.explain.measure import scaled
from convtrain.explain.render import DPI, Sheet, short
from convtrain.model.plan import Plan, plan_model

BATCH = 32
CELL = 110  # pixels per image in the grids
MAX_CLASSES = 24  # more classes: those with the most mistakes
GREEN, RED = "#1a7f37", "#b2182b"


def _plan(experiment: Experiment, num_classes: int) -> Plan:
    plan = plan_model(experiment, num_classes)
    if plan.problems:
        raise ConfigError(plan.problems, source="model")
    return plan


# The probe of the last model asked about: an evaluation draws two figures from one model, and
# tracing the probe's graph is most of their cost. Holds one model until the next is asked for.
_last: list[Any] = []


def _probe(model: Any, target: geometry.Layer) -> Any:
    from convtrain.explain.probe import Probe  # imports TensorFlow: only when maps are drawn

    if not _last or _last[0] is not model or _last[1] != target.name:
        _last[:] = [model, target.name, Probe(model, target)]
    return _last[2]


def gradcam_maps(
    model: Any, plan: Plan, pixels: np.ndarray, classes: np.ndarray, layer: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Grad-CAM of `classes[i]` on image i, spread over the image and scaled to [0, 1]
    ([N, H, W]), with the model's probabilities; on `layer` (default: the last spatial one)."""
    target = geometry.choose_layer(plan, layer)
    probe = _probe(model, target)
    heats, probs = [], []
    for start in range(0, len(pixels), BATCH):
        batch = np.asarray(pixels[start : start + BATCH], dtype=np.float32) / 255.0
        wanted = np.asarray(classes[start : start + BATCH])
        n = len(batch)
        # Every batch padded to BATCH images: one traced graph serves them all.
        batch = np.concatenate([batch, np.zeros((BATCH - n, *batch.shape[1:]), np.float32)])
        probed = probe(batch, {"wanted": np.concatenate([wanted, np.full(BATCH - n, -1)])})
        heats += [
            scaled(geometry.upsample(c, plan, target.name)) for c in probed.cams["wanted"][:n]
        ]
        probs.append(probed.probs[:n])
    return np.stack(heats), np.concatenate(probs), target.name


def spatial(plan: Plan) -> bool:
    """Whether the model has a layer Grad-CAM can work on (a dense-only model has none)."""
    return any(step.out.spatial for step in plan.steps)


def built_from(model: Any, plan: Plan) -> bool:
    """Whether `model` has the plan's layers by name (any model `convtrain train` saved does;
    a model made another way cannot be probed by the plan's names)."""
    names = {layer.name for layer in getattr(model, "layers", ())}
    return all(step.name in names for step in plan.leaves())


def explainable(model: Any, plan: Plan) -> bool:
    return spatial(plan) and built_from(model, plan)


def with_gradcam(model: Any, experiment: Experiment, images: np.ndarray, classes, num_classes: int):
    """uint8 images [N, H, W, C] with the Grad-CAM of `classes` over them (uint8 RGB), and a
    title line saying so, for the misclassified grid of `convtrain evaluate`; the images as
    they are, and no line, when the model has no spatial layer or not the plan's layers."""
    plan = _plan(experiment, num_classes)
    if not explainable(model, plan):
        return images, ""
    heats, _, layer = gradcam_maps(model, plan, images, np.asarray(classes))
    blended = [raster.blend(raster.rgb(im), h) for im, h in zip(images, heats, strict=True)]
    return np.stack(
        blended
    ), f"\nover each: Grad-CAM of the predicted class on {layer}, red strong, blue none"


def _sample(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, per_class: int):
    """Per class: its most confident correct and misclassified images (indices)."""
    rows = {}
    for c in range(int(max(y_true.max(), y_pred.max())) + 1):
        mine = np.flatnonzero(y_true == c)
        order = mine[np.argsort(-confidence[mine], kind="stable")]
        right = [i for i in order if y_pred[i] == c][:per_class]
        wrong = [i for i in order if y_pred[i] != c][:per_class]
        if right or wrong:
            rows[c] = (right, wrong, int(np.sum(y_pred[mine] != c)))
    return rows


def looks_at(
    model: Any,
    experiment: Experiment,
    classes: Sequence[str],
    images: Any,
    y_true: np.ndarray,
    probs: np.ndarray,
    path: Path,
    title: str,
    per_class: int = 2,
) -> Path | None:
    """`plots/what_the_network_looks_at.png`: per class, Grad-CAM of the predicted class on
    its most confident correct images beside its most confident mistakes. `images(i)` gives
    the uint8 pixels of image i of the evaluated split. None when there is nothing to show."""
    plan = _plan(experiment, len(classes))
    y_pred = np.argmax(probs, axis=1)
    confidence = probs.max(axis=1)
    rows = _sample(np.asarray(y_true), y_pred, confidence, per_class)
    if not rows or not explainable(model, plan):
        return None
    chosen = sorted(rows)
    note = ""
    if len(chosen) > MAX_CLASSES:
        chosen = sorted(sorted(rows, key=lambda c: (-rows[c][2], c))[:MAX_CLASSES])
        note = f"; the {MAX_CLASSES} classes with the most mistakes of {len(rows)}"
    index = [i for c in chosen for i in (*rows[c][0], *rows[c][1])]
    pixels = np.stack([images(i) for i in index])
    heats, _, layer = gradcam_maps(model, plan, pixels, y_pred[index])
    drawn = dict(zip(index, range(len(index)), strict=True))
    size = raster.fit(pixels.shape[1:], CELL)
    cell_w, cell_h = size[1] / DPI + 0.1, size[0] / DPI + 0.42
    label_w = 1.5
    width = label_w + 2 * per_class * cell_w + 0.35 + 1.0
    sheet = Sheet(1.15 + cell_h * len(chosen) + 0.1, width=width)
    y = sheet.band(1.15)
    sheet.text(width / 2, y + 0.75, f"What the network looks at - {title}", ha="center",
               fontsize=10.5, fontweight="bold")  # fmt: skip
    sheet.text(width / 2, y + 0.5, f"Grad-CAM of the predicted class on {layer} (red: where its "
               f"evidence lies){note}", ha="center", fontsize=8.5)  # fmt: skip
    x_wrong = label_w + per_class * cell_w + 0.35
    sheet.text(label_w, y + 0.1, "correct, most confident", fontsize=9, color=GREEN)
    sheet.text(x_wrong, y + 0.1, "misclassified, most confident", fontsize=9, color=RED)
    top = sheet.top
    for c in chosen:
        right, wrong, mistakes = rows[c]
        y = sheet.band(cell_h) + 0.32
        sheet.text(0.15, y + size[0] / DPI / 2, f"{short(classes[c], 18)}\n({mistakes} wrong)",
                   va="center", fontsize=8)  # fmt: skip
        for x0, picked, colour in ((label_w, right, GREEN), (x_wrong, wrong, RED)):
            if not picked:  # said, not left blank: a reader would take a gap for a fault
                none = "none correct" if colour == GREEN else "none misclassified"
                sheet.text(x0 + 0.1, y + size[0] / DPI / 2, none, va="center", fontsize=8,
                           color="#777777")  # fmt: skip
            for j, i in enumerate(picked):
                k = drawn[i]
                cell = raster.blend(
                    raster.resize(raster.rgb(pixels[k]), size), raster.resize(heats[k], size)
                )
                x = x0 + j * cell_w
                sheet.image(cell, x, y)
                label = f"{short(classes[y_pred[i]], 13)} {confidence[i]:.0%}"
                sheet.text(
                    x + size[1] / DPI / 2, y - 0.16, label, ha="center", fontsize=7.5, color=colour
                )
    height = min(top - sheet.top - 0.3, 3.0)
    sheet.bar(raster.CAM_CMAP, width - 0.95, top - height - 0.1, height,
              [(0, "0"), (0.5, "0.5"), (1, "1")], "Grad-CAM / its maximum")  # fmt: skip
    return sheet.save(path)


# --- sweeps ---------------------------------------------------------------------------------

_LAYER_KEY = re.compile(r"^(model\.layers\[\d+\](?:\.body\[\d+\]|\.branches\[\d+\]\[\d+\])*)\.")
_DEFAULTS_KEY = re.compile(r"^model\.defaults\.(\w+)\.")


def changed_layer(plan: Plan, keys: Sequence[str]) -> tuple[geometry.Layer, str]:
    """The layer a sweep changed (from compare's differing config keys), and why it is shown.

    A key of one layer names it; a `model.defaults.<type>` key changes every layer of that
    type: the last one is shown, where the changes add up. Otherwise the last spatial layer.
    """
    spatial = [layer for layer in geometry.layers(plan) if layer.spatial and not layer.step.added]
    for key in keys:
        m = _LAYER_KEY.match(key)
        if m:
            found = [layer for layer in spatial if layer.step.path == m.group(1)]
            if found:
                return found[0], f"{key.removeprefix(m.group(1) + '.')} of {m.group(1)} differs"
        m = _DEFAULTS_KEY.match(key)
        if m:
            found = [layer for layer in spatial if layer.step.kind == m.group(1)]
            if found:
                return found[-1], f"{key} differs: the last {m.group(1)} shown"
    return geometry.choose_layer(plan, None), "no layer differs: the last spatial layer shown"
