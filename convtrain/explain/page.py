"""`explain.html`: one section per explained image, beside the PNGs it shows (linked, so the
page stays small; the folder is self-contained and needs no network)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from convtrain.explain import geometry
from convtrain.explain.records import Explanation
from convtrain.html import linked_img, page, table
from convtrain.io import atomic_write_text
from convtrain.model.plan import Plan

GUIDE = (
    "Grad-CAM (Selvaraju et al. 2017) weighs the channels of a layer by the gradient of a "
    "class's score before the softmax: red is where the evidence for that class lies, + its "
    "peak. The theoretical receptive field (yellow) is every pixel a unit of the layer can see, "
    "from <code>convtrain inspect</code>'s arithmetic; the effective one (Luo et al. 2016) is "
    "how strongly each pixel moves that unit, |d unit / d pixel|: usually a much smaller blob in "
    "the middle. Feature maps: the channels of each convolution and block with the most "
    "activation energy on this image."
)


def _rel(path: str, base: Path) -> str:
    return os.path.relpath(path, base)


def write_page(path: Path, result: Explanation, plan: Plan) -> Path:
    base = path.parent
    e = html.escape
    rows = []
    for r in result.images:
        rf, eff = r.receptive_field, r.receptive_field.effective
        rows.append([
            r.image,
            r.true_class or "-",
            f"{r.predictions[0].class_name} {r.predictions[0].probability:.1%}",
            ", ".join(f"{g.role}: {g.peak}" for g in r.gradcam),
            "x".join(map(str, rf.theoretical.size)),
            "x".join(map(str, eff.size_90)) if eff.size_90 else "-",
            f"{eff.inside_share:.1%}" if eff.inside_share is not None else "-",
        ])  # fmt: skip
    header = ["image", "true", "predicted", "Grad-CAM peak (row, col)", "theoretical RF",
              "effective RF (90%)", "gradient inside"]  # fmt: skip
    layer = result.images[0].gradcam_layer if result.images else "-"
    body = [
        f"<h1>convtrain explain: {e(Path(result.run).name)}</h1>",
        f'<p class="muted">{e(result.run)}, {e(result.checkpoint)} checkpoint; Grad-CAM and '
        f"receptive field on {e(geometry.choose_layer(plan, layer).caption())}</p>",
        f"<p>{GUIDE}</p>",
        table(header, rows, "text"),
    ]
    if result.failed:
        items = "".join(f"<li>{e(f.error)}</li>" for f in result.failed)
        body.append(f"<h2>Not explained</h2><ul>{items}</ul>")
    for r in result.images:
        if r.png:
            body += [
                f"<h2>{e(r.image)}</h2>",
                linked_img(_rel(r.png, base), r.image),
            ]
    if result.filters_png:
        body += ["<h2>Filters</h2>", linked_img(_rel(result.filters_png, base), "filters")]
    atomic_write_text(path, page(f"explain {Path(result.run).name}", body))
    return path
