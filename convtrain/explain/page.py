"""`explain.html`: one section per explained image, beside the PNGs it shows (linked, so the
page stays small; the folder is self-contained and needs no network)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from convtrain.explain import geometry
from convtrain.explain.records import Explanation
from convtrain.io import atomic_write_text
from convtrain.model.plan import Plan

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1240px;
color:#222;padding:0 1rem;line-height:1.45}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #ddd}table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}th{background:#f4f4f4}
img{max-width:100%;height:auto;border:1px solid #eee}.muted{color:#777;font-size:.9rem}
.wide{overflow-x:auto;max-width:100%}
"""

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
    return html.escape(os.path.relpath(path, base))


def write_page(path: Path, result: Explanation, plan: Plan) -> Path:
    base = path.parent
    e = html.escape
    rows = []
    for r in result.images:
        rf = r.receptive_field
        peaks = ", ".join(f"{g.role}: {g.peak}" for g in r.gradcam)
        eff = rf.effective
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{e(str(c))}</td>"
                for c in (
                    r.image,
                    r.true_class or "-",
                    f"{r.predictions[0].class_name} {r.predictions[0].probability:.1%}",
                    peaks,
                    "x".join(map(str, rf.theoretical.size)),
                    "x".join(map(str, eff.size_90)) if eff.size_90 else "-",
                    f"{eff.inside_share:.1%}" if eff.inside_share is not None else "-",
                )
            )
            + "</tr>"
        )
    header = "".join(
        f"<th>{h}</th>"
        for h in ("image", "true", "predicted", "Grad-CAM peak (row, col)", "theoretical RF",
                  "effective RF (90%)", "gradient inside")
    )  # fmt: skip
    layer = result.images[0].gradcam_layer if result.images else "-"
    body = [
        f"<h1>convtrain explain: {e(Path(result.run).name)}</h1>",
        f'<p class="muted">{e(result.run)}, {e(result.checkpoint)} checkpoint; Grad-CAM and '
        f"receptive field on {e(geometry.choose_layer(plan, layer).caption())}</p>",
        f"<p>{GUIDE}</p>",
        # on a phone the table scrolls inside its box, not the whole page
        f'<div class="wide"><table><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}'
        f"</tbody></table></div>",
    ]
    if result.failed:
        items = "".join(f"<li>{e(f.error)}</li>" for f in result.failed)
        body.append(f"<h2>Not explained</h2><ul>{items}</ul>")
    for r in result.images:
        if r.png:
            body += [
                f"<h2>{e(r.image)}</h2>",
                f'<img alt="{e(r.image)}" src="{_rel(r.png, base)}">',
            ]
    if result.filters_png:
        body += ["<h2>Filters</h2>", f'<img alt="filters" src="{_rel(result.filters_png, base)}">']
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>explain '
        f"{e(Path(result.run).name)}</title><style>{CSS}</style></head><body>{''.join(body)}"
        f"</body></html>\n"
    )
    atomic_write_text(path, page)
    return path
