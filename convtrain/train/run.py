"""`convtrain train`: validate everything, create the run directory, train, evaluate.

Everything that can fail on the user's input (config, data, model) is checked before the run
directory is created, so a mistake never leaves an empty run behind. `--resume` reads the run's
own config.yaml, split.json and state.json and continues from the last committed epoch.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from convtrain.config.load import dump_config, load_config
from convtrain.config.schema import Experiment
from convtrain.errors import ConvtrainError
from convtrain.io import atomic_write_json, atomic_write_text
from convtrain.rundir import RunDir
from convtrain.tfquiet import import_tensorflow
from convtrain.train import checkpoints
from convtrain.train.environment import environment, session
from convtrain.train.optim import PlateauState
from convtrain.train.state import Monitor, TrainState, write_history

# train.mixed_precision -> Keras dtype policy (variables stay float32 in the mixed policies).
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def run_train(
    config: str | None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    runs_dir: str = "runs",
    resume: str | None = None,
) -> RunDir:
    if resume is not None:
        given = [
            what for what, v in (("CONFIG", config), ("--set", overrides), ("--name", name)) if v
        ]
        if given:
            raise ConvtrainError(
                f"--resume {resume}: a resumed run uses its own config.yaml and name; expected "
                f"no CONFIG, --set or --name, received {' and '.join(given)}"
            )
        return resume_run(resume)
    if config is None:
        raise ConvtrainError(
            "train: expected a CONFIG file (or --resume RUN_DIR to continue a run), received neither"
        )
    return start_run(load_config(config, overrides), _run_name(name), runs_dir)


def _run_name(name: str | None) -> str | None:
    """--name, held to the rule of the config's `name` (it becomes a folder name)."""
    if name is None:
        return None
    field = Experiment.model_fields["name"]
    pattern = next(m.pattern for m in field.metadata if getattr(m, "pattern", None))
    if not re.fullmatch(pattern, name) or len(name) > 80:
        raise ConvtrainError(
            f"--name: expected a name of letters, digits, '_', '.' or '-' (at most 80 "
            f"characters, starting with a letter or digit), received {name!r}"
        )
    return name


# distribute.strategy -> tf.distribute strategy, given TensorFlow and the visible GPUs.
STRATEGIES: dict[str, Callable[[Any, list], Any]] = {
    # Several GPUs: one replica each; otherwise TensorFlow's default single-device placement.
    "auto": lambda tf, gpus: (
        tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    ),
    "one_device": lambda tf, gpus: tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0"),
    "mirrored": lambda tf, gpus: tf.distribute.MirroredStrategy(),
    # Workers come from the TF_CONFIG environment variable; without it, a single worker.
    "multi_worker": lambda tf, gpus: tf.distribute.MultiWorkerMirroredStrategy(),
}


