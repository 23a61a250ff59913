"""Optimizers from the config and the epoch -> learning-rate functions."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter

from convtrain.config.schema import (
    OptimizerConfig,
    PlateauSchedule,
    ScheduleConfig,
    TrainConfig,
)
from convtrain.train.optim import OPTIMIZERS, PlateauState, learning_rate, make_optimizer


def train_config(schedule: dict, lr: float = 0.1, epochs: int = 10) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        optimizer={"type": "sgd", "learning_rate": lr},
        schedule=TypeAdapter(ScheduleConfig).validate_python(schedule),
    )


def rates(train: TrainConfig) -> list[float]:
    return [learning_rate(train, e) for e in range(train.epochs)]


def test_constant() -> None:
    assert rates(train_config({"type": "constant"}, lr=0.05, epochs=3)) == [0.05, 0.05, 0.05]


def test_step_multiplies_by_gamma_every_step_epochs() -> None:
    got = rates(train_config({"type": "step", "step_epochs": 2, "gamma": 0.5}, lr=0.8, epochs=6))
    assert got == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.2])


def test_exponential_decays_per_epoch() -> None:
    got = rates(train_config({"type": "exponential", "decay_rate": 0.5}, lr=1.0, epochs=4))
    assert got == pytest.approx([1.0, 0.5, 0.25, 0.125])


def test_cosine_without_warmup_starts_at_base_and_decreases_towards_min_lr() -> None:
    got = rates(train_config({"type": "cosine", "min_lr": 0.01}, lr=0.1, epochs=4))
    expected = [0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert got == pytest.approx(expected)
    assert got[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(got, got[1:], strict=False))
    assert got[-1] > 0.01  # the last epoch still learns


def test_cosine_warmup_ramps_linearly_then_decays() -> None:
    got = rates(train_config({"type": "cosine", "warmup_epochs": 4}, lr=0.2, epochs=8))
    assert got[:4] == pytest.approx([0.05, 0.1, 0.15, 0.2])
    assert got[4] == pytest.approx(0.2)
    assert got[5:] == pytest.approx(
        [0.2 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3)]
    )


def test_rate_is_a_pure_function_of_the_epoch() -> None:
    train = train_config({"type": "cosine", "warmup_epochs": 2}, epochs=9)
    forward = rates(train)
    assert [learning_rate(train, e) for e in reversed(range(9))] == list(reversed(forward))


def test_plateau_reduces_after_patience_epochs_without_improvement() -> None:
    schedule = PlateauSchedule(type="plateau", factor=0.5, patience=2, min_lr=0.3)
    state = PlateauState(lr=1.0)
    seen = []
    for value in [0.5, 0.6, 0.6, 0.55, 0.7, 0.1, 0.1, 0.1, 0.1]:
        state.update(schedule, value, "max")
        seen.append(state.lr)
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3]
    assert state.best == 0.7


def test_plateau_min_mode_and_json_round_trip() -> None:
    schedule = PlateauSchedule(type="plateau", factor=0.1, patience=1)
    state = PlateauState(lr=1.0)
    for value in [2.0, 1.0, 1.5]:
        state.update(schedule, value, "min")
    assert state.lr == pytest.approx(0.1)
    assert PlateauState.parse(state.dumps(), "state.json") == state


def test_plateau_learning_rate_reads_the_state() -> None:
    train = train_config({"type": "plateau"}, lr=0.1)
    assert learning_rate(train, 5) == 0.1
    assert learning_rate(train, 5, PlateauState(lr=0.01)) == 0.01


def test_bad_plateau_state_names_the_file() -> None:
    from convtrain.errors import ConvtrainError

    with pytest.raises(ConvtrainError) as err:
        PlateauState.parse('{"lr": "fast"}', "runs/x/state.json")
    assert str(err.value) == "runs/x/state.json: lr: expected a number, received 'fast'"


@pytest.mark.parametrize(
    ("config", "cls", "attrs"),
    [
        ({"type": "adam", "beta_1": 0.8}, "Adam", {"beta_1": 0.8}),
        ({"type": "adamw", "weight_decay": 0.01}, "AdamW", {"weight_decay": 0.01}),
        (
            {"type": "sgd", "momentum": 0.5, "nesterov": True},
            "SGD",
            {"momentum": 0.5, "nesterov": True},
        ),
        (
            {"type": "rmsprop", "rho": 0.8, "clipnorm": 1.0},
            "RMSprop",
            {"rho": 0.8, "clipnorm": 1.0},
        ),
    ],
)
def test_make_optimizer(config: dict, cls: str, attrs: dict) -> None:
    opt = make_optimizer(
        TypeAdapter(OptimizerConfig).validate_python({**config, "learning_rate": 0.01})
    )
    assert type(opt).__name__ == cls
    assert float(opt.learning_rate) == pytest.approx(0.01)
    for key, value in attrs.items():
        assert getattr(opt, key) == pytest.approx(value)
    # The schedule assigns the rate each epoch, so it must be a variable, not a schedule object.
    opt.learning_rate = 0.5
    assert float(opt.learning_rate) == pytest.approx(0.5)


def test_every_optimizer_type_is_registered() -> None:
    import typing

    union = typing.get_args(typing.get_args(OptimizerConfig)[0])
    types = {typing.get_args(c.model_fields["type"].annotation)[0] for c in union}
    assert set(OPTIMIZERS) == types
