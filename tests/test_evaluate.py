"""`convtrain evaluate` on a run directory built by hand: a tiny trained model and a synthetic dataset."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_dataset
from PIL import Image

from convtrain.commands import main
from convtrain.commands.evaluate import evaluate_and_report
from convtrain.config.load import load_config
from convtrain.data.decode import decode_image
from convtrain.data.split import Split
from convtrain.evaluate.figures import GRID_TITLE_CHARS, grid_title
from convtrain.evaluate.summary import MetricsRecord
from convtrain.history import read_history
from convtrain.model.plan import plan_model
from convtrain.rundir import RunDir

CLASSES = ("alpha", "beta", "delta", "gamma")
SIZE = 16


def evaluate_run(run: RunDir, checkpoint: str, split: str) -> MetricsRecord:
    """What `convtrain evaluate RUN --checkpoint C --split S` does, in this process."""
    experiment = load_config(run.config)
    saved = run.read(Split)
    plan = plan_model(experiment, len(saved.classes))
    return evaluate_and_report(run, experiment, saved, plan, checkpoint, split)


def config_dict(root: Path, cache: Path, top_k: int = 2) -> dict:
    return {
        "name": "tiny",
        "seed": 1,
        "data": {
            "root": str(root),
            "cache_dir": str(cache),
            "image_size": [SIZE, SIZE],
            "split": {"method": "stratified", "val": 0.2, "test": 0.3},
        },
        "model": {
            "layers": [
                {"type": "conv2d", "filters": 6, "kernel_size": 3, "activation": "relu"},
                {"type": "global_avg_pool"},
                {"type": "dense", "units": "classes", "activation": "softmax"},
            ]
        },
        "train": {"epochs": 3, "batch_size": 8},
        "eval": {"top_k": top_k},
    }


def _tiny_model(num_classes: int):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def _load(root: Path, items) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([decode_image(root / p, (SIZE, SIZE), "stretch", "rgb") for p, _ in items])
    return x.astype(np.float32) / 255.0, np.array([label for _, label in items])


@pytest.fixture(scope="module")
def built_run(tmp_path_factory) -> Path:
    """A complete run directory: config, split, history, best and last checkpoints."""
    base = tmp_path_factory.mktemp("evaluate")
    # Few images per class and a briefly trained model: some test images are misclassified.
    root = make_dataset(base / "ds", {c: 10 for c in CLASSES}, seed=3)
    run = RunDir(base / "run-0")
    run.path.mkdir()
    run.config.write_text(yaml.safe_dump(config_dict(root, base / "cache")))
    rng = np.random.default_rng(0)
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, name in enumerate(CLASSES):
        files = sorted(f"{name}/{p.name}" for p in (root / name).iterdir())
        files = [files[i] for i in rng.permutation(len(files))]
        parts["test"] += [(f, label) for f in files[:4]]
        parts["val"] += [(f, label) for f in files[4:6]]
        parts["train"] += [(f, label) for f in files[6:]]
    split = Split(classes=CLASSES, **{k: tuple(sorted(v)) for k, v in parts.items()})
    run.write(split)
    model = _tiny_model(len(CLASSES))
    import keras

    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="categorical_crossentropy")
    x, y = _load(root, split.train)
    model.fit(x, np.eye(len(CLASSES))[y], epochs=12, batch_size=8, verbose=0)
    run.checkpoints.mkdir()
    model.save(run.checkpoint("best"))
    model.fit(x, np.eye(len(CLASSES))[y], epochs=3, batch_size=8, verbose=0)
    model.save(run.checkpoint("last"))
    run.history.write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,lr,epoch_time,images_per_s\n"
        "1,1.40,0.30,1.38,0.25,0.001,0.5,40\n"
        "2,1.30,0.45,1.35,0.50,0.001,0.4,50\n"
        "3,1.20,0.55,1.36,0.375,0.0005,0.4,50\n"
    )
    return run.path


@pytest.fixture
def run_copy(built_run: Path, tmp_path: Path) -> RunDir:
    dst = tmp_path / built_run.name
    shutil.copytree(built_run, dst)
    return RunDir(dst)


def _expected(run: RunDir, which: str, part: str, k: int) -> dict:
    """Metrics computed here, independently of convtrain.evaluate: Keras + numpy only."""
    import keras

    cfg = yaml.safe_load(run.config.read_text())
    split = json.loads(run.split.read_text())
    model = keras.models.load_model(run.checkpoint(which), safe_mode=True, compile=False)
    x, y = _load(Path(cfg["data"]["root"]), split[part])
    probs = model.predict(x, verbose=0)
    pred = probs.argmax(axis=1)
    n = len(split["classes"])
    cm = np.zeros((n, n), dtype=int)
    for t, p in zip(y, pred, strict=True):
        cm[t, p] += 1
    recall = [cm[i, i] / cm[i].sum() for i in range(n) if cm[i].sum()]
    topk = np.argsort(-probs, axis=1)[:, :k]
    return {
        "accuracy": float((pred == y).mean()),
        "mean_per_class_accuracy": float(np.mean(recall)),
        "top_k_accuracy": float((topk == y[:, None]).any(axis=1).mean()),
        "confusion": cm,
        "num_images": len(y),
    }


def _confusion_csv(path: Path) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(path.open()))
    assert rows[0][0] == "true \\ predicted"
    assert [r[0] for r in rows[1:]] == rows[0][1:]
    return rows[0][1:], np.array([[int(v) for v in r[1:]] for r in rows[1:]])


def test_metrics_match_an_independent_computation(run_copy, capsys):
    summary = evaluate_run(run_copy, "best", "test")
    expected = _expected(run_copy, "best", "test", k=2)
    saved = json.loads((run_copy.reports / "metrics.json").read_text())
    assert saved == summary.model_dump()
    assert saved["checkpoint"] == "best" and saved["split"] == "test"
    assert saved["num_images"] == expected["num_images"] == 16
    assert saved["num_classes"] == 4 and saved["top_k"] == 2
    for key in ("accuracy", "mean_per_class_accuracy", "top_k_accuracy"):
        assert saved[key] == pytest.approx(expected[key], abs=1e-9), key
    # The fixture's model is neither perfect nor useless: the comparison means something.
    assert 0.0 < saved["accuracy"] < 1.0
    names, cm = _confusion_csv(run_copy.reports / "confusion_matrix.csv")
    assert names == list(CLASSES)
    np.testing.assert_array_equal(cm, expected["confusion"])

    report = json.loads((run_copy.reports / "classification_report.json").read_text())
    for i, name in enumerate(CLASSES):
        assert report[name]["support"] == cm[i].sum()
        assert report[name]["recall"] == pytest.approx(cm[i, i] / cm[i].sum())
    text = (run_copy.reports / "classification_report.txt").read_text()
    assert all(name in text for name in CLASSES) and "precision" in text

    pairs = list(csv.DictReader((run_copy.reports / "confused_pairs.csv").open()))
    off = cm.copy()
    np.fill_diagonal(off, 0)
    assert sum(int(p["count"]) for p in pairs) == off.sum()
    assert [int(p["count"]) for p in pairs] == sorted(
        (int(p["count"]) for p in pairs), reverse=True
    )

    preds = list(csv.DictReader((run_copy.reports / "predictions.csv").open()))
    assert len(preds) == 16
    assert sum(int(p["correct"]) for p in preds) == round(saved["accuracy"] * 16)

    out = capsys.readouterr().out
    assert f"accuracy                 {saved['accuracy']:.4f}" in out
    assert f"mean per-class accuracy  {saved['mean_per_class_accuracy']:.4f}" in out
    assert f"top-2 accuracy           {saved['top_k_accuracy']:.4f}" in out
    assert "most confused" in out
    assert str(run_copy.reports) in out


def test_plots_are_written_and_non_trivial(run_copy):
    evaluate_run(run_copy, "best", "test")
    expected = {
        "confusion_matrix.png",
        "per_class_accuracy.png",
        "learning_curves.png",
        "misclassified.png",
        "filters.png",
    }
    assert {p.name for p in run_copy.plots.iterdir()} == expected
    for name in expected:
        path = run_copy.plots / name
        with Image.open(path) as img:
            assert img.format == "PNG"
            assert min(img.size) >= 200, name
            assert np.asarray(img.convert("L")).std() > 10, name
        assert path.stat().st_size > 10_000, name


def test_evaluating_twice_gives_identical_reports(run_copy):
    evaluate_run(run_copy, "best", "test")
    first = {p.name: p.read_bytes() for p in run_copy.reports.iterdir()}
    evaluate_run(run_copy, "best", "test")
    second = {p.name: p.read_bytes() for p in run_copy.reports.iterdir()}
    assert first == second
    assert set(first) == {
        "metrics.json",
        "classification_report.txt",
        "classification_report.json",
        "confusion_matrix.csv",
        "confused_pairs.csv",
        "predictions.csv",
    }


def test_cli_defaults_from_eval_section_and_options(run_copy, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(run_copy.path)])
    assert exit_.value.code == 0
    saved = json.loads((run_copy.reports / "metrics.json").read_text())
    assert (saved["checkpoint"], saved["split"], saved["top_k"]) == ("best", "test", 2)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(run_copy.path), "--checkpoint", "last", "--split", "val"])
    assert exit_.value.code == 0
    saved = json.loads((run_copy.reports / "metrics.json").read_text())
    expected = _expected(run_copy, "last", "val", k=2)
    assert (saved["checkpoint"], saved["split"], saved["num_images"]) == ("last", "val", 8)
    assert saved["accuracy"] == pytest.approx(expected["accuracy"])


def test_history_best_epoch_follows_the_monitor(built_run):
    history = read_history(RunDir(built_run).history)
    assert history.best_epoch("val_accuracy") == (2, "val_accuracy")
    assert history.best_epoch("val_loss") == (2, "val_loss")
    assert history.best_epoch("loss") == (3, "loss")


def test_history_without_validation_falls_back_to_training_metric(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,2.0,0.2,,,0.01\n2,1.0,0.4,,,0.01\n"
    )
    history = read_history(path)
    assert not history.has("val_loss")
    assert history.best_epoch("val_accuracy") == (2, "accuracy")
    path.write_text("epoch,loss\n1,abc\n")
    with pytest.raises(Exception) as err:
        read_history(path)
    assert str(err.value) == f"{path}: line 2, column loss: expected a number, received 'abc'"
    assert read_history(tmp_path / "absent.csv") is None


# --- errors: one line, exit 2, nothing destroyed ----------------------------------------------


def _fails(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_missing_run_and_not_a_run(tmp_path, capsys):
    err = _fails(["evaluate", str(tmp_path / "nope")], capsys)
    assert err == f"error: {tmp_path / 'nope'}: no such run directory"
    (tmp_path / "empty").mkdir()
    err = _fails(["evaluate", str(tmp_path / "empty")], capsys)
    assert err.startswith(f"error: {tmp_path / 'empty'}: not a convtrain run directory")


def test_missing_checkpoint_and_missing_split(run_copy, capsys):
    run_copy.checkpoint("best").unlink()
    err = _fails(["evaluate", str(run_copy.path)], capsys)
    assert err == (
        f"error: {run_copy.path}: incomplete run directory: checkpoints/best.keras is missing "
        f"(present: last.keras)"
    )
    run_copy.split.unlink()
    err = _fails(["evaluate", str(run_copy.path), "--checkpoint", "last"], capsys)
    assert err == f"error: {run_copy.path}: incomplete run directory: split.json is missing"


def test_truncated_checkpoint_leaves_earlier_reports_alone(run_copy, capsys):
    evaluate_run(run_copy, "best", "test")
    capsys.readouterr()
    before = {p: p.read_bytes() for d in (run_copy.reports, run_copy.plots) for p in d.iterdir()}
    data = run_copy.checkpoint("best").read_bytes()
    run_copy.checkpoint("best").write_bytes(data[: len(data) // 2])
    err = _fails(["evaluate", str(run_copy.path)], capsys)
    assert err.startswith(f"error: {run_copy.checkpoint('best')}: cannot load the checkpoint")
    after = {p: p.read_bytes() for d in (run_copy.reports, run_copy.plots) for p in d.iterdir()}
    assert after == before


def test_garbage_split_and_config(run_copy, capsys):
    run_copy.split.write_text("{not json")
    err = _fails(["evaluate", str(run_copy.path)], capsys)
    assert err.startswith(f"error: {run_copy.split}: expected JSON, received invalid text")
    run_copy.config.write_text("model: [unclosed\n")
    err = _fails(["evaluate", str(run_copy.path)], capsys)
    assert err.startswith(f"error: {run_copy.config}:")
    assert "invalid YAML" in err


def test_split_without_val_images(run_copy, capsys):
    data = json.loads(run_copy.split.read_text())
    data["val"] = []
    run_copy.split.write_text(json.dumps(data))
    err = _fails(["evaluate", str(run_copy.path), "--split", "val"], capsys)
    assert err == (
        f"error: {run_copy.split}: expected images in the val split, received none "
        f"(evaluate another split with --split test)"
    )


def test_checkpoint_for_other_classes_is_refused(run_copy, capsys):
    _tiny_model(3).save(run_copy.checkpoint("best"))
    err = _fails(["evaluate", str(run_copy.path)], capsys)
    assert err == (
        f"error: {run_copy.checkpoint('best')}: expected a model scoring the 4 classes of "
        f"split.json, received a model with 3 outputs"
    )


@pytest.mark.parametrize("damage", ["truncated checkpoint", "garbage split"])
def test_end_to_end_error_is_one_line_without_traceback(run_copy, damage):
    if damage == "truncated checkpoint":
        run_copy.checkpoint("best").write_bytes(b"PK\x03\x04 not really a zip")
        culprit = run_copy.checkpoint("best")
    else:
        run_copy.split.write_text("[1, 2, 3]")
        culprit = run_copy.split
    proc = subprocess.run(
        [sys.executable, "-m", "convtrain", "evaluate", str(run_copy.path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=240,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(culprit) in lines[0]
    assert proc.stdout == ""


def test_a_plot_with_nothing_to_draw_does_not_survive_from_an_earlier_evaluation(run_copy, capsys):
    evaluate_run(run_copy, "best", "test")
    assert (run_copy.plots / "learning_curves.png").is_file()
    run_copy.history.unlink()
    evaluate_run(run_copy, "best", "test")
    assert not (run_copy.plots / "learning_curves.png").exists()
    assert f"note: removed {run_copy.plots / 'learning_curves.png'}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("true", "predicted", "expected"),
    [
        ("ant", "bass", "ant\nbass 87%"),
        ("crocodile_head", "electric_guitar", "crocodil\u2026\nelectric_\u2026 87%"),
        ("ant", "electric_guitar_longer", "ant\nelectric_guitar\u2026 87%"),
    ],
)
def test_grid_titles_fit_image_grid(true, predicted, expected):
    title = grid_title(true, predicted, 0.87)
    assert title == expected
    assert len(title) <= GRID_TITLE_CHARS


def test_missing_dataset_is_one_line_and_reports_stay(run_copy, tmp_path, capsys, monkeypatch):
    evaluate_run(run_copy, "best", "test")
    capsys.readouterr()
    before = (run_copy.reports / "metrics.json").read_bytes()
    monkeypatch.setenv("CONVTRAIN_DATA_ROOT", str(tmp_path / "gone"))
    err = _fails(["evaluate", str(run_copy.path)], capsys)
    assert err.startswith(f"error: {tmp_path / 'gone'}: dataset folder not found")
    assert (run_copy.reports / "metrics.json").read_bytes() == before


def test_first_conv_skips_other_convolutions_and_looks_inside_nested_models():
    import keras

    from convtrain.evaluate.figures import first_conv

    inner = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(4, 3, name="c1"),
        ]
    )
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.SeparableConv2D(3, 3, padding="same"),
            inner,
            keras.layers.Conv2D(2, 3, name="c2"),
        ]
    )
    assert first_conv(model).name == "c1"
    assert first_conv(keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten()])) is None


# --- a damaged history.csv or state.json: one warning, only what depends on it left out ------


def _evaluate_cli(run: RunDir, capsys) -> list[str]:
    """`convtrain evaluate RUN`; its warning lines (it must succeed)."""
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(run.path)])
    assert exit_.value.code == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_a_corrupt_history_is_one_warning_and_only_the_curves_are_left_out(run_copy, capsys):
    evaluate_run(run_copy, "best", "test")
    capsys.readouterr()
    before = (run_copy.reports / "metrics.json").read_text()
    run_copy.history.write_text("epoch,loss\n1,1.4\nnot,a number\n")
    assert _evaluate_cli(run_copy, capsys) == [
        f"warning: {run_copy.history}: line 3, column epoch: expected a number, received 'not'; "
        f"the learning curves are left out"
    ]
    assert {p.name for p in run_copy.plots.iterdir()} == {
        "confusion_matrix.png",
        "per_class_accuracy.png",
        "misclassified.png",
        "filters.png",
    }
    assert (run_copy.reports / "metrics.json").read_text() == before
    page = (run_copy.path / "report.html").read_text()
    assert ">confusion matrix<" in page and ">learning curves<" not in page


def test_a_corrupt_state_is_one_warning_and_leaves_out_the_training(run_copy, capsys):
    from convtrain.train.state import Monitor, TrainState

    state = TrainState.begin(3, Monitor("val_accuracy", "max"))
    for row in csv.DictReader(run_copy.history.open()):
        state.record({k: float(v) if k != "epoch" else int(v) for k, v in row.items()})
    state.status = "completed"
    state.save(run_copy)
    assert _evaluate_cli(run_copy, capsys) == []
    page = (run_copy.path / "report.html").read_text()
    assert "<p>completed: 3 of 3 epochs; best val_accuracy 0.5000 at epoch 2</p>" in page

    damaged = {**json.loads(run_copy.state.read_text()), "completed_epochs": "two"}
    run_copy.state.write_text(json.dumps(damaged))
    assert _evaluate_cli(run_copy, capsys) == [
        f"warning: {run_copy.state}: completed_epochs: expected an integer, received 'two'; "
        f"the report leaves out the training and the best epoch"
    ]
    page = (run_copy.path / "report.html").read_text()
    assert "<h2>Training</h2>" not in page
    assert (run_copy.plots / "learning_curves.png").is_file()  # history.csv is intact
    assert json.loads((run_copy.reports / "metrics.json").read_text())["num_images"] == 16
