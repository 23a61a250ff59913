"""`convtrain explain RUN_DIR IMAGE...`: explain a run's predictions, image by image.

Everything the user gave is checked before TensorFlow starts (the run directory, `--layer`,
`--class`, every image file); an image that cannot be read is reported and the others still go
through. Returns an `Explanation`: the command prints it, `explain.json` holds it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from convtrain.data.index import resolve_root
from convtrain.data.split import load_split
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.evaluate.loading import check_model, choose, load_experiment, load_model
from convtrain.explain import geometry, measure
from convtrain.explain.page import write_page
from convtrain.explain.records import ClassScore, Explanation, ImageExplanation
from convtrain.explain.select import Decoded, decode, from_paths, from_split
from convtrain.io import atomic_write_text
from convtrain.model.shapes import plan_model
from convtrain.rundir import RunDir

BATCH = 32
SPLIT_PARTS = ("test", "val", "train")


def _slug(shown: str) -> str:
    p = Path(shown)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{p.parent.name}-{p.stem}".strip("-"))[:80]


def _title(d: Decoded, classes: tuple[str, ...], run: RunDir, checkpoint: str) -> str:
    s = d.source
    known = (
        f"true class {classes[s.label]} ({s.part} split)"
        if s.label is not None
        else "not a file of the run's split"
    )
    return f"{s.shown} - {known}\n{run.path.name}, {checkpoint} checkpoint"


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
    run = RunDir.open(run_dir, need=("config", "split", "checkpoint"))
    experiment = load_experiment(run)
    saved = load_split(run.split)
    classes = tuple(saved.classes)
    checkpoint = choose(checkpoint or experiment.eval.checkpoint, ("best", "last"), "--checkpoint")
    if not images and split is None:
        raise ConvtrainError(
            "explain: expected IMAGE files or --split test|val|train (with --per-class N), "
            "received neither"
        )
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
    target = geometry.choose_layer(plan, layer)
    root = resolve_root(experiment.data)
    sources = from_paths(list(images), saved, root)
    if split is not None:
        sources += from_split(saved, split, per_class, root)
    decoded, failed = decode(sources, experiment.data)
    out_dir = Path(out) if out is not None else run.path / "explain"
    result = Explanation(
        run=str(run.path), checkpoint=checkpoint, out_dir=str(out_dir), html=None,
        filters_png=None, images=[], failed=failed,
    )  # fmt: skip
    if not decoded:
        return result

    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    from convtrain.explain.filters import kernels, plot_filters
    from convtrain.explain.probe import Probe
    from convtrain.explain.render import Picture, render
    from convtrain.train.checkpoints import load_checkpoint

    model = load_model(run, checkpoint)
    check_model(model, run.checkpoint(checkpoint), experiment, len(classes))
    features = geometry.feature_layers(plan)
    unit = geometry.centre_unit(plan, target.name)
    probe = Probe(model, target, target, tuple(features), unit)
    k = min(top_k or experiment.eval.top_k, len(classes))
    requested = classes.index(class_name) if class_name is not None else None
    if pictures:
        out_dir.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(decoded), BATCH):
        chunk = decoded[start : start + BATCH]
        wanted = {
            "true": np.array([-1 if d.source.label is None else d.source.label for d in chunk])
        }
        if requested is not None:
            wanted["requested"] = np.full(len(chunk), requested)
        probed = probe(np.stack([d.inputs for d in chunk]), wanted)
        for i, d in enumerate(chunk):
            n = start + i + 1
            top = np.argsort(-probed.probs[i], kind="stable")[:k]
            cams = {
                role: probed.cams[role][i] for role in probed.cams if probed.classes[role][i] >= 0
            }
            record = ImageExplanation(
                image=d.source.shown,
                true_class=None if d.source.label is None else classes[d.source.label],
                split=d.source.part,
                predictions=[
                    ClassScore(class_name=classes[c], probability=float(probed.probs[i, c]))
                    for c in top
                ],
                gradcam_layer=target.name,
                gradcam=[
                    measure.gradcam(role, classes[probed.classes[role][i]], cam, plan, target.name)
                    for role, cam in cams.items()
                ],
                receptive_field=measure.receptive_field(probed.erf[i], plan, target.name, unit),
                png=str(out_dir / f"{n:02d}-{_slug(d.source.shown)}.png") if pictures else None,
            )
            result.images.append(record)
            if not pictures:
                continue
            picture = Picture(
                pixels=d.pixels,
                cams=cams,
                erf=probed.erf[i],
                features={name: maps[i] for name, maps in probed.features.items()},
                record=record,
                title=_title(d, classes, run, checkpoint),
            )
            render(picture, plan, features, Path(record.png))
    if not pictures:
        return result
    convs = geometry.conv_layers(plan)
    if convs:
        initial_path = run.checkpoint("initial")
        initial = load_checkpoint(initial_path, compile=False) if initial_path.is_file() else None
        found = kernels(model, initial, convs, plan.input)
        title = f"Filters of {run.path.name} ({checkpoint} checkpoint)" + (
            "" if initial is not None else " - no checkpoints/initial.keras: change not shown"
        )
        result.filters_png = str(plot_filters(found, out_dir / "filters.png", title))
    result.html = str(write_page(out_dir / "explain.html", result, plan))
    atomic_write_text(out_dir / "explain.json", result.to_json() + "\n")
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
        blocks.append(
            f"wrote {result.html}" + (f" and {result.filters_png}" if result.filters_png else "")
        )
    return "\n\n".join(blocks)