@contextmanager
def keras_session(experiment: Experiment, seed: int) -> Iterator[None]:
    """Seed, determinism, dtype policy and distribution strategy, set before anything is built."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if experiment.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[experiment.train.mixed_precision])
    strategy = STRATEGIES[experiment.distribute.strategy](
        tf, tf.config.list_physical_devices("GPU")
    )
    try:
        with strategy.scope():
            yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _with_data_root(experiment: Experiment) -> Experiment:
    """The experiment with data.root the folder actually read (CONVTRAIN_DATA_ROOT applied)."""
    from convtrain.data.index import resolve_root

    data = experiment.data.model_copy(update={"root": str(resolve_root(experiment.data))})
    return experiment.model_copy(update={"data": data})


def start_run(experiment: Experiment, name: str | None, runs_dir: str) -> RunDir:
    import_tensorflow()  # the config is valid: now TensorFlow may start (quietly)
    from convtrain.data.pipeline import make_datasets
    from convtrain.data.split import make_split, save_split
    from convtrain.model.build import build_model
    from convtrain.train.fit import compile_model, fit

    experiment = _with_data_root(experiment)
    with keras_session(experiment, experiment.seed):
        split = make_split(experiment)
        datasets = make_datasets(experiment, split)
        model = build_model(experiment, len(split.classes))
        compile_model(model, experiment, len(split.classes))
        monitor, note = Monitor.resolve(experiment.train.monitor, datasets.val is not None)

        run = RunDir.create(runs_dir, name or experiment.name)
        atomic_write_text(run.config, dump_config(experiment))
        save_split(split, run.split)
        atomic_write_json(run.environment, environment(experiment.seed))
        state = TrainState(
            status="running",
            epochs=experiment.train.epochs,
            monitor=monitor,
            plateau=_plateau(experiment),
        )
        state.save(run)
        write_history(run, state)
        print(f"run directory: {run.path}", file=sys.stderr, flush=True)
        if note:
            print(note, file=sys.stderr, flush=True)
        state = fit(model, datasets, experiment, run, state)
    _finish(run, experiment, state)
    return run


def _plateau(experiment: Experiment) -> PlateauState | None:
    if experiment.train.schedule.type != "plateau":
        return None
    return PlateauState(lr=experiment.train.optimizer.learning_rate)


def resume_run(path: str) -> RunDir:
    from convtrain.data.split import load_split

    run = RunDir.open(path, need=("config", "split", "state"))
    experiment = load_config(run.config)
    split = load_split(run.split)
    state = TrainState.load(run)
    if state.status == "completed":
        raise ConvtrainError(
            f"{run.path}: nothing to resume, the run completed {state.completed_epochs} of "
            f"{state.epochs} epochs; evaluate it with `convtrain evaluate {run.path}`"
        )
    pid = state.alive_elsewhere()
    if pid is not None:
        raise ConvtrainError(
            f"{run.path}: still being trained by process {pid} on this machine; wait for it, "
            f"or stop it (Ctrl-C or kill {pid}) before resuming"
        )
    if state.epochs != experiment.train.epochs:
        raise ConvtrainError(
            f"{run.state}: epochs: expected {experiment.train.epochs} (train.epochs in "
            f"{run.config}), received {state.epochs}; the run directory was edited"
        )
    env = run.read_json(run.environment) if run.environment.is_file() else None
    import_tensorflow()  # the run directory is valid: now TensorFlow may start (quietly)
    from convtrain.data.pipeline import make_datasets
    from convtrain.model.build import build_model
    from convtrain.train.fit import compile_model, fit

    checkpoints.recover(run, state.completed_epochs)
    # A different seed per resume point: restarting with the first epoch's seed would replay
    # its dropout and augmentation draws.
    seed = experiment.seed + state.completed_epochs
    with keras_session(experiment, seed):
        datasets = make_datasets(experiment, split)
        if state.completed_epochs:
            model = checkpoints.load_checkpoint(run.checkpoint("last"))
            compile_model(model, experiment, len(split.classes), optimizer=model.optimizer)
        else:
            model = build_model(experiment, len(split.classes))
            compile_model(model, experiment, len(split.classes))
        if not isinstance(env, dict):
            env = environment(experiment.seed)
        env.setdefault("resumed", []).append(
            {**session(), "seed": seed, "completed_epochs": state.completed_epochs}
        )
        atomic_write_json(run.environment, env)
        write_history(run, state)
        print(
            f"resuming {run.path} at epoch {state.completed_epochs + 1} of {state.epochs}",
            file=sys.stderr,
            flush=True,
        )
        state = fit(model, datasets, experiment, run, state)
    _finish(run, experiment, state)
    return run


def _headline(metrics: dict[str, Any]) -> str:
    """The evaluator's headline figures, in one line."""
    names = {
        "accuracy": "accuracy",
        "mean_per_class_accuracy": "mean per-class accuracy",
        "top_k_accuracy": f"top-{metrics.get('top_k', 'k')} accuracy",
    }
    parts = [
        f"{label} {metrics[key]:.4f}"
        for key, label in names.items()
        if isinstance(metrics.get(key), float)
    ]
    return ", ".join(parts) or "no metrics"


def _finish(run: RunDir, experiment: Experiment, state: TrainState) -> None:
    from convtrain.evaluate.run import evaluate_run

    if state.stopped_early and experiment.train.early_stopping is not None:
        print(
            f"early stopping after epoch {state.completed_epochs}: no {state.monitor.name} "
            f"improvement in {experiment.train.early_stopping.patience} epochs",
            file=sys.stderr,
        )
    ev = experiment.eval
    print(f"evaluating the {ev.checkpoint} checkpoint on the {ev.split} split", file=sys.stderr)
    metrics = evaluate_run(run, ev.checkpoint, ev.split)
    best = (
        f"best {state.monitor.name} {state.best_value:.4f} at epoch {state.best_epoch}"
        if state.best_value is not None
        else "no best epoch"
    )
    print(
        f"{run.path.name}: {state.completed_epochs} epochs, {best}; "
        f"{ev.split} ({ev.checkpoint} checkpoint): {_headline(metrics)}"
    )
