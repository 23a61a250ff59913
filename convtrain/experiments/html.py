"""Self-contained `report.html` pages for a run and for a sweep: plots embedded, no network.

Built from the files a run already has (config.yaml, reports/, plots/, state.json) plus the
model's plan, so the page shows exactly what the run directory holds.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from convtrain.evaluate.summary import METRICS, MetricsRecord
from convtrain.html import img, page, table
from convtrain.io import atomic_write_text
from convtrain.model.inspect import totals
from convtrain.model.plan import Plan
from convtrain.rundir import RunDir
from convtrain.train.state import TrainState

# The story of a run, in reading order, with what each figure shows for a reader who cannot
# see it (alt text); any other plot follows alphabetically, described by its name.
PLOTS = {
    "learning_curves": "Learning curves: loss, accuracy and learning rate per epoch",
    "confusion_matrix": "Confusion matrix: the fraction of each true class given to each class",
    "per_class_accuracy": "Accuracy of each class on the evaluated split",
    "misclassified": "The most confident mistakes, each with its true and predicted class",
    "what_the_network_looks_at": "Grad-CAM of correct and misclassified images per class",
    "filters": "The weights of the first convolution, one small image per filter",
}
PLOT_ORDER = list(PLOTS)


def _layer_table(plan: Plan) -> str:
    rows = [
        [
            "\u00a0\u00a0\u00a0" * depth + str(step.name),  # nbsp: indent nested blocks
            step.kind,
            "x".join(map(str, step.out.shape)),
            f"{step.trainable + step.non_trainable:,}",
            f"{step.macs:,}",
            "x".join(map(str, step.out.rf)),
            "x".join(map(str, step.out.jump)),
        ]
        for depth, step in plan.rows()
    ]
    t = totals(plan)
    summary = (
        f'<p class="muted">{t.params:,} parameters ({t.trainable:,} trainable), '
        f"{t.macs:,} multiply-accumulates per image</p>"
    )
    header = ["layer", "type", "output", "params", "MACs", "receptive field", "jump"]
    return table(header, rows, "layers") + summary


def _training(state: TrainState) -> str:
    best = (
        f"best {state.monitor} {state.best_value:.4f} at epoch {state.best_epoch}"
        if state.best_value is not None
        else "no best epoch"
    )
    stopped = ", stopped early" if state.stopped_early else ""
    return (
        f"<p>{html.escape(state.status)}: {state.completed_epochs} of {state.epochs} epochs"
        f"{stopped}; {html.escape(best)}</p>"
    )


def run_report(run: RunDir, plan: Plan, state: TrainState | None = None) -> Path:
    """report.html of a run whose model is `plan`; `state` None leaves the training out."""
    body = [
        f"<h1>{html.escape(run.path.name)}</h1>",
        f'<p class="muted">{html.escape(str(run.path))}</p>',
    ]
    if run.file(MetricsRecord).is_file():
        metrics = run.read(MetricsRecord)
        cards = "".join(
            f'<div class="metric">{metrics.label(key)}<b>{getattr(metrics, key):.4f}</b></div>'
            for key in METRICS
        )
        body += [
            "<h2>Metrics</h2>",
            f'<div class="metrics">{cards}</div>',
            f'<p class="muted">{metrics.num_images} {metrics.split} images, '
            f"{metrics.checkpoint} checkpoint</p>",
        ]
    else:
        body.append("<p>No evaluation yet: run <code>convtrain evaluate</code> on this run.</p>")
    if state is not None:
        body += ["<h2>Training</h2>", _training(state)]
    body += ["<h2>Layers</h2>", _layer_table(plan)]
    pngs = sorted(run.plots.glob("*.png")) if run.plots.is_dir() else []
    pngs.sort(
        key=lambda p: (
            PLOT_ORDER.index(p.stem) if p.stem in PLOT_ORDER else len(PLOT_ORDER),
            p.stem,
        )
    )
    for png in pngs:
        body += [
            f"<h2>{html.escape(png.stem.replace('_', ' '))}</h2>",
            img(png, PLOTS.get(png.stem)),
        ]
    report_txt = run.reports / "classification_report.txt"
    if report_txt.is_file():
        body += [
            "<h2>Classification report</h2>",
            f"<pre>{html.escape(report_txt.read_text())}</pre>",
        ]
    config = run.config.read_text()
    # Every default spelled out: a few screens, closed until asked for.
    body += [
        "<h2>Config</h2>",
        f"<details><summary>config.yaml, every default filled in ({config.count(chr(10))} "
        f"lines)</summary><pre>{html.escape(config)}</pre></details>",
    ]
    out = run.path / "report.html"
    atomic_write_text(out, page(f"convtrain: {run.path.name}", body))
    return out


def sweep_report(sweep_dir: Path, header: list[str], rows: list[list[Any]], cells: Any) -> Path:
    best, worst = dict(zip(header, rows[0], strict=True)), dict(zip(header, rows[-1], strict=True))
    swept = header[1 : header.index("accuracy")]
    setting = ", ".join(f"{k} = {cells(best[k])}" for k in swept) or "(no setting differs)"
    verdict = (
        f"<p><b>Best: {html.escape(str(best['run']))}</b> with {html.escape(setting)}: accuracy "
        f"{cells(best['accuracy'])} (worst {cells(worst['accuracy'])}), mean per-class accuracy "
        f"{cells(best['mean_per_class_accuracy'])}, at {cells(best['params'])} parameters and "
        f"{cells(best['MACs'])} multiply-accumulates per image.</p>"
    )
    body = [
        f"<h1>Sweep {html.escape(sweep_dir.name)}</h1>",
        f'<p class="muted">{len(rows)} evaluated trials; best first</p>',
        verdict,
        "<h2>Comparison</h2>",
        table(header, [[cells(v) for v in row] for row in rows]),
    ]
    for name in ("compare_cost.png", "compare_curves.png"):
        if (sweep_dir / name).is_file():
            body.append(img(sweep_dir / name))
    looks = [sweep_dir / n for n in ("compare_gradcam.png", "compare_layer.png")]  # issue 16
    if any(p.is_file() for p in looks):
        body += ["<h2>What the network looks at</h2>", *(img(p) for p in looks if p.is_file())]
    out = sweep_dir / "report.html"
    atomic_write_text(out, page(f"convtrain sweep: {sweep_dir.name}", body))
    return out
