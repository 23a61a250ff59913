"""`convtrain predict` on the hand-built run of test_evaluate (a tiny trained model, 4 classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_evaluate import CLASSES, SIZE, built_run  # noqa: F401 - built_run is a fixture

from convtrain.commands import main
from convtrain.data.decode import decode_image
from convtrain.evaluate.predict import format_table, predict_images
from convtrain.rundir import RunDir


def _images(run_dir: Path) -> list[str]:
    """One test image of each class, as a user would pass them: paths to image files."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    root = Path(cfg["data"]["root"])
    firsts = {}
    for path, label in split["test"]:
        firsts.setdefault(label, str(root / path))
    return [firsts[label] for label in sorted(firsts)]


def _independent(run_dir: Path, images: list[str], which: str = "best") -> np.ndarray:
    """Probabilities computed here: the run's decoder (16x16, stretch, RGB), /255, Keras."""
    import keras

    model = keras.models.load_model(
        run_dir / "checkpoints" / f"{which}.keras", safe_mode=True, compile=False
    )
    x = np.stack([decode_image(Path(p), (SIZE, SIZE), "stretch", "rgb") for p in images])
    return model.predict(x.astype(np.float32) / 255.0, verbose=0)


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_json_gives_top_k_classes_and_probabilities_of_the_model(built_run, capsys):  # noqa: F811
    images = _images(built_run)
    code, out, _ = _run(
        ["predict", str(built_run), *images, "--format", "json", "--top-k", "3"], capsys
    )
    assert code == 0
    result = json.loads(out)
    probs = _independent(built_run, images)
    assert [r["image"] for r in result] == images
    for r, row in zip(result, probs, strict=True):
        expected = np.argsort(-row)[:3]
        assert [p["class"] for p in r["predictions"]] == [CLASSES[i] for i in expected]
        got = [p["probability"] for p in r["predictions"]]
        np.testing.assert_allclose(got, row[expected], atol=1e-5)
        assert got == sorted(got, reverse=True)


def test_table_lists_each_image_with_ranked_classes(built_run, capsys):  # noqa: F811
    images = _images(built_run)[:2]
    code, out, _ = _run(["predict", str(built_run), *images, "--top-k", "2"], capsys)
    assert code == 0
    probs = _independent(built_run, images)
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 2
    for block, image, row in zip(blocks, images, probs, strict=True):
        lines = block.splitlines()
        assert lines[0] == image
        best = int(np.argmax(row))
        assert lines[1].split() == ["1.", CLASSES[best], f"{row[best]:.2%}"]
        assert lines[2].lstrip().startswith("2. ")
        assert len(lines) == 3


def test_top_k_is_capped_and_last_checkpoint_used(built_run):  # noqa: F811
    images = _images(built_run)[:1]
    results = predict_images(RunDir(built_run), images, top_k=50, checkpoint="last")
    assert len(results[0].top) == len(CLASSES)
    assert sum(p for _, p in results[0].top) == pytest.approx(1.0, abs=1e-5)
    expected = _independent(built_run, images, which="last")[0]
    assert results[0].top[0] == (
        CLASSES[int(np.argmax(expected))],
        pytest.approx(expected.max(), abs=1e-5),
    )


def test_grayscale_and_odd_sized_images_use_the_runs_preprocessing(built_run, tmp_path):  # noqa: F811
    gray = tmp_path / "gray.png"
    Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (30, 1))).save(gray)
    results = predict_images(RunDir(built_run), [str(gray)], top_k=1, checkpoint="best")
    expected = _independent(built_run, [str(gray)])[0]
    assert results[0].top[0][0] == CLASSES[int(np.argmax(expected))]


def test_format_table_aligns_class_names():
    from convtrain.evaluate.predict import ImagePrediction

    text = format_table([ImagePrediction("a.jpg", (("crocodile_head", 0.9), ("ant", 0.05)))])
    assert text == "a.jpg\n  1. crocodile_head   90.00%\n  2. ant               5.00%"


def test_unreadable_or_missing_image_is_one_line_naming_the_file(built_run, tmp_path, capsys):  # noqa: F811
    bad = tmp_path / "notes.jpg"
    bad.write_text("a text file with an image's name\n")
    good = _images(built_run)[0]
    code, out, err = _run(["predict", str(built_run), good, str(bad)], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {bad}: cannot decode the image (not an image)"]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(Path(good).read_bytes()[:200])
    code, out, err = _run(["predict", str(built_run), str(truncated)], capsys)
    assert code == 2 and out == ""
    assert err.strip().startswith(f"error: {truncated}: cannot decode the image (")
    assert len(err.strip().splitlines()) == 1
    code, out, err = _run(["predict", str(built_run), str(tmp_path / "absent.jpg")], capsys)
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'absent.jpg'}: no such image file"


def test_predict_on_a_run_without_the_checkpoint(built_run, tmp_path, capsys):  # noqa: F811
    code, _, err = _run(["predict", str(tmp_path), _images(built_run)[0]], capsys)
    assert code == 2
    assert err.strip().startswith(f"error: {tmp_path}: not a convtrain run directory")


def test_end_to_end_exit_codes_without_traceback(built_run, tmp_path):  # noqa: F811
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "convtrain", "predict", str(built_run)]
    proc = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0]
    image = _images(built_run)[0]
    proc = subprocess.run(
        [*cmd, image, "--format", "json", "--top-k", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["image"] for r in json.loads(proc.stdout)] == [image]
