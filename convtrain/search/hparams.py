"""TensorBoard's HParams dashboard for a sweep: `tensorboard --logdir SWEEP_DIR`.

Each trial process writes its session (the trial's values, with tensorboard.plugins.hparams'
api through tf.summary) into its run's tensorboard/ folder, beside the per-epoch scalars the
trainer writes anyway, so the dashboard's metrics are those curves. The experiment (each
value's domain, the metrics) is written once into SWEEP_DIR/hparams/. Both are built from the
trial's Optuna distributions, so a trial process needs nothing but the study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution, IntDistribution

METRICS = (
    ("validation", "epoch_accuracy"),
    ("validation", "epoch_loss"),
    ("train", "epoch_accuracy"),
)


def _numeric(choices: Any) -> bool:
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)


def _hparam(hp: Any, name: str, dist: Any) -> Any:
    if isinstance(dist, CategoricalDistribution):
        # One type per discrete domain: numbers stay numbers, anything mixed becomes text.
        values = list(dist.choices) if _numeric(dist.choices) else [str(c) for c in dist.choices]
        return hp.HParam(name, hp.Discrete(values))
    if isinstance(dist, IntDistribution):
        return hp.HParam(name, hp.IntInterval(dist.low, dist.high))
    return hp.HParam(name, hp.RealInterval(float(dist.low), float(dist.high)))


def _value(dist: Any, value: Any) -> Any:
    if isinstance(dist, CategoricalDistribution) and not _numeric(dist.choices):
        return str(value)
    return value


def write_session(tensorboard_dir: Path, trial: Any, name: str) -> None:
    """`trial` is a FrozenTrial with its params."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    values = {
        _hparam(hp, k, trial.distributions[k]): _value(trial.distributions[k], v)
        for k, v in trial.params.items()
    }
    writer = tf.summary.create_file_writer(str(tensorboard_dir))
    with writer.as_default():
        hp.hparams(values, trial_id=name)
    writer.close()


def write_experiment(sweep_dir: Path, trial: Any) -> None:
    folder = sweep_dir / "hparams"
    if folder.is_dir():
        return  # the first trial wrote it
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    metrics = [
        hp.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')}")
        for group, tag in METRICS
    ]
    hparams = [_hparam(hp, k, d) for k, d in trial.distributions.items()]
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()
