"""The trial process's reporter: the pruner judges every epoch but the last."""

from __future__ import annotations

import keras
import optuna
import pytest

from convtrain.search.callback import StudyReporter


@pytest.fixture
def study() -> optuna.Study:
    # A median pruner that judges from the first epoch, and two finished trials far better
    # than the one under test, so any epoch that is judged is pruned.
    s = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0),
    )
    for _ in range(2):
        t = s.ask()
        for epoch in (1, 2, 3):
            t.report(0.9, epoch)
        s.tell(t, 0.9)
    return s


def _reporter(study: optuna.Study, epochs: int) -> StudyReporter:
    trial = study.ask()
    reporter = StudyReporter(study, trial._trial_id, "val_accuracy")
    reporter.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    reporter.set_params({"epochs": epochs, "verbose": 0, "steps": 1})
    return reporter


def test_a_bad_epoch_before_the_last_stops_the_trial(study: optuna.Study) -> None:
    reporter = _reporter(study, epochs=3)
    reporter.on_epoch_end(1, {"val_accuracy": 0.1})  # epoch 2 of 3
    assert reporter.model.stop_training
    assert reporter.trial.user_attrs["pruned_at_epoch"] == 2


def test_the_last_epoch_is_never_pruned(study: optuna.Study) -> None:
    reporter = _reporter(study, epochs=3)
    reporter.model.stop_training = False
    reporter.on_epoch_end(2, {"val_accuracy": 0.1})  # epoch 3 of 3: trained in full
    assert not reporter.model.stop_training
    assert "pruned_at_epoch" not in reporter.trial.user_attrs
    assert study.trials[-1].intermediate_values == {3: 0.1}  # reported all the same
