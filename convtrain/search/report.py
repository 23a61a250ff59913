"""`convtrain compare SWEEP_DIR` and its report.html, for a sweep run on an Optuna study.

The trials table, the best trial and the figures come from the study; the cost and curve
plots of `convtrain compare` are drawn as before from the trials' run directories found on
this machine.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from convtrain.experiments import compare
from convtrain.explain.compare import FILES as EXPLAIN_FILES
from convtrain.explain.compare import compare_section
from convtrain.html import img, page, table
from convtrain.io import atomic_write_text
from convtrain.search.figures import FIGURES, write_figures
from convtrain.search.results import best, configurations, cost_line, train_command, trials_table
from convtrain.search.study import load_study

SHOWN = (
    (
        "compare_cost.png",
        "Cost",
        "Each trial's score against its parameters and multiply-accumulates",
    ),
    ("compare_curves.png", "Curves", "Validation curves of the trials, epoch by epoch"),
)
# Grad-CAM and the changed layer side by side: a row per trial reads for a handful; a search's
# dozens would be pages long, so the best and the worst on validation stand for the rest.
SIDE_BY_SIDE = 6
BEST_SHOWN = 4

LOOKS = {
    "compare_gradcam.png": "Each trial's Grad-CAM on the same test images",
    "compare_layer.png": "The changed layer in each trial: feature maps and receptive fields",
}


def local_runs(study: Any) -> list[Path]:
    """The evaluated run directories of the study's trials that are on this machine."""
    out = []
    for t in configurations(study):
        run = t.user_attrs.get("run_dir")
        if run and (Path(run) / "reports" / "metrics.json").is_file():
            out.append(Path(run))
    return out


def compare_sweep(sweep_dir: Path, out_dir: Path, sort_by: str) -> dict[str, Any]:
    """Write compare.md/.csv, the study's figures, the runs' plots and report.html."""
    record, study = load_study(sweep_dir)
    header, rows = trials_table(study, record)
    atomic_write_text(out_dir / "compare.md", compare.to_markdown(header, rows) + "\n")
    atomic_write_text(out_dir / "compare.csv", compare.to_csv(header, rows))
    figures, notes = write_figures(study, out_dir, record.monitor)
    runs = [compare.summarize(p) for p in local_runs(study)]
    top = best(study)
    shown: list[Any] = []
    if runs:
        chosen = Path(top.user_attrs["run_dir"]) if top is not None else None
        compare.write_plots(out_dir, runs, sort_by, chosen=chosen)
        names = compare.labels(runs)
        # The same test images across the trials (Grad-CAM, the changed layer's fields).
        keys = compare.differing(runs) if len(runs) > 1 else []
        shown = side_by_side(study, runs)
        compare_section([(r.run.path, names[r.name]) for r in shown], keys, out_dir)
    note = "" if len(shown) == len(runs) else (
        f" (the {BEST_SHOWN} best and the {len(shown) - BEST_SHOWN} worst of {len(runs)} trials "
        f"on validation)")  # fmt: skip
    cost = cost_line(study, record, sum(r.train_time_s for r in runs), len(runs))
    written = write_page(sweep_dir, out_dir, record, study, header, rows, notes, note, cost)
    return {"header": header, "rows": rows, "figures": figures, "notes": notes, "page": written,
            "cost": cost}  # fmt: skip


def side_by_side(study: Any, runs: list[Any]) -> list[Any]:
    """The runs drawn side by side: all of a few, else the best and the worst on validation."""
    if len(runs) <= SIDE_BY_SIDE:
        return runs
    value = {t.user_attrs.get("run_dir"): t.value for t in configurations(study)}
    sign = -1 if study.direction.name == "MINIMIZE" else 1
    scored = [r for r in runs if value.get(str(r.run.path)) is not None]
    ranked = sorted(scored, key=lambda r: -sign * value[str(r.run.path)])
    return ranked[:BEST_SHOWN] + ranked[BEST_SHOWN - SIDE_BY_SIDE :]


def write_page(
    sweep_dir: Path, out_dir: Path, record: Any, study: Any, header: list[str],
    rows: list[list[Any]], notes: list[str], looks_note: str = "", cost: str = "",
) -> Path:  # fmt: skip
    top = best(study)
    states = [r[1] for r in rows]
    live = states.count("running") + states.count("waiting")
    running = f", {live} running or waiting" if live else ""  # a study looked at while it runs
    body = [
        f"<h1>Sweep {html.escape(sweep_dir.name)}</h1>",
        f'<p class="muted">study {html.escape(record.study)}: {record.sampler} sampler, '
        f"pruner {record.prune}; {states.count('complete')} complete, {states.count('pruned')} "
        f"pruned, {states.count('failed')} failed{running} of {len(rows)} trials. Trials are "
        f"selected on {html.escape(record.monitor)} (the validation split); test figures are "
        f"shown, never used to select.</p>",
        *([f'<p class="muted">{html.escape(cost[:1].upper() + cost[1:])}.</p>'] if cost else []),
    ]
    if top is not None:
        a = top.user_attrs
        test = f", test accuracy {a['test_accuracy']:.4f}" if "test_accuracy" in a else ""
        body += [
            f"<h2>Best trial: {top.number}</h2>",
            f"<p>{html.escape(record.monitor)} <b>{top.value:.4f}</b>{test} after "
            f"{a.get('epochs', '?')} epochs.</p>",
            f'<pre class="cmd">{html.escape(train_command(sweep_dir, record, top))}</pre>',
        ]
    body += ["<h2>Trials</h2>", table(header, [[compare.cell(v) for v in r] for r in rows])]
    for stem, (title, _) in FIGURES.items():
        if (out_dir / f"{stem}.png").is_file():
            png = img(out_dir / f"{stem}.png", f"Optuna's {title} of the study")
            body += [f"<h2>{html.escape(title.capitalize())}</h2>", png]
    for name, title, alt in SHOWN:
        if (out_dir / name).is_file():
            body += [f"<h2>{title}</h2>", img(out_dir / name, alt)]
    looks = [out_dir / name for name in EXPLAIN_FILES if (out_dir / name).is_file()]
    if looks:
        body += [f"<h2>What the network looks at{html.escape(looks_note)}</h2>",
                 *(img(p, LOOKS[p.name]) for p in looks)]  # fmt: skip
    if notes:
        body += ['<p class="muted">' + "<br>".join(html.escape(n) for n in notes) + "</p>"]
    out = out_dir / "report.html"
    atomic_write_text(out, page(f"convtrain sweep: {sweep_dir.name}", body))
    return out
