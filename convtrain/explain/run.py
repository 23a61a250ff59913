"""`convtrain explain RUN_DIR IMAGE...`: explain a run's predictions, image by image.

Everything the user gave is checked before TensorFlow starts (the run directory, `--layer`,
`--class`, every image file); an image that cannot be read is reported and the others still go
through. Returns an `Explanation`: the command prints it, `explain.json` holds it.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convtrain.config.schema import Experiment
from convtrain.data.index import resolve_root
from convtrain.data.split import Split
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.explain import geometry, measure
from convtrain.explain.filters import kernels, plot_filters
from convtrain.explain.page import write_page
from convtrain.explain.records import ClassScore, Explanation, ImageExplanation
from convtrain.explain.render import Picture, render
from convtrain.explain.select import Decoded, decode, from_paths, from_split
from convtrain.io import atomic_write_text
from convtrain.model.plan import Plan, plan_model
from convtrain.rundir import RunDir
from convtrain.train.checkpoints import load_checkpoint
from convtrain.train.loading import check_model, choose, load_experiment, load_model

BATCH = 32
SPLIT_PARTS = ("test", "val", "train")


@dataclass(frozen=True)
class Job:
    """What the user asked for, checked: everything but the model itself."""

    run: RunDir
    experiment: Experiment
    classes: tuple[str, ...]
    checkpoint: str
    plan: Plan
    layer: geometry.Layer
    requested: int | None  # --class, as an index
    top_k: int
    out_dir: Path


def _job(run_dir, layer, class_name, out, split, per_class, checkpoint, top_k) -> Job:
    run = RunDir.open(run_dir, need=("config", "split", "checkpoint"))
    experiment = load_experiment(run)
    classes = tuple(Split.read(run.split).classes)
    checkpoint = choose(checkpoint or experiment.eval.checkpoint, ("best", "last"), "--checkpoint")
    if split is not None:
        choose(split, SPLIT_PARTS, "--split")
    if per_class < 1:
        raise ConvtrainError(f"--per-class: expected a positive integer, received {per_class}")
    if class_name is not None and class_name not in classes:
        raise ConvtrainError(
            f"--class: expected one of the run's classes ({', '.join(classes)}), received "
            f"{class_name!r}"
        )
    plan = plan_model(experiment, len(classes))
    if plan.problems:
        raise ConfigError(plan.problems, source=str(run.config))
    return Job(
        run, experiment, classes, checkpoint, plan, geometry.choose_layer(plan, layer),
        None if class_name is None else classes.index(class_name),
        min(top_k or experiment.eval.top_k, len(classes)),
        Path(out) if out is not None else run.path / "explain",
    )  # fmt: skip


@contextmanager
def _writing(out_dir: Path) -> Iterator[None]:
    """A file that cannot be written: one line (exit code 1 for a full disk); files already
    written are kept."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            error = ConvtrainError(
                f"disk full while writing into {out_dir}: free some space and run the command "
                f"again (the files already written are kept)"
            )
            error.exit_code = 1
            raise error from None
        raise ConvtrainError(
            f"{exc.filename or out_dir}: cannot write the explanation ({exc.strerror or exc})"
        ) from None


def _slug(shown: str) -> str:
    p = Path(shown)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{p.parent.name}-{p.stem}".strip("-"))[:80]


def _title(d: Decoded, job: Job) -> str:
    s = d.source
    known = (
        f"true class {job.classes[s.label]} ({s.part} split)"
        if s.label is not None
        else "not a file of the run's split"
    )
    return f"{s.shown} - {known}\n{job.run.path.name}, {job.checkpoint} checkpoint"


def _record(job: Job, d: Decoded, probed: Any, i: int, unit: tuple, png: str | None):
    """The numbers of image i of a probed batch, and its Grad-CAM maps by role."""
    name = job.layer.name
    cams = {role: probed.cams[role][i] for role in probed.cams if probed.classes[role][i] >= 0}
    top = np.argsort(-probed.probs[i], kind="stable")[: job.top_k]
    record = ImageExplanation(
        image=d.source.shown,
        true_class=None if d.source.label is None else job.classes[d.source.label],
        split=d.source.part,
        predictions=[
            ClassScore(class_name=job.classes[c], probability=float(probed.probs[i, c]))
            for c in top
        ],
        gradcam_layer=name,
        gradcam=[
            measure.gradcam(role, job.classes[probed.classes[role][i]], cam, job.plan, name)
            for role, cam in cams.items()
        ],
        receptive_field=measure.receptive_field(probed.erf[i], job.plan, name, unit),
        png=png,
    )
    return record, cams


