"""The initializer/regularizer/constraint/activation tables against the installed Keras."""

from __future__ import annotations

import inspect

import pytest

from convtrain.layers.keras_objects import (
    ACTIVATIONS,
    CONSTRAINTS,
    INITIALIZERS,
    REGULARIZERS,
    KerasObject,
    _parse,
)
from convtrain.model.build import _keras_object

keras = pytest.importorskip("keras")

TABLES = {
    "initializer": (INITIALIZERS, keras.initializers),
    "regularizer": (REGULARIZERS, keras.regularizers),
    "constraint": (CONSTRAINTS, keras.constraints),
}
ENTRIES = [
    (kind, name, entry) for kind, (table, _) in TABLES.items() for name, entry in table.items()
]


@pytest.mark.parametrize("kind,name,entry", ENTRIES, ids=[f"{k}-{n}" for k, n, _ in ENTRIES])
def test_table_entry_matches_installed_keras(kind: str, name: str, entry: tuple) -> None:
    class_name, kwargs, first = entry
    module = TABLES[kind][1]
    cls = getattr(module, class_name)
    base = {"initializer": "Initializer", "regularizer": "Regularizer", "constraint": "Constraint"}
    assert isinstance(cls(), getattr(module, base[kind]))
    params = inspect.signature(cls.__init__).parameters
    for kw in kwargs:
        assert kw in params, f"{class_name}.__init__ has no argument {kw!r}"
    assert first is None or first in kwargs


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_resolves(name: str) -> None:
    fn = keras.activations.get(name)  # raises ValueError for a name Keras does not know
    out = keras.ops.convert_to_numpy(fn(keras.ops.ones((1, 3))))
    assert out.shape == (1, 3)


def test_keras_objects_are_built_with_their_arguments() -> None:
    init = _keras_object(_parse("initializer", {"type": "truncated_normal", "stddev": 0.5}))
    assert isinstance(init, keras.initializers.TruncatedNormal)
    assert init.get_config()["stddev"] == 0.5
    reg = _keras_object(_parse("regularizer", {"l2": 0.001}))
    assert isinstance(reg, keras.regularizers.L2)
    assert reg.get_config()["l2"] == pytest.approx(0.001)
    con = _keras_object(_parse("constraint", "non_neg"))
    assert isinstance(con, keras.constraints.NonNeg)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("he_normal", KerasObject(kind="initializer", name="he_normal")),
        (
            {"constant": 0.1},
            KerasObject(kind="initializer", name="constant", kwargs={"value": 0.1}),
        ),
        (
            {"random_uniform": {"minval": -1, "maxval": 1}},
            KerasObject(
                kind="initializer", name="random_uniform", kwargs={"minval": -1, "maxval": 1}
            ),
        ),
        (
            {"type": "variance_scaling", "scale": 2.0},
            KerasObject(kind="initializer", name="variance_scaling", kwargs={"scale": 2.0}),
        ),
        ({"glorot_uniform": None}, KerasObject(kind="initializer", name="glorot_uniform")),
    ],
)
def test_accepted_forms(value, expected) -> None:
    assert _parse("initializer", value) == expected
    assert _parse("initializer", expected.to_yaml()) == expected  # dump form reloads


@pytest.mark.parametrize(
    "kind,value,message",
    [
        (
            "initializer",
            "keras.initializers.HeNormal",
            "expected a Keras built-in initializer, one of constant, glorot_normal, "
            "glorot_uniform, he_normal, he_uniform, identity, lecun_normal, lecun_uniform, ones, "
            "orthogonal, random_normal, random_uniform, truncated_normal, variance_scaling, "
            "zeros; received 'keras.initializers.HeNormal'",
        ),
        (
            "regularizer",
            {"l1_l2": 0.1},
            "expected keyword arguments for regularizer 'l1_l2' (e.g. {l1_l2: {l1: ..., l2: ...}}), "
            "received {'l1_l2': 0.1}",
        ),
        (
            "constraint",
            {"type": "max_norm", "max_value": {"nested": 1}},
            "constraint 'max_norm' argument 'max_value' must be a number or string, received "
            "{'nested': 1}",
        ),
        (
            "constraint",
            {"type": "non_neg", "axis": 0},
            "constraint 'non_neg' takes no arguments; received unknown argument 'axis'",
        ),
        (
            "regularizer",
            42,
            "expected a regularizer name (one of l1, l1_l2, l2, orthogonal_regularizer) or a "
            "mapping such as {type: NAME, ARG: VALUE}, received 42",
        ),
    ],
)
def test_refused_forms(kind: str, value, message: str) -> None:
    with pytest.raises(ValueError) as err:
        _parse(kind, value)
    assert str(err.value) == message
