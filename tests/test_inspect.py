"""`convtrain inspect`: table and JSON output, class count, and agreement with Keras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from convtrain.commands import cli
from convtrain.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def inspect_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["inspect", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_inspect_equals_keras_per_layer_and_in_total(path: Path) -> None:
    keras = pytest.importorskip("keras")
    from convtrain.model.build import build_model

    data = inspect_json(str(path))
    model = build_model(load_config(path), data["num_classes"])
    rows = [r for r in data["layers"] if r["type"] not in ("residual", "inception")]
    assert sorted(r["name"] for r in rows) == sorted(
        layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
    )
    for row in rows:
        layer = model.get_layer(row["name"])
        assert list(layer.output.shape[1:]) == row["output_shape"], row["name"]
        assert layer.count_params() == row["params"], row["name"]
    totals = data["totals"]
    assert totals["params"] == model.count_params()
    assert totals["trainable"] == sum(int(w.numpy().size) for w in model.trainable_weights)
    assert totals["non_trainable"] == sum(int(w.numpy().size) for w in model.non_trainable_weights)
    assert totals["flops"] == 2 * totals["macs"]
    assert list(model.input.shape[1:]) == data["input_shape"]


def test_table_output_stridednet() -> None:
    result = CliRunner().invoke(cli, ["inspect", str(CONFIGS[-1])])
    assert CONFIGS[-1].name == "stridednet.yaml"
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "stridednet: input 96x96x3, 4 classes (from data.classes)"
    assert lines[2].split() == ["layer", "type", "output", "params", "MACs", "RF", "jump"]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    # 16 filters of 7x7x3 plus biases; 45x45 outputs; RF 7, jump 2
    assert conv1.split() == ["conv1", "conv2d", "45x45x16", "2,368", "4.76M", "7", "2"]
    head = next(line for line in lines if line.startswith("classifier*"))
    assert head.split()[:4] == ["classifier*", "dense", "4", "2,052"]
    assert "params: 2,658,820 (2,656,900 trainable, 1,920 non-trainable)" in lines
    assert "warnings (1):" in lines


def test_nested_blocks_are_indented() -> None:
    result = CliRunner().invoke(
        cli, ["inspect", str(next(p for p in CONFIGS if "resnet" in p.name))]
    )
    lines = result.output.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("res2 "))
    assert lines[i + 1].startswith("  conv2d_3 ")
    assert any(line.startswith("  res2_projection* ") for line in lines)
    data = inspect_json(str(next(p for p in CONFIGS if "resnet" in p.name)))
    depths = {r["name"]: r["depth"] for r in data["layers"]}
    assert depths["res2"] == 0 and depths["conv2d_3"] == 1 and depths["res2_add"] == 1


def test_classes_all_defaults_to_101_and_says_so() -> None:
    path = str(next(p for p in CONFIGS if "inception" in p.name))
    data = inspect_json(path)
    assert data["num_classes"] == 101
    assert "assumed 101" in data["num_classes_source"]
    assert data["layers"][-1]["output_shape"] == [101]
    data = inspect_json(path, "--classes", "10")
    assert (data["num_classes"], data["num_classes_source"]) == (10, "from --classes")
    assert data["layers"][-1]["output_shape"] == [10]


def test_set_changes_what_inspect_shows() -> None:
    path = str(CONFIGS[-1])
    data = inspect_json(path, "--set", "model.layers[0].filters=32", "--set", "data.image_size=64")
    assert data["input_shape"] == [64, 64, 3]
    conv1 = data["layers"][0]
    assert conv1["output_shape"] == [29, 29, 32]
    assert conv1["params"] == 7 * 7 * 3 * 32 + 32


def test_json_rows_have_every_column() -> None:
    row = inspect_json(str(CONFIGS[0]))["layers"][0]
    assert set(row) == {
        "path", "name", "type", "branch", "depth", "added", "output_shape", "data_format", "params",
        "trainable", "non_trainable", "macs", "receptive_field", "jump",
    }  # fmt: skip


def test_help_and_inspect_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from convtrain.commands import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0; "
        f"r = CliRunner().invoke(cli, ['inspect', {str(CONFIGS[-1])!r}]); "
        "assert r.exit_code == 0, r.output; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_inspect_error_is_one_line_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {layers: [{type: conv2d, filters: 8, kernel_size: 3}]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "convtrain", "inspect", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {bad}: model.layers[0]: expected a 2-D output (batch, features) for the "
        f"classifier head added after it, received (batch, 94, 94, 8); a dense layer on a 4-D "
        f"tensor acts per pixel, so add flatten or global_avg_pool before the head"
    ]


def test_inception_rows_name_their_branch() -> None:
    data = inspect_json(str(next(p for p in CONFIGS if "inception" in p.name)))
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["inc_a"]["branch"] is None
    assert [rows[f"conv2d_{i}"]["branch"] for i in range(1, 7)] == [0, 1, 1, 2, 2, 3]
    assert rows["inc_a_concat"]["branch"] is None
