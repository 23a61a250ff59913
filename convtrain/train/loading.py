"""Open what `evaluate` and `predict` read from a run directory, or fail with one line naming the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convtrain.config.load import load_config
from convtrain.config.schema import Experiment
from convtrain.data.split import Split, with_run_root
from convtrain.errors import ConvtrainError
from convtrain.rundir import RunDir
from convtrain.tfquiet import import_tensorflow
from convtrain.train.checkpoints import load_checkpoint

CHECKPOINTS = ("best", "last")
SPLITS = ("test", "val")


def choose(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ConvtrainError(f"{what}: expected one of {', '.join(choices)}, received {value!r}")
    return value


def load_experiment(run: RunDir) -> Experiment:
    if not run.config.is_file():
        raise ConvtrainError(f"{run.path}: incomplete run directory: config.yaml is missing")
    experiment = load_config(run.config)
    if not run.split.is_file():
        return experiment
    try:
        return with_run_root(experiment, Split.read(run.split))
    except ConvtrainError:
        return experiment  # a damaged split.json is reported by whoever needs it


def load_model(run: RunDir, checkpoint: str) -> Any:
    """The checkpoint's model without its optimizer (compile=False), in Keras's safe mode."""
    path = run.checkpoint(choose(checkpoint, CHECKPOINTS, "checkpoint"))
    if not path.is_file():
        present = [c for c in CHECKPOINTS if run.checkpoint(c).is_file()]
        hint = f" (present: {', '.join(f'{c}.keras' for c in present)})" if present else ""
        raise ConvtrainError(
            f"{run.path}: incomplete run directory: checkpoints/{path.name} is missing{hint}"
        )
    import_tensorflow()  # quietly: load_checkpoint imports Keras
    return load_checkpoint(path, compile=False)


def check_model(model: Any, path: Path, experiment: Experiment, num_classes: int) -> None:
    """The checkpoint must take the config's images and score the split's classes."""
    spec = experiment.model.input
    expected_in = (*spec.image_size, spec.channels)
    got_in = tuple(model.input_shape[1:])
    if got_in != expected_in:
        raise ConvtrainError(
            f"{path}: expected a model taking images of shape {list(expected_in)} (from "
            f"config.yaml), received a model taking {list(got_in)}"
        )
    got_out = model.output_shape[-1]
    if got_out != num_classes:
        raise ConvtrainError(
            f"{path}: expected a model scoring the {num_classes} classes of split.json, "
            f"received a model with {got_out} outputs"
        )
