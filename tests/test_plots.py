from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convtrain.history import History
from convtrain.plots.evaluation import (
    filter_tiles,
    plot_confusion_matrix,
    plot_filters,
    plot_per_class_accuracy,
)
from convtrain.plots.save import DPI
from convtrain.plots.training import plot_learning_curves


def _png(path: Path) -> np.ndarray:
    """Checks that the file is a real, non-blank PNG; returns its pixels."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        assert img.info.get("dpi", (DPI, DPI))[0] == pytest.approx(DPI, abs=1)
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10  # not a blank canvas
    return pixels


def _confusion(num_classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cm = rng.integers(0, 3, (num_classes, num_classes))
    cm[np.diag_indices(num_classes)] += rng.integers(5, 30, num_classes)
    return cm


def test_confusion_matrix_101_classes_is_large_enough_to_label_every_class(tmp_path):
    classes = [f"category_{i:03d}" for i in range(101)]
    path = plot_confusion_matrix(_confusion(101), classes, tmp_path / "cm.png", title="101 classes")
    pixels = _png(path)
    h, w, _ = pixels.shape
    # Each of the 101 rows gets at least ~20 pixels, so 6-point labels do not overlap.
    assert h >= 101 * 20 and w >= 101 * 20
    assert path.stat().st_size > 100_000


def test_confusion_matrix_few_classes_is_compact_and_annotated(tmp_path):
    cm = np.array([[5, 1, 0], [0, 6, 0], [2, 0, 3]])
    few = _png(plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm3.png", title="3 classes"))
    h, w, _ = few.shape
    assert 500 <= h <= 1200 and 500 <= w <= 1400
    # Zero rows (a class absent from the split) are drawn, not a crash.
    cm[1] = 0
    _png(plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm3b.png", title="absent class"))


def test_per_class_accuracy_grows_with_the_number_of_classes(tmp_path):
    rng = np.random.default_rng(1)
    big = _png(
        plot_per_class_accuracy(
            rng.uniform(0, 1, 101),
            np.full(101, 20),
            [f"c{i}" for i in range(101)],
            tmp_path / "pc101.png",
            mean=0.5,
            title="101",
        )
    )
    small = _png(
        plot_per_class_accuracy(
            np.array([1.0, 0.5, 0.0]),
            np.array([3, 2, 0]),
            ["a", "b", "c"],
            tmp_path / "pc3.png",
            mean=0.75,
            title="3",
        )
    )
    assert big.shape[0] >= 101 * 20
    assert small.shape[0] < 700
    assert big.shape[1] == small.shape[1]


def test_filter_tiles_rgb_and_per_channel_are_scaled_to_unit_range():
    rng = np.random.default_rng(2)
    rgb, mode = filter_tiles(rng.normal(size=(5, 5, 3, 8)))
    assert mode == "rgb" and rgb.shape == (8, 5, 5, 3)
    gray, mode = filter_tiles(rng.normal(size=(3, 3, 1, 4)))
    assert mode == "channels" and gray.shape == (4, 1, 3, 3)
    for tiles in (rgb, gray):
        for f in tiles:
            assert f.min() == pytest.approx(0.0) and f.max() == pytest.approx(1.0)
    # A constant (e.g. pruned) filter is mid-grey, not a division by zero.
    flat, _ = filter_tiles(np.zeros((3, 3, 2, 1)))
    assert np.all(flat == 0.5)


@pytest.mark.parametrize("shape", [(5, 5, 3, 32), (3, 3, 1, 16), (3, 3, 2, 6), (7, 7, 3, 100)])
def test_filters_plot(tmp_path, shape):
    kernel = np.random.default_rng(3).normal(size=shape)
    _png(plot_filters(kernel, tmp_path / "f.png", title="conv2d"))


def _history(epochs: int, val: bool = True, lr_decay: bool = True) -> History:
    e = np.arange(1, epochs + 1)
    cols = {"loss": 2.0 / e, "accuracy": 1 - 1 / (e + 1)}
    if val:
        cols |= {"val_loss": 2.2 / e + 0.05 * e, "val_accuracy": 0.9 - 1 / (e + 1)}
    cols["lr"] = 1e-3 * (0.1 ** (e // 5) if lr_decay else np.ones(epochs))
    return History(epochs=e, columns=cols)


def test_learning_curves_with_and_without_validation(tmp_path):
    h = _history(20)
    assert h.best_epoch("val_loss") == (7, "val_loss")  # 2.2/e + 0.05e is lowest at e = 6.6
    pixels = _png(
        plot_learning_curves(h, tmp_path / "lc.png", title="t", best=h.best_epoch("val_accuracy"))
    )
    assert pixels.shape[1] > 2 * pixels.shape[0]  # three panels side by side
    one = _history(1, val=False, lr_decay=False)
    assert one.best_epoch("val_accuracy") == (1, "accuracy")
    _png(
        plot_learning_curves(
            one, tmp_path / "lc1.png", title="t", best=one.best_epoch("val_accuracy")
        )
    )


RENDER = """
import sys
from convtrain.plots.evaluation import plot_confusion_matrix
cm = [[int(v) for v in row.split(",")] for row in sys.argv[2].split(";")]
plot_confusion_matrix(__import__("numpy").array(cm), list("abcde"), sys.argv[1], title="x")
"""


def test_the_same_figure_is_the_same_bytes_in_another_process(tmp_path):
    """A report rendered again later (another process, another hash seed) must not differ: no
    timestamp or version in the PNG, no drawing order that depends on the process."""
    cm = _confusion(5)
    here = plot_confusion_matrix(cm, list("abcde"), tmp_path / "here.png", title="x")
    there = tmp_path / "there.png"
    text = ";".join(",".join(str(v) for v in row) for row in cm)
    env = {**os.environ, "PYTHONHASHSEED": str(os.getpid() % 1000 + 1)}
    subprocess.run([sys.executable, "-c", RENDER, str(there), text], env=env, check=True)
    assert there.read_bytes() == here.read_bytes()
    assert b"tIME" not in here.read_bytes() and b"Software" not in here.read_bytes()
    _png(here)


@pytest.mark.parametrize(("chosen", "starred"), [(None, 1), (2, 2)])
def test_the_cost_plot_stars_the_sweeps_choice_not_the_best_test_score(
    tmp_path, monkeypatch, chosen, starred
):
    from matplotlib.colors import to_hex

    import convtrain.plots.compare as plots

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, tight: drawn.setdefault("fig", fig))
    scores, params = [0.5, 0.9, 0.7], [100, 200, 300]
    plots.cost_plot(
        ["a", "b", "c"], scores, params, [10, 20, 30], "accuracy", tmp_path / "c.png", chosen=chosen
    )
    fig = drawn["fig"]
    red = [c.get_offsets()[0].tolist() for c in fig.axes[0].collections
           if to_hex(c.get_facecolor()[0]) == "#d62728"]  # fmt: skip
    assert red == [[params[starred], scores[starred]]]
    assert ("chosen on validation" in fig._suptitle.get_text()) == (chosen is not None)
