"""In a trial process: report train.monitor to the study after every epoch, stop when pruned.

The sweep passes the storage, the study and the trial's id in the environment
(convtrain.search.runner). The pruner is the study's own, rebuilt from the study's record, so
every trial process judges by the same rule. A pruned trial stops after the epoch it was judged
on; the trainer then saves and evaluates what it has, as for early stopping.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import keras
import optuna

from convtrain.errors import ConvtrainError
from convtrain.rundir import RunDir
from convtrain.search import storage as storages
from convtrain.search.env import ENV_STORAGE, ENV_STUDY, ENV_TRIAL
from convtrain.search.hparams import write_experiment, write_session
from convtrain.search.samplers import make_pruner
from convtrain.train.state import TrainState


def _history(run: Path) -> list[dict[str, Any]]:
    try:
        return RunDir(run).read(TrainState).history
    except ConvtrainError:
        return []


class StudyReporter(keras.callbacks.Callback):
    def __init__(self, study: Any, trial_id: int, monitor: str, run: Path | None = None) -> None:
        super().__init__()
        self.study, self.monitor, self.run = study, monitor, run
        self.trial = optuna.trial.Trial(study, trial_id)

    @classmethod
    def from_env(cls, run: Path | None = None) -> StudyReporter:
        url, name = os.environ[ENV_STORAGE], os.environ[ENV_STUDY]
        store = storages.open_storage(url, retry=False)
        with storages.optuna_quiet():
            record = optuna.load_study(study_name=name, storage=store).user_attrs.get("convtrain")
            if not record:
                raise ConvtrainError(f"study {name}: not a convtrain sweep (no record)")
            pruner = make_pruner(record["prune"], int(record["epochs"]), record.get("min_epochs"))
            study = optuna.load_study(study_name=name, storage=store, pruner=pruner)
        return cls(study, int(os.environ[ENV_TRIAL]), record["monitor"], run)

    def _prune(self, epoch: int) -> None:
        # After the last epoch there is nothing left to save: the trial is complete, whatever a
        # pruner (the median one judges every epoch) would say of it.
        if epoch >= int(self.params.get("epochs") or 0):
            return
        with storages.optuna_quiet():
            if self.trial.should_prune():
                self.trial.set_user_attr("pruned_at_epoch", epoch)
                self.model.stop_training = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        frozen = self.study._storage.get_trial(self.trial._trial_id)
        if self.run is None:
            return
        board = self.run / "tensorboard"
        # Once per run: a resumed trial has its session already.
        if not any(board.glob("events.out.tfevents.*")):
            write_session(board, frozen, f"trial {frozen.number}")
            write_experiment(self.run.parent.parent, frozen)  # the run is SWEEP_DIR/trials/<run>
        # A resumed run: every committed epoch is reported (a kill can fall between an epoch's
        # commit and its report), then the pruner may stop it before it trains again.
        done = [r for r in _history(self.run) if r.get("epoch") not in frozen.intermediate_values]
        with storages.optuna_quiet():
            for row in done:
                value = row.get(self.monitor)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.trial.report(float(value), step=int(row["epoch"]))
        if frozen.intermediate_values or done:
            self._prune(max([*frozen.intermediate_values, *(int(r["epoch"]) for r in done)]))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        with storages.optuna_quiet():
            self.trial.report(
                float(value), step=epoch + 1
            )  # epochs count from 1, as in history.csv
        self._prune(epoch + 1)
