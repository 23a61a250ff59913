"""Config loading: malformed configs through the CLI, --set, model.defaults, dump round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from convtrain.config import dump_config, load_config, validate
from convtrain.config.load import apply_override, read_yaml
from convtrain.errors import ConfigError
from convtrain.layers import LAYER_TYPES
from convtrain.model.plan import plan_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))

HEAD = "data: {classes: [a, b, c], image_size: 32}\n"
CONV = "{type: conv2d, filters: 8, kernel_size: 3}"


def model(*layers: str) -> str:
    return HEAD + "model:\n  layers:\n" + "".join(f"    - {x}\n" for x in layers)


OK = model(CONV, "{type: flatten}")
ALL_INITIALIZERS = (
    "constant, glorot_normal, glorot_uniform, he_normal, he_uniform, identity, lecun_normal, "
    "lecun_uniform, ones, orthogonal, random_normal, random_uniform, truncated_normal, "
    "variance_scaling, zeros"
)
# The registry's order, pinned by tests/test_registry.py (its first 15 are the original ones).
ALL_TYPES = ", ".join(LAYER_TYPES)

# (id, config text, extra CLI arguments, the exact error line after "error: <file>")
BAD = [
    (
        "unknown_key_suggests",
        model("{type: conv2d, filter: 8, kernel_size: 3}", "{type: flatten}"),
        [],
        ": model.layers[0].filter: unknown key 'filter'; did you mean 'filters'?",
    ),
    (
        "unknown_section_suggests",
        OK + "trian: {epochs: 3}\n",
        [],
        ": trian: unknown key 'trian'; did you mean 'train'?",
    ),
    (
        "unknown_key_lists_valid_keys",
        OK + "eval: {colour: red}\n",
        [],
        ": eval.colour: unknown key 'colour' (valid keys: top_k, checkpoint, split)",
    ),
    (
        "wrong_type_int",
        model("{type: conv2d, filters: many, kernel_size: 3}", "{type: flatten}"),
        [],
        ": model.layers[0].filters: expected an integer, received 'many'",
    ),
    (
        "wrong_type_bool",
        model("{type: conv2d, filters: 8, kernel_size: 3, use_bias: maybe}", "{type: flatten}"),
        [],
        ": model.layers[0].use_bias: expected true or false, received 'maybe'",
    ),
    (
        "wrong_type_section",
        OK + "train: 5\n",
        [],
        ": train: expected a mapping, received 5",
    ),
    (
        "out_of_range_filters",
        model("{type: conv2d, filters: 0, kernel_size: 3}", "{type: flatten}"),
        [],
        ": model.layers[0].filters: expected a number >= 1, received 0",
    ),
    (
        "out_of_range_dropout",
        model(CONV, "{type: dropout, rate: 1.5}", "{type: flatten}"),
        [],
        ": model.layers[1].rate: expected a number < 1.0, received 1.5",
    ),
    (
        "out_of_range_epochs",
        OK + "train: {epochs: -1}\n",
        [],
        ": train.epochs: expected a number >= 1, received -1",
    ),
    (
        "unknown_layer_type_lists_types",
        model(CONV, "{type: flaten}"),
        [],
        f": model.layers[1].type: unknown layer type 'flaten'; did you mean 'flatten'? "
        f"(valid: {ALL_TYPES})",
    ),
    (
        "missing_layer_type",
        model(CONV, "{units: 3}"),
        [],
        f": model.layers[1]: missing key 'type'; expected a mapping with type: one of "
        f"{ALL_TYPES}, received {{'units': 3}}",
    ),
    (
        "unknown_initializer_lists_valid",
        model(
            "{type: conv2d, filters: 8, kernel_size: 3, kernel_initializer: he_norml}",
            "{type: flatten}",
        ),
        [],
        f": model.layers[0].kernel_initializer: expected a Keras built-in initializer, one of "
        f"{ALL_INITIALIZERS}; received 'he_norml'; did you mean 'he_normal'?",
    ),
    (
        "initializer_python_path_refused",
        model(
            "{type: conv2d, filters: 8, kernel_size: 3, kernel_initializer: os.system}",
            "{type: flatten}",
        ),
        [],
        f": model.layers[0].kernel_initializer: expected a Keras built-in initializer, one of "
        f"{ALL_INITIALIZERS}; received 'os.system'",
    ),
    (
        "regularizer_unknown_argument",
        model("{type: dense, units: 4, kernel_regularizer: {type: l2, l3: 0.1}}"),
        [],
        ": model.layers[0].kernel_regularizer: regularizer 'l2' takes l2; received unknown "
        "argument 'l3'",
    ),
    (
        "unknown_activation",
        model("{type: conv2d, filters: 8, kernel_size: 3, activation: rellu}", "{type: flatten}"),
        [],
        ": model.layers[0].activation: expected a Keras activation, one of linear, relu, relu6, "
        "leaky_relu, elu, selu, celu, gelu, silu, swish, mish, sigmoid, hard_sigmoid, hard_silu, "
        "tanh, softplus, softsign, softmax, log_softmax, exponential; received 'rellu'; "
        "did you mean 'relu'?",
    ),
    (
        "strides_with_dilation",
        model(
            "{type: conv2d, filters: 8, kernel_size: 3, strides: 2, dilation_rate: 2}",
            "{type: flatten}",
        ),
        [],
        ": model.layers[0].dilation_rate: expected dilation_rate 1 when strides > 1 (Keras "
        "cannot combine them), received dilation_rate=[2, 2] with strides=[2, 2]",
    ),
    (
        "kernel_larger_than_input",
        model("{type: conv2d, filters: 8, kernel_size: 40}", "{type: flatten}"),
        [],
        ": model.layers[0].kernel_size: expected a window no larger than its 32x32 input under "
        "'valid' padding, received 40x40 (use padding: same, a smaller window or fewer "
        "downsampling layers)",
    ),
    (
        "pool_larger_than_input_dilated_conv",
        model("{type: conv2d, filters: 8, kernel_size: 3, dilation_rate: 16}", "{type: flatten}"),
        [],
        ": model.layers[0].kernel_size: expected a window no larger than its 32x32 input under "
        "'valid' padding, received 3x3 with dilation_rate [16, 16] (covers 33x33) (use padding: "
        "same, a smaller window or fewer downsampling layers)",
    ),
    (
        "stack_shrinks_to_nothing",
        model(
            *["{type: conv2d, filters: 4, kernel_size: 3, strides: 2}"] * 3,
            "{type: max_pool, pool_size: 4}",
            "{type: flatten}",
        ),
        [],
        ": model.layers[3].pool_size: expected a window no larger than its 3x3 input under "
        "'valid' padding, received 4x4; the layers before it shrink the 32x32 image to 3x3, so "
        "the stack leaves nothing for this layer (use padding: same, a smaller window or fewer "
        "downsampling layers)",
    ),
    (
        "head_on_4d_tensor",
        model(CONV, "{type: dense, units: 16}"),
        [],
        ": model.layers[1]: expected a 2-D output (batch, features) for the classifier head "
        "added after it, received (batch, 30, 30, 16); a dense layer on a 4-D tensor acts per "
        "pixel, so add flatten or global_avg_pool before the head",
    ),
    (
        "own_head_on_4d_tensor",
        model(CONV, "{type: dense, units: classes, activation: softmax}"),
        [],
        ": model.layers[1]: expected a 2-D output (batch, features) for its own classifier "
        "head, received (batch, 30, 30, 3); a dense layer on a 4-D tensor acts per pixel, so "
        "add flatten or global_avg_pool before the head",
    ),
    (
        "conv_after_flatten",
        model("{type: flatten}", CONV),
        [],
        ": model.layers[1]: conv2d expected a 4-D input (batch, height, width, channels), "
        "received (batch, 3072): it comes after a flatten, global pool or dense layer",
    ),
    (
        "inception_branch_mismatch",
        model(
            "{type: inception, branches: [[" + CONV + "], [{type: max_pool}]]}",
            "{type: flatten}",
        ),
        [],
        ": model.layers[0].branches[1]: expected the same spatial size as "
        "model.layers[0].branches[0] (30x30), received 16x16; branches are concatenated on the "
        "channel axis",
    ),
    (
        "residual_body_valid_padding",
        model("{type: residual, body: [" + CONV + "]}", "{type: flatten}"),
        [],
        ": model.layers[0].body: expected a body whose output size is the input size divided "
        "by its strides, so that a strided 1x1 projection can match it; received 32x32 -> "
        "30x30 (use padding: same in the body)",
    ),
    (
        "defaults_unknown_key",
        HEAD + "model:\n  defaults: {conv2d: {kernel_sise: 3}}\n  layers: [" + CONV + "]\n",
        [],
        ": model.defaults.conv2d.kernel_sise: unknown key 'kernel_sise' for conv2d; did you "
        "mean 'kernel_size'?",
    ),
    (
        "defaults_unknown_type",
        (
            HEAD
            + "model:\n  defaults: {conv: {padding: same}}\n  layers: ["
            + CONV
            + ", {type: flatten}]\n"
        ),
        [],
        f": model.defaults.conv: unknown layer type 'conv'; did you mean 'conv2d'? (valid "
        f"types: {ALL_TYPES})",
    ),
    (
        "defaults_bad_value",
        (
            HEAD
            + "model:\n  defaults: {batch_norm: {momentum: 2}}\n  layers: ["
            + CONV
            + ", {type: flatten}]\n"
        ),
        [],
        ": model.defaults.batch_norm.momentum: expected a number < 1.0, received 2",
    ),
    (
        "missing_required_key",
        model("{type: conv2d, kernel_size: 3}", "{type: flatten}"),
        [],
        ": model.layers[0]: missing required key 'filters'",
    ),
    (
        "union_units",
        model("{type: flatten}", "{type: dense, units: clases}"),
        [],
        ": model.layers[1].units: expected an integer or one of 'classes', received 'clases'; "
        "did you mean 'classes'?",
    ),
    (
        "union_classes",
        "data: {classes: some}\nmodel: {layers: [{type: flatten}]}\n",
        [],
        ": data.classes: expected one of 'all' or a list, received 'some'",
    ),
    (
        "kernel_size_three_numbers",
        model("{type: conv2d, filters: 8, kernel_size: [3, 3, 3]}", "{type: flatten}"),
        [],
        ": model.layers[0].kernel_size: expected a positive integer or a list of two, received "
        "[3, 3, 3]",
    ),
    (
        "padding_typo",
        model("{type: conv2d, filters: 8, kernel_size: 3, padding: vaild}", "{type: flatten}"),
        [],
        ": model.layers[0].padding: expected one of 'valid' or 'same', received 'vaild'; did "
        "you mean 'valid'?",
    ),
    (
        "split_leaves_no_training",
        OK.replace(
            "image_size: 32}", "image_size: 32, split: {method: stratified, val: 0.5, test: 0.6}}"
        ),
        [],
        ": data.split: expected val + test < 1 so that images remain for training, received "
        "val=0.5 + test=0.6",
    ),
    (
        "unknown_optimizer",
        OK + "train: {optimizer: {type: adamm}}\n",
        [],
        ": train.optimizer.type: unknown type 'adamm'; did you mean 'adam'? (valid: adam, "
        "adamw, sgd, rmsprop)",
    ),
    (
        "duplicate_layer_name",
        model(
            "{type: conv2d, name: c, filters: 8, kernel_size: 3}",
            "{type: conv2d, name: c, filters: 8, kernel_size: 3}",
            "{type: flatten}",
        ),
        [],
        ": model.layers[1].name: expected a unique layer name, received 'c' (already used by "
        "model.layers[0])",
    ),
    (
        "name_taken_by_head",
        model(CONV, "{type: flatten, name: classifier}"),
        [],
        ": model.layers[1].name: expected a name not used by another layer, received "
        "'classifier', the name of the classifier head layer convtrain adds",
    ),
    (
        "head_needs_softmax",
        model("{type: flatten}", "{type: dense, units: classes}"),
        [],
        ": model.layers[1].activation: expected softmax for the classifier head (units: "
        "classes), received 'linear'",
    ),
    (
        "groups_do_not_divide_channels",
        model("{type: conv2d, filters: 8, kernel_size: 3, groups: 2}", "{type: flatten}"),
        [],
        ": model.layers[0].groups: expected groups to divide the 3 input channels, received "
        "groups=2",
    ),
    (
        "set_wrong_type",
        OK,
        ["--set", "model.layers[0].filters=lots"],
        ": model.layers[0].filters: expected an integer, received 'lots'",
    ),
    (
        "set_unknown_key",
        OK,
        ["--set", "model.layers[0].fliters=3"],
        ": model.layers[0].fliters: unknown key 'fliters'; did you mean 'filters'?",
    ),
]

# Problems found before the file's content is validated: (id, text, args, exact stderr line)
BAD_SOURCE = [
    (
        "invalid_yaml_line_number",
        HEAD + "model:\n  layers:\n    - {type: conv2d, filters: 8\n    - {type: flatten}\n",
        [],
        "error: {path}:5:7: invalid YAML: expected ',' or '}}', but got '{{'",
    ),
    (
        "duplicate_key",
        HEAD + "model:\n  layers: [{type: flatten}]\n  layers: [{type: flatten}]\n",
        [],
        "error: {path}:4:3: invalid YAML: duplicate key 'layers' (first on line 3)",
    ),
    (
        "empty_file",
        "",
        [],
        "error: {path}: expected a mapping of sections (name, data, model, ...), received an "
        "empty file",
    ),
    (
        "not_a_mapping",
        "- conv2d\n- flatten\n",
        [],
        "error: {path}: expected a mapping of sections (name, data, model, ...), received a list",
    ),
    (
        "set_index_out_of_range",
        OK,
        ["--set", "model.layers[5].filters=3"],
        "error: --set model.layers[5].filters=3: model.layers has 2 entries, received index 5",
    ),
    (
        "set_not_a_mapping",
        OK,
        ["--set", "model.layers[0].filters.x=3"],
        "error: --set model.layers[0].filters.x=3: model.layers[0].filters is not a mapping, "
        "cannot set 'x'",
    ),
    (
        "set_without_equals",
        OK,
        ["--set", "train.epochs"],
        "error: --set train.epochs: expected KEY=VALUE, e.g. model.layers[0].filters=64",
    ),
    (
        "set_bad_key",
        OK,
        ["--set", "model..filters=3"],
        "error: --set model..filters=3: cannot parse the key 'model..filters'; expected a "
        "dotted path such as train.epochs or model.layers[0].filters",
    ),
    (
        "set_invalid_yaml_value",
        OK,
        ["--set", "train.epochs=[1"],
        "error: --set train.epochs=[1: invalid YAML in the value '[1': expected ',' or ']', "
        "but got '<stream end>'",
    ),
    (
        "classes_conflict",
        OK,
        ["--classes", "5"],
        "error: --classes: expected 3 (the length of data.classes) or no value, received 5",
    ),
]


def _run(path: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", "inspect", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name,text,args,expected", BAD, ids=[b[0] for b in BAD])
def test_malformed_config_is_one_line_exit_2(tmp_path, name, text, args, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _run(path, args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {path}{expected}"]


@pytest.mark.parametrize("name,text,args,expected", BAD_SOURCE, ids=[b[0] for b in BAD_SOURCE])
def test_unreadable_config_or_bad_option(tmp_path, name, text, args, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _run(path, args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [expected.format(path=path)]


def test_missing_file(tmp_path) -> None:
    result = _run(tmp_path / "nope.yaml", [])
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'nope.yaml'}: no such file"]


def test_several_problems_one_line_each(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        model("{type: conv2d, filters: 0, kernel_size: 3, paddin: same}", "{type: flatten}")
        + "train: {epochs: zero}\n"
    )
    lines = _run(path, []).stderr.splitlines()
    assert lines == [
        f"error: {path}: model.layers[0].filters: expected a number >= 1, received 0",
        f"error: {path}: model.layers[0].paddin: unknown key 'paddin'; did you mean 'padding'?",
        f"error: {path}: train.epochs: expected an integer, received 'zero'",
    ]


def test_table_is_large_enough() -> None:
    assert len(BAD) + len(BAD_SOURCE) >= 25


# --- --set ---------------------------------------------------------------------------------


def test_set_overrides_values_and_creates_sections(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(OK)
    exp = load_config(
        path,
        [
            "model.layers[0].filters=64",
            "model.layers[0].kernel_size=[5, 3]",
            "train.optimizer={type: sgd, learning_rate: 1e-2}",
            "train.early_stopping.patience=3",
            "name=tuned",
        ],
    )
    conv = exp.model.layers[0]
    assert (conv.filters, conv.kernel_size) == (64, (5, 3))
    assert exp.train.optimizer.type == "sgd" and exp.train.optimizer.learning_rate == 0.01
    assert exp.train.early_stopping is not None and exp.train.early_stopping.patience == 3
    assert exp.name == "tuned"


def test_set_parses_values_as_yaml() -> None:
    raw = {"a": {"b": 1}}
    apply_override(raw, "a.b=1e-4")
    apply_override(raw, "a.c=true")
    apply_override(raw, "a.d=[1, 2]")
    apply_override(raw, "a.e=hello")
    assert raw == {"a": {"b": 1e-4, "c": True, "d": [1, 2], "e": "hello"}}


def test_set_error_names_the_assignment() -> None:
    with pytest.raises(ConfigError) as err:
        apply_override({"model": {"layers": []}}, "model.layers[0].filters=3")
    assert err.value.lines() == [
        "--set model.layers[0].filters=3: model.layers has 0 entries, received index 0"
    ]


# --- model.defaults ------------------------------------------------------------------------


def _raw(text: str) -> dict:
    return yaml.safe_load(text)


def test_defaults_apply_unless_the_layer_sets_its_own() -> None:
    exp = validate(
        _raw(
            HEAD
            + """
