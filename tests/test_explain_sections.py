"""Grad-CAM where users already look: `convtrain evaluate` (plots and report.html) and the
report of a sweep (`convtrain compare`), on hand-built runs (untrained: they make mistakes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_explain_fields import build_run, conv

from convtrain.commands.evaluate import evaluate_and_report
from convtrain.config.load import load_config
from convtrain.data.split import Split
from convtrain.evaluate.summary import MetricsRecord
from convtrain.explain import sections
from convtrain.model.plan import plan_model

LAYERS = [conv(k=3, strides=2), conv(6, padding="same"), {"type": "global_avg_pool"}]


def evaluate_run(run, checkpoint: str, split: str) -> MetricsRecord:
    """What `convtrain evaluate RUN --checkpoint C --split S` does, in this process."""
    experiment = load_config(run.config)
    saved = run.read(Split)
    plan = plan_model(experiment, len(saved.classes))
    return evaluate_and_report(run, experiment, saved, plan, checkpoint, split)


def test_evaluate_draws_what_the_network_looks_at(tmp_path: Path) -> None:
    run = build_run(tmp_path, LAYERS, size=24)
    evaluate_run(run, "best", "test")
    looks = run.plots / "what_the_network_looks_at.png"
    assert looks.is_file() and (run.plots / "misclassified.png").is_file()
    assert Image.open(looks).size[0] >= 600
    page = (run.path / "report.html").read_text()
    order = [
        page.index(f"<h2>{h}</h2>")
        for h in ("misclassified", "what the network looks at", "filters")
    ]
    assert order == sorted(order)


def test_the_sample_is_each_classs_most_confident_right_and_wrong() -> None:
    y_true = np.array([0, 0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 1, 0, 1])
    confidence = np.array([0.5, 0.9, 0.6, 0.8, 0.7, 0.4, 0.95])
    rows = sections._sample(y_true, y_pred, confidence, per_class=1)
    assert rows == {0: ([1], [3], 2), 1: ([6], [5], 1)}


@pytest.mark.parametrize(
    ("keys", "layer"),
    [
        (["model.layers[0].kernel_size"], "conv2d_1"),
        (["model.defaults.conv2d.dilation_rate"], "conv2d_2"),  # every conv2d: the last one
        (["train.optimizer.learning_rate"], "conv2d_2"),  # no layer: the last spatial one
    ],
)
def test_the_layer_a_sweep_changed(keys: list[str], layer: str) -> None:
    raw = {"model": {"layers": LAYERS}, "data": {"image_size": 24}}
    from convtrain.config.load import validate

    found, why = sections.changed_layer(plan_model(validate(raw), 3), keys)
    assert found.name == layer and why


def test_compare_on_a_sweep_shows_the_same_images_across_trials(tmp_path: Path, capsys) -> None:
    from convtrain.commands.compare import run_compare

    sweep = tmp_path / "sweep"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"config_sha256": "", "axes": [], "trials": []}))
    fields = {}
    for k in (3, 5):
        layers = [conv(k=k, strides=2), *LAYERS[1:]]
        run = build_run(tmp_path / f"k{k}", layers, size=24)
        run.reports.mkdir()
        MetricsRecord(
            checkpoint="best", split="test", num_images=6, num_classes=3, accuracy=0.5,
            mean_per_class_accuracy=0.5, top_k=2, top_k_accuracy=0.9,
        ).write(run.reports / "metrics.json")  # fmt: skip
        dest = sweep / "trials" / f"t{k}-20260101-000000"
        shutil.move(run.path, dest)
        plan = plan_model(load_config(dest / "config.yaml"), 3)
        fields[k] = sections.changed_layer(plan, ["model.layers[0].kernel_size"])[0].step.out.rf
    assert fields == {3: (3, 3), 5: (5, 5)}  # the lesson the figure draws
    run_compare([str(sweep)])
    for name in ("compare_gradcam.png", "compare_layer.png"):
        assert Image.open(sweep / name).size[0] > 600, name
    page = (sweep / "report.html").read_text()
    assert "<h2>What the network looks at</h2>" in page
    assert page.count("data:image/png;base64") == 4  # cost, curves and the two new figures


def test_a_model_without_spatial_layers_is_evaluated_without_the_section(tmp_path: Path) -> None:
    from convtrain.errors import ConvtrainError
    from convtrain.explain.run import explain

    run = build_run(tmp_path, [{"type": "flatten"}, {"type": "dense", "units": 8}], size=12)
    evaluate_run(run, "best", "test")
    assert (run.plots / "misclassified.png").is_file()
    assert not (run.plots / "what_the_network_looks_at.png").exists()
    with pytest.raises(ConvtrainError, match="^--layer: the model has no layer with a spatial"):
        explain(run.path, split="test")


def test_a_model_not_built_from_its_config_is_skipped_or_refused(tmp_path: Path) -> None:
    """A checkpoint made another way (Keras's own layer names): evaluate draws no Grad-CAM,
    explain says why in one line."""
    import keras

    from convtrain.errors import ConvtrainError
    from convtrain.explain.run import explain

    run = build_run(tmp_path, LAYERS, size=24)
    other = keras.Sequential(
        [keras.Input((24, 24, 3)), keras.layers.Conv2D(4, 3, name="c"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    other.save(run.checkpoint("best"))
    evaluate_run(run, "best", "test")
    assert not (run.plots / "what_the_network_looks_at.png").exists()
    with pytest.raises(ConvtrainError) as info:
        explain(run.path, split="test")
    assert str(info.value) == (
        f"{run.checkpoint('best')}: expected the layers of config.yaml by name, received a model "
        "without 'conv2d_1', 'conv2d_2', 'global_avg_pool_1', 'classifier' (not built by "
        "`convtrain train` from this config)"
    )


def test_a_class_without_mistakes_says_so_instead_of_a_blank(tmp_path: Path, monkeypatch) -> None:
    from convtrain.train.loading import load_model

    run = build_run(tmp_path, LAYERS, size=24)
    experiment = load_config(run.config)
    classes = run.read(Split).classes
    model = load_model(run, "best")
    n = len(classes)
    y_true = np.array([0, 0, 1, 1])
    probs = np.full((4, n), 0.1 / max(1, n - 1))
    probs[[0, 1], 0] = 0.9  # class 0: both right
    probs[[2, 3], 0] = 0.9  # class 1: both called class 0
    written: list[str] = []
    original = sections.Sheet.text
    monkeypatch.setattr(sections.Sheet, "text",
                        lambda self, x, y, s, **kw: (written.append(s), original(self, x, y, s, **kw)))  # fmt: skip
    pixels = np.random.default_rng(0).integers(0, 255, (4, 24, 24, 3), dtype=np.uint8)
    path = sections.looks_at(model, experiment, classes, lambda i: pixels[i], y_true, probs,
                             tmp_path / "looks.png", "t")  # fmt: skip
    assert path is not None and path.is_file()
    assert written.count("none misclassified") == 1  # class 0
    assert written.count("none correct") == 1  # class 1
