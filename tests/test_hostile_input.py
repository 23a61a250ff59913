"""Hostile YAML and JSON: bombs, deep nesting, huge files, pipes. One line, exit 2, no hang.

The loader refuses by counting, never by a clock: every case below is refused after work
proportional to the file's size (the subprocess timeout is only a safety net).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from convtrain.config import load_config
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.safeload import (
    MAX_DEPTH,
    MAX_JSON_BYTES,
    MAX_NODES,
    MAX_YAML_BYTES,
    load_yaml,
    read_json,
)

HEAD = "data: {classes: [a, b, c], image_size: 32}\n"
CONV = "{type: conv2d, filters: 8, kernel_size: 3}"


def laughs(levels: int = 9, fan: int = 9) -> list[str]:
    """The billion laughs: anchors a..i, each a list of `fan` aliases of the one before."""
    names = "abcdefghijklmnopqrstuvwxyz"[:levels]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["x"] * fan) + "]"]
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * fan) + "]")
    return lines


def convtrain(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- configs through the CLI -----------------------------------------------------------------

BOMB_MODEL = "\n".join([*laughs(), HEAD.strip(), "model: {layers: *i}"]) + "\n"
BOMB_CLASSES = (
    "\n".join([*laughs(), "data: {classes: *i, image_size: 32}", f"model: {{layers: [{CONV}]}}"])
    + "\n"
)
DEEP_LAYERS = HEAD + "model: {layers: " + "[" * 5000 + "]" * 5000 + "}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BOMB_MODEL,
            ":6:8: alias *e expands to 66,430 nodes (anchor &e, line 5) and takes the document "
            f"past the limit: expected at most {MAX_NODES:,} nodes after alias expansion, "
            "received more; refusing it",
        ),
        (
            BOMB_CLASSES,
            ":6:8: alias *e expands to 66,430 nodes (anchor &e, line 5) and takes the document "
            f"past the limit: expected at most {MAX_NODES:,} nodes after alias expansion, "
            "received more; refusing it",
        ),
        (
            DEEP_LAYERS,
            f":2:{17 + MAX_DEPTH - 2}: expected lists and mappings nested at most {MAX_DEPTH} "
            "levels deep, received deeper nesting; refusing it",
        ),
    ],
    ids=["laughs-in-model-layers", "laughs-in-data-classes", "5000-deep-layers"],
)
@pytest.mark.parametrize("command", ["inspect", "train"])
def test_a_config_bomb_is_one_line(tmp_path: Path, text: str, expected: str, command: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    result = convtrain(command, str(path), cwd=tmp_path)
    assert one_error_line(result) == f"error: {path}{expected}"
    assert not (tmp_path / "runs").exists()  # train wrote nothing


def test_a_bomb_in_a_set_value_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + f"model: {{layers: [{CONV}]}}\n")
    bomb = f"data.classes={laughs_flow()}"
    line = one_error_line(convtrain("inspect", str(path), "--set", bomb))
    assert line == (
        f"error: --set {bomb}: the value {laughs_flow()[:60] + '...'!r}: alias *e expands to "
        f"66,430 nodes (anchor &e, line 1) and takes the document past the limit: expected at "
        f"most {MAX_NODES:,} nodes after alias expansion, received more; refusing it"
    )
    deep = "model.layers=" + "[" * 500 + "]" * 500
    line = one_error_line(convtrain("inspect", str(path), "--set", deep))
    assert line.endswith(
        f"expected lists and mappings nested at most {MAX_DEPTH} levels deep, received deeper "
        "nesting; refusing it"
    )


def laughs_flow() -> str:
    """The billion laughs as one flow value (for --set)."""
    items = ["&a [" + ", ".join(["x"] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        items.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"


def test_a_huge_config_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:  # sparse: a huge file, quickly made
        fh.truncate(8 * MAX_YAML_BYTES)
    line = one_error_line(convtrain("inspect", str(path)))
    assert line == (
        f"error: {path}: expected a YAML file of at most 1.0 MiB, received 8.0 MiB; refusing to "
        "read it"
    )


def test_an_endless_device_or_a_pipe_without_writer_does_not_hang(tmp_path: Path) -> None:
    line = one_error_line(convtrain("inspect", "/dev/zero"))
    assert (
        line
        == "error: /dev/zero: expected a YAML file (a regular file), received a character device"
    )
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    line = one_error_line(convtrain("inspect", str(fifo)))
    assert line == (
        f"error: {fifo}: expected a mapping of sections (name, data, model, ...), received an "
        "empty file"
    )


def test_a_config_from_a_pipe_is_read(tmp_path: Path) -> None:
    """`convtrain inspect <(...)`: a pipe with a writer is a config like any other."""
    text = HEAD + f"model: {{layers: [{CONV}, {{type: flatten}}]}}\n"
    result = subprocess.run(
        ["bash", "-c", f'{sys.executable} -m convtrain inspect <(printf "%s" "$CFG")'],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CFG": text},
    )
    assert result.returncode == 0, result.stderr
    assert "conv2d_1" in result.stdout


# --- the loader, in process ------------------------------------------------------------------


def refused(text: str, locate: bool = True) -> str:
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "x.yaml", locate=locate)
    (line,) = info.value.lines()
    return line


def test_a_layer_spec_used_twice_is_two_layers(tmp_path: Path) -> None:
    """Aliases still serve normal reuse, and each use is a value of its own."""
    text = (
        HEAD
        + "model:\n  layers:\n    - &conv {type: conv2d, filters: 8, kernel_size: 3}\n"
        + "    - *conv\n    - {<<: *conv, filters: 16}\n    - {type: flatten}\n"
    )
    path = tmp_path / "reuse.yaml"
    path.write_text(text)
    experiment = load_config(path, ["model.layers[1].filters=64"])
    assert [layer.filters for layer in experiment.model.layers[:3]] == [8, 64, 16]


def test_a_thirty_level_bomb_is_refused_without_expanding_it() -> None:
    """9**30 nodes: only counting (never materialising) can refuse it at once."""
    line = refused("\n".join(laughs(levels=26, fan=9)) + "\n")
    assert "expands to" in line and f"expected at most {MAX_NODES:,} nodes" in line


def test_aliases_within_the_budget_are_fine() -> None:
    data = load_yaml("\n".join(laughs(levels=4, fan=9)) + "\n", "x.yaml")  # 9**4 = 6,561 x
    assert len(data["d"]) == 9 and data["d"][0][0][0] == ["x"] * 9


def test_a_recursive_alias_is_refused() -> None:
    assert refused("a: &a [1, *a]\n") == (
        "x.yaml:1:11: alias *a is inside its own anchor &a (line 1): expected a value, received "
        "a recursive structure; refusing it"
    )


def test_an_alias_counts_the_depth_it_brings() -> None:
    deep = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    assert load_yaml(f"a: &a {deep}\nb: *a\n", "x.yaml")  # 63 levels: within the limit
    assert refused(f"a: &a {deep}\nb: [[*a]]\n") == (
        f"x.yaml:2:6: alias *a (anchor &a, line 1) nests {MAX_DEPTH - 2} levels here: expected "
        f"lists and mappings nested at most {MAX_DEPTH} levels deep, received {MAX_DEPTH + 1}; "
        "refusing it"
    )


def test_many_plain_nodes_are_refused_too() -> None:
    line = refused("x: [" + ", ".join(["1"] * (MAX_NODES + 10)) + "]\n")
    assert line.endswith(
        f"expected a document of at most {MAX_NODES:,} nodes, received more; refusing it"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: 2020-02-30\n",
            "x.yaml:1:7: invalid YAML: cannot read the value '2020-02-30' (day is out of range for month)",
        ),
        (
            "seed: " + "9" * 5000 + "\n",
            "x.yaml:1:7: invalid YAML: cannot read the value '" + "9" * 40 + "...' (Exceeds the "
            "limit (4300 digits) for integer string conversion: value has 5000 digits)",
        ),
        (
            "a: &a 1\nb: &a 2\n",
            "x.yaml:2:4: invalid YAML: expected each anchor name once, received &a again (first on line 1)",
        ),
        (
            "a: !!python/object:os.system {}\n",
            "x.yaml:1:4: invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
    ],
    ids=["impossible-date", "5000-digit-int", "duplicate-anchor", "python-tag"],
)
def test_values_yaml_cannot_build_are_one_line(text: str, expected: str) -> None:
    assert refused(text) == expected


def test_a_set_value_is_held_to_the_size_limit() -> None:
    line = refused("x" * (MAX_YAML_BYTES + 1), locate=False)
    assert line == "x.yaml: expected YAML of at most 1.0 MiB, received 1,048,577 bytes"


# --- JSON records ----------------------------------------------------------------------------


def test_read_json_refuses_deep_huge_and_special_files(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(
        ConvtrainError,
        match=rf"^{deep}: line 1 column {6 + MAX_DEPTH}: expected JSON nested at most {MAX_DEPTH} levels deep, received deeper nesting; refusing it$",
    ):
        read_json(deep)
    quoted = tmp_path / "quoted.json"
    quoted.write_text(json.dumps({"a": "[" * 1000 + '"\\' + "{" * 1000}))  # brackets in a string
    assert read_json(quoted) == {"a": "[" * 1000 + '"\\' + "{" * 1000}
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(
        ConvtrainError,
        match=rf"^{huge}: expected a JSON file of at most 64.0 MiB, received 67,108,865 bytes; refusing to read it$",
    ):
        read_json(huge)
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(
        ConvtrainError, match=r"expected a JSON file \(a regular file\), received a named pipe$"
    ):
        read_json(fifo)
    big = tmp_path / "big.json"
    big.write_text('{"epochs": ' + "9" * 5000 + "}")
    with pytest.raises(
        ConvtrainError, match=r"cannot read the JSON \(Exceeds the limit \(4300 digits\)"
    ):
        read_json(big)


def hand_made_run(tmp_path: Path) -> Path:
    """A run directory as `train` leaves it after one epoch: config, split and state."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(tiny_config("hand", 0, 2)))
    split = {"classes": ["a", "b"], "train": [["a/1.jpg", 0]], "val": [], "test": [["b/1.jpg", 1]]}
    (run / "split.json").write_text(json.dumps(split))
    state = {
        "status": "interrupted",
        "epochs": 2,
        "completed_epochs": 0,
        "monitor": "loss",
        "mode": "min",
        "history": [],
    }
    (run / "state.json").write_text(json.dumps(state))
    return run


