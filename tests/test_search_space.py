"""A searched value becomes the `--set` a person would write."""

from __future__ import annotations

import optuna

from convtrain.search.space import Dim, assignments


def test_a_float_searched_by_steps_is_set_as_its_step_gives_it() -> None:
    dim = Dim("model.layers[8].rate", "float", low=0.2, high=0.6, step=0.1)
    study = optuna.create_study()
    sampler = optuna.samplers.RandomSampler(seed=0)
    drawn = {
        sampler.sample_independent(study, study.ask(), dim.key, dim.distribution())
        for _ in range(60)
    }
    assert 0.30000000000000004 in drawn  # Optuna's own value for the step after 0.2
    sets = {assignments([dim], {dim.key: v})[0] for v in drawn}
    assert sets == {f"model.layers[8].rate={v}" for v in ("0.2", "0.3", "0.4", "0.5", "0.6")}
