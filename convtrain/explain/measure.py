"""What the pictures show, as numbers: Grad-CAM peaks and the receptive fields of one unit."""

from __future__ import annotations

import numpy as np

from convtrain.explain import geometry
from convtrain.explain.records import Effective, GradCam, ReceptiveField, Theoretical
from convtrain.model.plan import Plan

MASS = 0.9  # Effective.size_90: the share of the gradient mass an interval must hold


def gradcam(role: str, class_name: str, cam: np.ndarray, plan: Plan, layer: str) -> GradCam:
    peak = geometry.peak_pixel(cam, plan, layer)
    return GradCam(role=role, class_name=class_name, peak=peak, strength=float(cam.max()))


def scaled(cam: np.ndarray) -> np.ndarray:
    """A map in [0, 1] by its own maximum (all zeros stays zeros)."""
    top = float(cam.max()) if cam.size else 0.0
    return cam / top if top > 0 else np.zeros_like(cam)


def _interval_90(marginal: np.ndarray, centre: float) -> int:
    """Pixels in the smallest interval centred on `centre` holding MASS of `marginal`."""
    distance = np.abs(np.arange(len(marginal)) - centre)
    need = MASS * marginal.sum() * (1 - 1e-9)  # float sums of the same values may differ
    for radius in np.unique(distance):
        inside = distance <= radius
        if marginal[inside].sum() >= need:
            return int(inside.sum())
    return len(marginal)


def effective(erf: np.ndarray, box: tuple[int, int, int, int], centre: tuple) -> Effective:
    """Luo et al.'s effective receptive field of a unit, from |d unit / d image|."""
    total = float(erf.sum())
    if not np.isfinite(total) or total <= 0:
        return Effective(
            support=None,
            size_90=None,
            inside_share=None,
            note="no gradient reaches the image: every path to this unit is inactive on it",
        )
    rows = np.flatnonzero(erf.sum(axis=1) > 0)
    cols = np.flatnonzero(erf.sum(axis=0) > 0)
    top, left, bottom, right = box
    inside = float(erf[top : bottom + 1, left : right + 1].sum())
    return Effective(
        support=(int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)),
        size_90=(
            _interval_90(erf.sum(axis=1), centre[0]),
            _interval_90(erf.sum(axis=0), centre[1]),
        ),
        inside_share=inside / total,
    )


def receptive_field(erf: np.ndarray | None, plan: Plan, layer: str, unit: tuple) -> ReceptiveField:
    size, box = geometry.theoretical_box(plan, layer, unit)
    rows, cols = geometry.centres(plan, layer)
    centre = (float(rows[unit[0]]), float(cols[unit[1]]))
    measured = (
        effective(erf, box, centre)
        if erf is not None
        else Effective(support=None, size_90=None, inside_share=None, note="not computed")
    )
    return ReceptiveField(
        layer=layer, unit=unit, theoretical=Theoretical(size=size, box=box), effective=measured
    )