@pytest.mark.parametrize("record", ["state.json", "split.json"])
def test_a_deep_or_huge_run_record_is_one_line(tmp_path: Path, record: str) -> None:
    run = hand_made_run(tmp_path)
    (run / record).write_text('{"history": ' + "[" * 50_000 + "]" * 50_000 + "}")
    line = one_error_line(convtrain("train", "--resume", str(run)))
    assert line == (
        f"error: {run / record}: line 1 column {12 + MAX_DEPTH}: expected JSON nested at most "
        f"{MAX_DEPTH} levels deep, received deeper nesting; refusing it"
    )
    with open(run / record, "wb") as fh:
        fh.truncate(2 * MAX_JSON_BYTES)
    line = one_error_line(convtrain("train", "--resume", str(run)))
    assert line.startswith(f"error: {run / record}: expected a ")
    assert line.endswith("of at most 64.0 MiB, received 128.0 MiB; refusing to read it")


def test_a_state_json_that_is_a_pipe_does_not_hang(tmp_path: Path) -> None:
    run = hand_made_run(tmp_path)
    (run / "state.json").unlink()
    os.mkfifo(run / "state.json")
    line = one_error_line(convtrain("train", "--resume", str(run)))
    assert line == (
        f"error: {run / 'state.json'}: expected a JSON file (a regular file), received a named pipe"
    )


def test_a_deep_sweep_record_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(tiny_config("sw", 0, 1)))
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "study.json").write_text("[" * 10_000 + "]" * 10_000)
    result = convtrain(
        "sweep", str(config), "--grid", "train.epochs=1,2", "--sweep-dir", str(sweep_dir)
    )
    line = one_error_line(result)
    assert line == (
        f"error: {sweep_dir / 'study.json'}: line 1 column {MAX_DEPTH + 1}: expected JSON nested "
        f"at most {MAX_DEPTH} levels deep, received deeper nesting; refusing it"
    )
