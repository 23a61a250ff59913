"""report.html: self-contained, and showing what the run directory holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from test_compare import fake_run

from convtrain.config.load import load_config
from convtrain.experiments.html import run_report
from convtrain.model.plan import plan_model
from convtrain.rundir import RunDir
from convtrain.train.state import TrainState


def report(path: Path, with_state: bool = True) -> str:
    run = RunDir(path)
    plan = plan_model(load_config(run.config), 3)
    return run_report(run, plan, run.read(TrainState) if with_state else None).read_text()


def test_run_report_is_self_contained_and_complete(tmp_path: Path):
    run = fake_run(tmp_path, "r32", 32, 0.6125, 0.5875)
    (run / "plots").mkdir()
    for name in ("filters", "learning_curves"):
        Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(run / "plots" / f"{name}.png")
    (run / "reports" / "classification_report.txt").write_text("alpha  0.50  0.40\n")

    page = report(run)

    assert page.startswith("<!doctype html>")
    assert not re.search(
        r"""(src|href)=["']?(https?:)?//""", page
    )  # nothing fetched from a network
    assert page.count("data:image/png;base64,") == 2
    # plots in reading order: learning curves before filters
    assert page.index(">learning curves<") < page.index(">filters<")
    assert "<b>0.6125</b>" in page and "<b>0.5875</b>" in page
    assert "alpha  0.50  0.40" in page
    # the layer table: conv, global pool and the head convtrain adds
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", page)
    assert [kind for _, kind in rows] == ["conv2d", "global_avg_pool", "dense"]
    assert "filters: 32" in page  # the resolved config
    assert "<p>completed: 3 of 3 epochs; best val_accuracy 0.5000 at epoch 2</p>" in page
    assert "<h2>Training</h2>" not in report(run, with_state=False)


def test_run_without_evaluation_says_how_to_get_one(tmp_path: Path):
    run = fake_run(tmp_path, "r16", 16, 0.5, 0.5)
    (run / "reports" / "metrics.json").unlink()
    page = report(run)
    assert "No evaluation yet: run <code>convtrain evaluate</code>" in page


def test_sweep_report_names_the_winner_and_its_cost(tmp_path: Path):
    from convtrain.experiments import compare
    from convtrain.experiments.html import sweep_report

    runs = [
        fake_run(tmp_path, n, f, a, m)
        for n, f, a, m in [("r16", 16, 0.5, 0.48), ("r64", 64, 0.7, 0.66)]
    ]
    header, rows = compare.table(compare.collect([str(r) for r in runs]))
    page = sweep_report(tmp_path, header, rows, compare.cell).read_text()
    assert (
        "<b>Best: r64</b> with model.layers[0].filters = 64: accuracy 0.7000 (worst 0.5000), "
        "mean per-class accuracy 0.6600, at 1,987 parameters and 1,555,392 multiply-accumulates"
    ) in page
