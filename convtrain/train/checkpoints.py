"""Checkpoints that always agree with state.json, whenever the process dies.

Each epoch is committed in three steps:
  1. stage:   write checkpoints/.pending-<which>-<epoch>.keras (itself an atomic write);
  2. commit:  write state.json saying the epoch is complete (atomic);
  3. promote: rename the pending files to last.keras / best.keras (atomic).
`recover` finishes step 3 when state.json already counts the epoch, or discards the pending
files when it does not, so last.keras always holds exactly the epochs state.json reports.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.io import atomic_save
from convtrain.rundir import RunDir

_PENDING = re.compile(r"^\.pending-(last|best)-(\d+)\.keras$")


def pending_path(run: RunDir, which: str, epoch: int) -> Path:
    return run.checkpoints / f".pending-{which}-{epoch:05d}.keras"


def _size_of(run: RunDir, model: Any) -> int:
    """What a checkpoint of `model` takes: the last one's size, else its variables' bytes."""
    last = run.checkpoint("last")
    if last.is_file():
        return last.stat().st_size
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.weights, *(optimizer.variables if optimizer is not None else [])]
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def stage(run: RunDir, model: Any, epoch: int, best: bool) -> None:
    """Step 1: write the model after `epoch` (1-based) as pending last (and best) checkpoints.

    On a full disk the message names the checkpoint that could not be replaced; the committed
    one and state.json are untouched, and the pending files are discarded on resume.
    """
    last = pending_path(run, "last", epoch)
    needed = _size_of(run, model)
    which = "last"
    try:
        atomic_save(last, lambda p: model.save(p), suffix=".keras", needed=needed)
        if best:
            which = "best"
            atomic_save(
                pending_path(run, "best", epoch),
                lambda p: shutil.copyfile(last, p),
                suffix=".keras",
                needed=needed,
            )
    except WriteFailed as exc:
        raise exc.replace(path=run.checkpoint(which)) from None


def recover(run: RunDir, completed: int) -> None:
    """Step 3 for the committed epoch's pending files; delete any other pending or temp file."""
    if not run.checkpoints.is_dir():
        return
    for path in sorted(run.checkpoints.iterdir()):
        match = _PENDING.match(path.name)
        if match and int(match.group(2)) == completed:
            os.replace(path, run.checkpoint(match.group(1)))
        elif match or (path.name.startswith(".") and ".tmp" in path.name):
            path.unlink(missing_ok=True)  # an epoch state.json never counted, or a torn temp file


def save_initial(run: RunDir, model: Any) -> None:
    """The model before its first training step: `convtrain explain` shows what training changed."""
    atomic_save(run.checkpoint("initial"), lambda p: model.save(p), suffix=".keras")


def save_final(run: RunDir, model: Any) -> None:
    atomic_save(
        run.final_model, lambda p: model.save(p), suffix=".keras", needed=_size_of(run, model)
    )


def load_checkpoint(path: Path, compile: bool = True) -> Any:
    """The model (compiled, with its optimizer state, unless `compile=False`) in Keras's safe mode."""
    # Keras takes about 5 s to import (measured): `explain` reads the rest of this module first.
    import keras

    if not path.is_file():
        raise ConvtrainError(f"{path}: missing from the run directory")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=compile)
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail anywhere inside Keras/h5py/zipfile
        text = str(exc).strip()
        detail = text.splitlines()[0][:200] if text else ""
        raise ConvtrainError(
            f"{path}: cannot load the checkpoint (expected a complete .keras file written by "
            f"`convtrain train`; received {exc.__class__.__name__}{': ' + detail if detail else ''})"
        ) from None