def _filters(job: Job, model: Any) -> str | None:
    convs = geometry.conv_layers(job.plan)
    if not convs:
        return None
    path = job.run.checkpoint("initial")
    initial = load_checkpoint(path, compile=False) if path.is_file() else None
    title = f"Filters of {job.run.path.name} ({job.checkpoint} checkpoint)" + (
        "" if initial is not None else " - no checkpoints/initial.keras: change not shown"
    )
    found = kernels(model, initial, convs, job.plan.input)
    return str(plot_filters(found, job.out_dir / "filters.png", title))


def explain(
    run_dir: str | Path,
    images: tuple[str, ...] | list[str] = (),
    *,
    layer: str | None = None,
    class_name: str | None = None,
    out: str | Path | None = None,
    split: str | None = None,
    per_class: int = 1,
    checkpoint: str | None = None,
    top_k: int | None = None,
    pictures: bool = True,
) -> Explanation:
    """Explain the images; `pictures=False` gives the numbers only (no PNG, page or JSON file)."""
    job = _job(run_dir, layer, class_name, out, split, per_class, checkpoint, top_k)
    if not images and split is None:
        raise ConvtrainError(
            "explain: expected IMAGE files or --split test|val|train (with --per-class N), "
            "received neither"
        )
    saved = Split.read(job.run.split)
    root = resolve_root(job.experiment.data)
    sources = from_paths(list(images), saved, root)
    if split is not None:
        sources += from_split(saved, split, per_class, root)
    decoded, failed = decode(sources, job.experiment.data)
    result = Explanation(
        run=str(job.run.path), checkpoint=job.checkpoint, out_dir=str(job.out_dir), html=None,
        filters_png=None, images=[], failed=failed,
    )  # fmt: skip
    if not decoded:
        return result
    # TensorFlow starts only now, the arguments checked (it takes seconds to start).
    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    from convtrain.explain.probe import Probe  # imports TensorFlow

    model = load_model(job.run, job.checkpoint)
    check_model(model, job.run.checkpoint(job.checkpoint), job.experiment, len(job.classes))
    missing = [s.name for s in job.plan.leaves() if s.name not in {m.name for m in model.layers}]
    if missing:
        raise ConvtrainError(
            f"{job.run.checkpoint(job.checkpoint)}: expected the layers of config.yaml by name, "
            f"received a model without {', '.join(repr(m) for m in missing[:5])} (not built by "
            f"`convtrain train` from this config)"
        )
    features = geometry.feature_layers(job.plan)
    unit = geometry.centre_unit(job.plan, job.layer.name)
    probe = Probe(model, job.layer, job.layer, tuple(features), unit)
    with _writing(job.out_dir):
        if pictures:
            job.out_dir.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(decoded), BATCH):
            chunk = decoded[start : start + BATCH]
            wanted = {
                "true": np.array([-1 if d.source.label is None else d.source.label for d in chunk])
            }
            if job.requested is not None:
                wanted["requested"] = np.full(len(chunk), job.requested)
            probed = probe(np.stack([d.inputs for d in chunk]), wanted)
            for i, d in enumerate(chunk):
                png = job.out_dir / f"{start + i + 1:02d}-{_slug(d.source.shown)}.png"
                record, cams = _record(job, d, probed, i, unit, str(png) if pictures else None)
                result.images.append(record)
                if pictures:
                    features_i = {name: maps[i] for name, maps in probed.features.items()}
                    picture = Picture(
                        d.pixels, cams, probed.erf[i], features_i, record, _title(d, job)
                    )
                    render(picture, job.plan, features, png)
        if pictures:
            result.filters_png = _filters(job, model)
            result.html = str(write_page(job.out_dir / "explain.html", result, job.plan))
            atomic_write_text(job.out_dir / "explain.json", result.to_json() + "\n")
    return result


def format_table(result: Explanation) -> str:
    blocks = []
    for r in result.images:
        known = f"true {r.true_class} ({r.split})" if r.true_class else "not in the split"
        top = "  ".join(f"{p.class_name} {p.probability:.1%}" for p in r.predictions)
        cams = "; ".join(
            f"{g.role} {g.class_name} at "
            + (f"row {g.peak[0]}, col {g.peak[1]}" if g.peak else "nowhere (no positive evidence)")
            for g in r.gradcam
        )
        rf = r.receptive_field
        t, e = rf.theoretical, rf.effective
        eff = (
            f"effective 90% in {e.size_90[0]}x{e.size_90[1]}, {e.inside_share:.1%} inside"
            if e.support is not None
            else f"effective: {e.note}"
        )
        blocks.append(
            f"{r.image}  [{known}]\n  top: {top}\n  Grad-CAM on {r.gradcam_layer}: {cams}\n"
            f"  receptive field of {rf.layer} unit {rf.unit}: theoretical "
            f"{t.size[0]}x{t.size[1]}, {eff}" + (f"\n  picture: {r.png}" if r.png else "")
        )
    if result.html:
        written = f"wrote {result.html}"
        blocks.append(written + (f" and {result.filters_png}" if result.filters_png else ""))
    return "\n\n".join(blocks)
