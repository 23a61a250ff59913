"""`convtrain compare`: the table's figures are the runs' own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from convtrain.config.load import dump_config, validate
from convtrain.data.split import Split
from convtrain.errors import ConvtrainError
from convtrain.evaluate.summary import MetricsRecord
from convtrain.experiments import compare
from convtrain.model.inspect import totals
from convtrain.model.plan import plan_model
from convtrain.rundir import RunDir
from convtrain.train.state import Monitor, TrainState

BASE = {
    "name": "cmp",
    "data": {"classes": ["a", "b", "c"], "image_size": 32},
    "model": {
        "layers": [
            {"type": "conv2d", "filters": 16, "kernel_size": 3, "activation": "relu"},
            {"type": "global_avg_pool"},
        ]
    },
    "train": {"epochs": 3},
}


def fake_run(root: Path, name: str, filters: int, acc: float, mpca: float) -> Path:
    """A run directory as `train` + `evaluate` leave it, with known figures."""
    raw = json.loads(json.dumps(BASE))
    raw["model"]["layers"][0]["filters"] = filters
    run = root / name
    (run / "reports").mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(validate(raw)))
    Split(classes=("a", "b", "c"), train=(("a/1.jpg", 0),), val=(), test=(("b/1.jpg", 1),)).write(
        run / "split.json"
    )
    MetricsRecord(
        checkpoint="best",
        split="test",
        num_images=20,
        num_classes=3,
        accuracy=acc,
        mean_per_class_accuracy=mpca,
        top_k=3,
        top_k_accuracy=1.0,
    ).write(run / "reports" / "metrics.json")
    state = TrainState.begin(3, Monitor("val_accuracy", "max"))
    for epoch, value in ((1, 0.4), (2, 0.5), (3, 0.45)):
        state.record({"epoch": epoch, "val_accuracy": value})
    state.status = "completed"
    state.save(RunDir(run))
    (run / "history.csv").write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,lr,epoch_time,images_per_s\n"
        "1,1.0,0.5,1.1,0.4,0.001,10.0,100\n2,0.8,0.6,0.9,0.5,0.001,12.0,120\n3,0.7,0.7,0.95,0.45,0.001,11.0,110\n"
    )
    return run


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [
        fake_run(tmp_path, "r16", 16, 0.50, 0.48),
        fake_run(tmp_path, "r64", 64, 0.70, 0.66),
        fake_run(tmp_path, "r32", 32, 0.60, 0.61),
    ]


def test_table_rows_carry_each_runs_own_figures(runs):
    header, rows = compare.table(compare.collect([str(r) for r in runs]), sort_by="accuracy")
    assert header[:2] == ["run", "model.layers[0].filters"]
    assert [r[0] for r in rows] == ["r64", "r32", "r16"]  # sorted by accuracy, best first
    by_name = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    for run in runs:
        row = by_name[run.name]
        metrics = json.loads((run / "reports" / "metrics.json").read_text())
        assert row["accuracy"] == metrics["accuracy"]
        assert row["mean_per_class_accuracy"] == metrics["mean_per_class_accuracy"]
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        expected = totals(plan_model(validate(cfg), 3))
        assert (row["params"], row["MACs"]) == (expected.params, expected.macs)
        assert row["model.layers[0].filters"] == cfg["model"]["layers"][0]["filters"]
        assert row["train_s"] == 33.0
        assert row["images_per_s"] == 110.0
        assert row["best_epoch"] == 2


def test_sort_by_mean_per_class_accuracy(runs):
    _, rows = compare.table(compare.collect([str(r) for r in runs]), "mean_per_class_accuracy")
    assert [r[0] for r in rows] == ["r64", "r32", "r16"][:1] + ["r32", "r16"]


def test_only_differing_keys_are_columns(runs):
    summaries = compare.collect([str(r) for r in runs])
    assert compare.differing(summaries) == ["model.layers[0].filters"]


def test_outputs_written(runs, tmp_path):
    summaries = compare.collect([str(r) for r in runs])
    compare.write_outputs(tmp_path, summaries, "accuracy")
    md = (tmp_path / "compare.md").read_text().splitlines()
    assert md[0].startswith("| run | model.layers[0].filters | accuracy")
    assert md[2].startswith("| r64 | 64 | 0.7000 |")
    assert (tmp_path / "compare.csv").read_text().splitlines()[1].startswith("r64,64,0.7,")
    for png in ("compare_cost.png", "compare_curves.png"):
        assert (tmp_path / png).stat().st_size > 10_000


def test_unevaluated_run_is_a_clear_error(runs):
    (runs[0] / "reports" / "metrics.json").unlink()
    with pytest.raises(ConvtrainError) as exc:
        compare.collect([str(runs[0])])
    assert (
        str(exc.value)
        == f"{runs[0]}: no reports/metrics.json; run `convtrain evaluate {runs[0]}` first"
    )


def test_a_key_one_config_omits_is_not_a_difference(runs):
    """A config written without a defaulted section (an older convtrain) compares on its values."""
    cfg = yaml.safe_load((runs[0] / "config.yaml").read_text())
    del cfg["eval"], cfg["distribute"]
    (runs[0] / "config.yaml").write_text(yaml.safe_dump(cfg))
    summaries = compare.collect([str(r) for r in runs])
    assert compare.differing(summaries) == ["model.layers[0].filters"]


def _summary(config: dict) -> compare.RunSummary:
    return compare.RunSummary(
        run=None, config=compare.flatten(config), metrics={}, params=0, macs=0,
        train_time_s=0.0, images_per_s=None, best_epoch=None, epochs_done=0, history=None,
    )  # fmt: skip


def test_a_layer_of_another_type_is_one_column_not_every_default():
    """downsample.yaml swaps a max pool for a strided conv: the table shows the type, not every
    field of both layer types; a field that differs between runs of the same type still shows."""
    pool = {"type": "max_pool", "pool_size": [2, 2], "padding": "valid"}
    conv = {"type": "conv2d", "filters": 32, "strides": [2, 2], "padding": "same"}
    wide = {**conv, "filters": 64}
    runs = [_summary({"model": {"layers": [{"type": "flatten"}, layer]}}) for layer in (pool, conv)]
    assert compare.differing(runs) == ["model.layers[1].type"]
    runs.append(_summary({"model": {"layers": [{"type": "flatten"}, wide]}}))
    assert compare.differing(runs) == ["model.layers[1].filters", "model.layers[1].type"]


def test_layers_following_a_changed_default_are_not_repeated():
    """padding.yaml sets model.defaults.conv2d.padding: one column, not one per conv layer."""

    def config(padding: str) -> dict:
        conv = {"type": "conv2d", "padding": padding}
        return {"model": {"defaults": {"conv2d": {"padding": padding}}, "layers": [conv, conv]}}

    runs = [_summary(config("valid")), _summary(config("same"))]
    assert compare.differing(runs) == ["model.defaults.conv2d.padding"]
    # a default of 2 for a pair argument is (2, 2) in each layer: still the same column
    dilated = [
        _summary({"model": {"defaults": {"conv2d": {"dilation_rate": d}}, "layers": [layer]}})
        for d, layer in ((1, {"dilation_rate": [1, 1]}), (2, {"dilation_rate": [2, 2]}))
    ]
    assert compare.differing(dilated) == ["model.defaults.conv2d.dilation_rate"]
    # the second layer overrides the default in both runs: its own column
    runs[0].config["model.layers[1].padding"] = "same"
    runs[1].config["model.layers[1].padding"] = "valid"
    assert compare.differing(runs) == ["model.defaults.conv2d.padding", "model.layers[1].padding"]


def test_initializers_regularizers_and_constraints_are_one_cell_in_one_notation():
    """l2.yaml writes `{l2: 1.0e-4}` in model.defaults; the resolved layers hold
    `{type: l2, l2: 1.0e-4}`: both read `l2(l2=0.0001)`, so the layers follow the default."""

    def config(reg: dict | None, constraint: object) -> dict:
        resolved = None if reg is None else {"type": "l2", **reg}
        layer = {"kernel_regularizer": resolved, "kernel_constraint": constraint}
        defaults = {"conv2d": {"kernel_regularizer": reg, "kernel_constraint": constraint}}
        return {"model": {"defaults": defaults, "layers": [layer]}}

    wide = {"type": "max_norm", "max_value": 2.0, "axis": [0, 1, 2]}
    runs = [_summary(config(None, None)), _summary(config({"l2": 0.001}, wide))]
    assert compare.differing(runs) == [
        "model.defaults.conv2d.kernel_constraint",
        "model.defaults.conv2d.kernel_regularizer",
    ]
    assert runs[1].config["model.layers[0].kernel_regularizer"] == "l2(l2=0.001)"
    assert runs[1].config["model.defaults.conv2d.kernel_regularizer"] == "l2(l2=0.001)"
    assert runs[1].config["model.layers[0].kernel_constraint"] == (
        "max_norm(axis=[0, 1, 2], max_value=2.0)"
    )
    assert compare.flatten({"sweep": {"grid": {"a.kernel_initializer": ["zeros", "ones"]}}}) == {
        "sweep.grid.a.kernel_initializer": ("zeros", "ones")
    }


def test_cells_read_as_the_config_writes_them():
    assert [compare.cell(v) for v in (True, False, None, 3, 0.93641, (5, 5))] == [
        "true", "false", "-", "3", "0.9364", "[5, 5]",
    ]  # fmt: skip
