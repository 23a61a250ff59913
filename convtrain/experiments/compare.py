"""Runs side by side (`convtrain compare`): one row per run, what differs and what it cost.

Every figure is read from the runs' own files (config.yaml, reports/metrics.json, history.csv,
state.json) or recomputed from their configs by inspect's arithmetic, never re-derived here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from convtrain.config.load import dump_config, load_config
from convtrain.data.split import Split
from convtrain.errors import ConvtrainError
from convtrain.evaluate.summary import METRICS, MetricsRecord
from convtrain.history import History
from convtrain.io import atomic_write_text
from convtrain.layers.keras_objects import describe
from convtrain.model.inspect import totals
from convtrain.model.plan import plan_model
from convtrain.plots.compare import cost_plot, curves_plot
from convtrain.rundir import RunDir
from convtrain.train.state import TrainState


@dataclass
class RunSummary:
    run: RunDir
    config: dict[str, Any]  # the flattened resolved config: dotted key -> value
    metrics: dict[str, float]
    params: int
    macs: int
    train_time_s: float
    images_per_s: float | None
    best_epoch: int | None
    epochs_done: int
    history: History | None

    @property
    def name(self) -> str:
        return self.run.path.name


# Keys holding an initializer, regularizer or constraint: one cell each, in one notation whether
# the config wrote `{l2: 0.0001}` (model.defaults) or `{type: l2, l2: 0.0001}` (a resolved layer).
_KERAS_OBJECTS = {
    "_initializer": "initializer",
    "_regularizer": "regularizer",
    "_constraint": "constraint",
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{model: {layers: [{filters: 16}]}}` -> `{"model.layers[0].filters": 16}`."""
    out: dict[str, Any] = {}
    kind = next((k for s, k in _KERAS_OBJECTS.items() if prefix.endswith(s)), None)
    if kind is not None and isinstance(value, (str, dict)):  # not a sweep's list of values
        out[prefix] = describe(kind, value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = tuple(value) if isinstance(value, list) else value
    return out


def summarize(path: Path) -> RunSummary:
    run = RunDir.open(path, need=("config", "split"))
    if not run.file(MetricsRecord).is_file():
        raise ConvtrainError(
            f"{path}: no reports/metrics.json; run `convtrain evaluate {path}` first"
        )
    metrics = run.read(MetricsRecord)
    split = run.read(Split)
    experiment = load_config(run.config)
    t = totals(plan_model(experiment, len(split.classes)))
    # The validated config, not the file's text: defaults are filled in the same way for every
    # run, so a key a run's file omits (or an older convtrain did not write) is not a difference.
    raw = yaml.safe_load(dump_config(experiment))
    # How the trials were chosen, the same in each: a search space such as
    # `kernel_regularizer: {choice: [...]}` is no setting of this run.
    raw.pop("sweep", None)
    history = run.read_history()
    state = run.read(TrainState) if run.file(TrainState).is_file() else None
    epochs = 0 if history is None else len(history.epochs)
    speeds = np.array([]) if history is None else history.column("images_per_s")
    speeds = speeds[np.isfinite(speeds)]
    return RunSummary(
        run=run,
        config=flatten(raw),
        metrics={k: float(getattr(metrics, k)) for k in METRICS},
        params=t.params,
        macs=t.macs,
        train_time_s=0.0 if history is None else float(np.nansum(history.column("epoch_time"))),
        images_per_s=float(np.median(speeds)) if speeds.size else None,
        best_epoch=None if state is None else state.best_epoch,
        epochs_done=epochs if state is None else state.completed_epochs,
        history=history,
    )


def collect(paths: list[str]) -> list[RunSummary]:
    """Run directories named directly, or every completed trial of a sweep directory."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if (p / "sweep.json").is_file() or (p / "study.json").is_file():  # a sweep: its trials
            trials = sorted(q.parent for q in (p / "trials").glob("*/reports/metrics.json"))
            dirs.extend(q.parent for q in trials)
        else:
            dirs.append(p)
    if not dirs:
        raise ConvtrainError(f"{', '.join(paths)}: no evaluated runs to compare")
    return [summarize(d) for d in dirs]


def differing(runs: list[RunSummary]) -> list[str]:
    """Config keys whose values are not the same in every run (name excluded).

    When a layer is replaced by one of another type (a max pool by a strided conv), its `type`
    column says so; its other keys are columns only if they differ between runs of the same
    type, or the table would list every default of both layer types. A layer's key that only
    follows a changed `model.defaults.<type>` key (the same value in every run) is not repeated.
    """

    def text(r: RunSummary, key: str) -> str:
        return json.dumps(r.config.get(key), sort_keys=True, default=str)

    keys = sorted({k for r in runs for k in r.config})
    changed = [
        k
        for k in keys
        if k != "name" and not k.startswith("data.root") and len({text(r, k) for r in runs}) > 1
    ]
    retyped = [k.removesuffix(".type") for k in changed if k.endswith(".type")]
    defaults = [k for k in changed if k.startswith("model.defaults.")]

    def same(layer_value: Any, default: Any) -> bool:
        # A default of 2 for a pair argument resolves to (2, 2) in the layer.
        if isinstance(layer_value, tuple) and not isinstance(default, tuple):
            return all(v == default for v in layer_value)
        return layer_value == default

    def follows_default(key: str) -> bool:
        field = key.rsplit(".", 1)[-1]
        return any(
            d.rsplit(".", 1)[-1] == field
            and all(same(r.config.get(key), r.config.get(d)) for r in runs)
            for d in defaults
            if d != key
        )

    def shown(key: str) -> bool:
        if key.startswith("model.layers") and follows_default(key):
            return False
        layer = next((p for p in retyped if key.startswith(p + ".") and key != p + ".type"), None)
        if layer is None:
            return True
        values_by_type: dict[str, set[str]] = {}
        for r in runs:
            values_by_type.setdefault(text(r, layer + ".type"), set()).add(text(r, key))
        return any(len(values) > 1 for values in values_by_type.values())

    return [k for k in changed if shown(k)]


_STAMP = re.compile(r"-\d{8}-\d{6}(-\d+)?$")


def labels(runs: list[RunSummary]) -> dict[str, str]:
    """A short label per run for plots: its name without the timestamp, and what differs."""
    keys = differing(runs) if len(runs) > 1 else []
    out = {}
    for r in runs:
        values = ", ".join(
            f"{k.rsplit('.', 1)[-1]}={'none' if r.config.get(k) is None else cell(r.config.get(k))}"
            for k in keys
        )
        short = _STAMP.sub("", r.name)
        out[r.name] = f"{short}: {values}" if values else short
    return out


def table(runs: list[RunSummary], sort_by: str = "accuracy") -> tuple[list[str], list[list[Any]]]:
    if sort_by not in METRICS:
        raise ConvtrainError(f"--sort: expected one of {', '.join(METRICS)}, received {sort_by!r}")
    keys = differing(runs) if len(runs) > 1 else []
    ordered = sorted(runs, key=lambda r: r.metrics.get(sort_by, float("-inf")), reverse=True)
    header = ["run", *keys, *METRICS, "params", "MACs", "train_s", "images_per_s", "best_epoch"]
    rows = []
    for r in ordered:
        rows.append(
            [
                r.name,
                *(r.config.get(k) for k in keys),
                *(r.metrics.get(m) for m in METRICS),
                r.params,
                r.macs,
                round(r.train_time_s, 1),
                None if r.images_per_s is None else round(r.images_per_s, 1),
                r.best_epoch,
            ]
        )
    return header, rows


def cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):  # as the config says it
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4f}" if v <= 1.0 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def to_text(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def to_markdown(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def write_outputs(
    out_dir: Path, runs: list[RunSummary], sort_by: str
) -> tuple[list[str], list[list[Any]]]:
    header, rows = table(runs, sort_by)
    atomic_write_text(out_dir / "compare.md", to_markdown(header, rows) + "\n")
    atomic_write_text(out_dir / "compare.csv", to_csv(header, rows))
    write_plots(out_dir, runs, sort_by)
    return header, rows


def write_plots(
    out_dir: Path, runs: list[RunSummary], sort_by: str, chosen: Path | None = None
) -> None:
    """compare_cost.png and compare_curves.png of the runs; `chosen`: a sweep's selected run."""
    short = labels(runs)
    names = [short[r.name] for r in runs]
    star = next((i for i, r in enumerate(runs) if r.run.path == chosen), None)
    cost_plot(
        names,
        [r.metrics.get(sort_by) for r in runs],
        [r.params for r in runs],
        [r.macs for r in runs],
        sort_by,
        out_dir / "compare_cost.png",
        chosen=star,
    )
    curves_plot(names, [r.history for r in runs], out_dir / "compare_curves.png")