model:
  defaults:
    conv2d: {padding: same, kernel_initializer: he_normal, kernel_regularizer: {l2: 0.0005}}
    dropout: {rate: 0.3}
  layers:
    - {type: conv2d, filters: 8, kernel_size: 3}
    - {type: conv2d, filters: 8, kernel_size: 3, padding: valid, kernel_initializer: zeros}
    - {type: dropout}
    - {type: flatten}
"""
        )
    )
    first, second, dropout, _ = exp.model.layers
    assert first.padding == "same" and first.kernel_initializer.name == "he_normal"
    assert first.kernel_regularizer.name == "l2"
    assert first.kernel_regularizer.kwargs == {"l2": 0.0005}
    assert second.padding == "valid" and second.kernel_initializer.name == "zeros"
    assert second.kernel_regularizer.kwargs == {"l2": 0.0005}
    assert dropout.rate == 0.3


def test_defaults_reach_residual_bodies_and_inception_branches() -> None:
    exp = validate(
        _raw(
            HEAD
            + """
model:
  defaults: {conv2d: {padding: same, activation: relu}}
  layers:
    - type: residual
      body:
        - {type: conv2d, filters: 3, kernel_size: 3}
        - type: inception
          branches:
            - [{type: conv2d, filters: 2, kernel_size: 1}]
            - [{type: conv2d, filters: 1, kernel_size: 5, activation: tanh}]
    - {type: flatten}
