"""Sweep axes and their expansion into trials."""

from __future__ import annotations

import pytest

from convtrain.errors import ConvtrainError
from convtrain.experiments.grid import Axis, assignment, expand, parse_axis


def test_parse_axis_values_are_yaml():
    assert parse_axis("model.layers[0].filters=16,32,64") == Axis(
        "model.layers[0].filters", (16, 32, 64)
    )
    assert parse_axis("model.layers[0].kernel_size=[3,3],[5,5]").values == ([3, 3], [5, 5])
    assert parse_axis("model.layers[0].padding=valid,same").values == ("valid", "same")
    assert parse_axis("train.optimizer.learning_rate=1e-3,1e-4").values == (0.001, 0.0001)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("filters", "--grid filters: expected KEY=V1,V2,... e.g. model.layers[0].filters=16,32,64"),
        ("a.b=", "--grid a.b=: expected KEY=V1,V2,... e.g. model.layers[0].filters=16,32,64"),
        ("a.b=1,1", "--grid a.b=1,1: expected distinct values, received duplicates 1"),
    ],
)
def test_parse_axis_errors(option, message):
    with pytest.raises(ConvtrainError) as exc:
        parse_axis(option)
    assert str(exc.value) == message


def test_expand_is_the_cartesian_product_in_order():
    axes = [Axis("a", (1, 2)), Axis("b", ("x", "y", "z"))]
    trials = expand(axes)
    assert len(trials) == 6
    assert trials[0] == ("a=1", "b=x")
    assert trials[-1] == ("a=2", "b=z")


def test_expand_random_samples_without_replacement_and_is_seeded():
    axes = [Axis("a", tuple(range(5))), Axis("b", tuple(range(4)))]
    first = expand(axes, random_trials=7, seed=3)
    assert len(first) == len(set(first)) == 7
    assert expand(axes, random_trials=7, seed=3) == first
    assert expand(axes, random_trials=7, seed=4) != first
    assert len(expand(axes, random_trials=100)) == 20  # more than the grid: the whole grid


def test_expand_refuses_a_key_swept_twice():
    with pytest.raises(ConvtrainError, match="the same key is swept twice"):
        expand([Axis("a", (1,)), Axis("a", (2,))])


def test_assignment_round_trips_through_yaml():
    assert assignment("k", [3, 3]) == "k=[3, 3]"
    assert assignment("k", "same") == "k=same"
    assert assignment("k", 0.0005) == "k=0.0005"
    assert assignment("k", None) == "k=null"