"""
        )
    )
    body = exp.model.layers[0].body
    assert body[0].padding == "same" and body[0].activation == "relu"
    b0, b1 = body[1].branches
    assert b0[0].activation == "relu" and b1[0].activation == "tanh"
    assert b1[0].padding == "same"


def test_dump_config_round_trip(tmp_path) -> None:
    for path in CONFIGS:
        exp = load_config(path)
        text = dump_config(exp)
        again = tmp_path / path.name
        again.write_text(text)
        assert load_config(again) == exp, path.name
        assert dump_config(load_config(again)) == text


def test_dump_config_round_trip_keeps_objects(tmp_path) -> None:
    exp = validate(
        _raw(
            HEAD
            + """
model:
  layers:
    - {type: conv2d, filters: 8, kernel_size: [3, 5], kernel_initializer: {random_normal: 0.02},
       kernel_constraint: {type: max_norm, max_value: 2}, bias_regularizer: {l1_l2: {l1: 0.1}}}
    - {type: global_avg_pool}
"""
        )
    )
    again = validate(yaml.safe_load(dump_config(exp)))
    assert again == exp
    conv = again.model.layers[0]
    assert conv.kernel_initializer.kwargs == {"stddev": 0.02}
    assert conv.kernel_constraint.kwargs == {"max_value": 2}


def test_every_shipped_config_validates() -> None:
    assert len(CONFIGS) >= 6
    for path in CONFIGS:
        exp = load_config(path)
        assert exp.name == path.stem
        assert exp.data.root == "data/caltech-101/101_ObjectCategories"  # left at its default
        raw = read_yaml(path)
        assert "root" not in raw.get("data", {})


def test_defaults_validated_without_false_alarms() -> None:
    exp = validate(
        _raw(
            HEAD
            + """
model:
  defaults: {conv2d: {groups: 3, strides: 2}, dense: {kernel_initializer: he_uniform}}
  layers:
    - {type: conv2d, filters: 6, kernel_size: 3}
    - {type: global_avg_pool}
"""
        )
    )
    assert exp.model.layers[0].groups == 3 and exp.model.layers[0].strides == (2, 2)
    head = [s for s in plan_model(exp, 3).leaves() if s.name == "classifier"][0]
    assert head.spec.kernel_initializer.name == "he_uniform"  # the head takes dense defaults
    assert head.spec.activation == "softmax" and head.spec.units == 3
    with pytest.raises(ConfigError) as err:
        validate(
            _raw(
                HEAD
                + "model:\n  defaults: {conv2d: {strides: 2, dilation_rate: 2}}\n"
                + "  layers: [{type: flatten}]\n"
            ),
            "c.yaml",
        )
    assert err.value.lines() == [
        "c.yaml: model.defaults.conv2d.dilation_rate: expected dilation_rate 1 when strides > 1 "
        "(Keras cannot combine them), received dilation_rate=[2, 2] with strides=[2, 2]"
    ]
