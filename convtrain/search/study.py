"""A sweep directory and its Optuna study: created once, joined by every later process.

SWEEP_DIR/
  study.json       which study this is and where it lives (SweepRecord)
  study.journal    the default storage (Optuna's journal file)
  base.yaml        the config the trials train, with --set per trial
  trials/t0007-*/  one ordinary run directory per trial
  logs/t0007.log   each trial process's output
  locks/           one lock per live sweep process (a dead process's lock is free)

The study holds the same record in its user attributes, so a process joining a database
study from another machine checks that it runs the same sweep.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from convtrain.errors import ConvtrainError
from convtrain.io import atomic_write_text
from convtrain.safeload import read_json
from convtrain.search import storage as storages
from convtrain.search.plan import Plan

RECORD = "study.json"
LEGACY = "sweep.json"  # convtrain's earlier sweep engine
ATTR = "convtrain"  # the study's user attribute holding the record


class SweepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = 1
    study: str
    storage: str | None  # None: SWEEP_DIR/study.journal
    digest: str
    config: str  # the base config as given
    overrides: list[str]
    space: dict[str, str]  # config path -> what is searched
    sampler: str
    prune: str
    min_epochs: int | None = None  # absent in studies made before the option
    trials: int | None
    seed: int
    monitor: str
    direction: str
    epochs: int
    created: str

    @classmethod
    def of(cls, plan: Plan, study: str, storage: str | None) -> SweepRecord:
        return cls(
            study=study,
            storage=storage,
            digest=plan.digest,
            config=str(plan.config),
            overrides=list(plan.overrides),
            space={d.key: d.describe() for d in plan.space},
            sampler=plan.sampler,
            prune=plan.prune,
            min_epochs=plan.min_epochs,
            trials=plan.trials,
            seed=plan.seed,
            monitor=plan.monitor,
            direction=plan.direction,
            epochs=plan.epochs,
            created=datetime.now().isoformat(timespec="seconds"),
        )


def is_sweep(path: Path) -> bool:
    return (path / RECORD).is_file()


def read_record(path: Path) -> SweepRecord:
    file = path / RECORD
    try:
        # Through the budget: a hostile study.json is one line, not a hang or a RecursionError.
        return SweepRecord.model_validate(read_json(file))
    except ConvtrainError:
        raise
    except (OSError, ValueError, ValidationError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ConvtrainError(f"{file}: not a readable sweep record ({reason})") from None


def storage_url(path: Path, record: SweepRecord) -> str:
    return record.storage or storages.default_url(path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold SWEEP_DIR/.lock: two processes starting the same sweep create it once."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare(plan: Plan, sweep_dir: Path, storage: str | None, study: str | None) -> SweepRecord:
    """Create the sweep directory, or check that an existing one holds this sweep."""
    if (sweep_dir / LEGACY).is_file() and not is_sweep(sweep_dir):
        raise ConvtrainError(
            f"{sweep_dir}: a sweep of convtrain's earlier engine (sweep.json), which cannot be "
            f"continued as an Optuna study; expected a new --sweep-dir (its finished trials stay "
            f"comparable: convtrain compare {sweep_dir})"
        )
    with locked(sweep_dir):
        if is_sweep(sweep_dir):
            record = read_record(sweep_dir)
            given = (study or record.study, storage or record.storage)
            same = record.digest in (plan.digest, plan.legacy_digest)
            if not same or given != (record.study, record.storage):
                raise ConvtrainError(
                    f"{sweep_dir}: this sweep directory holds another sweep (study {record.study}: "
                    f"another config, --set, space, sampler, pruner, --study or --storage); "
                    f"expected the same ones to resume it, or a new --sweep-dir"
                )
            return record
        record = SweepRecord.of(plan, study or plan.study_name, storage)
        atomic_write_text(sweep_dir / "base.yaml", plan.config.read_text(encoding="utf-8"))
        atomic_write_text(sweep_dir / RECORD, record.model_dump_json(indent=2) + "\n")
        return record


def open_study(url: str, record: SweepRecord, sampler: Any = None, pruner: Any = None) -> Any:
    """Create or load the study; refuse one that holds a different sweep."""
    import optuna

    store = storages.open_storage(url)
    with storages.optuna_quiet():
        study = optuna.create_study(
            storage=store,
            study_name=record.study,
            direction=record.direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    held = study.user_attrs.get(ATTR)
    if held is None:
        study.set_user_attr(ATTR, json.loads(record.model_dump_json()))
    elif held.get("digest") != record.digest:
        raise ConvtrainError(
            f"study {record.study} in {storages.masked(url)} holds another sweep (config "
            f"{held.get('config')}, {', '.join(held.get('space', {}))}); expected the same "
            f"config, --set and options on every machine, or another --study"
        )
    return study


def load_study(path: Path) -> tuple[SweepRecord, Any]:
    """The record and study of an existing sweep directory (for compare and report)."""
    import optuna

    record = read_record(path)
    store = storages.open_storage(storage_url(path, record), retry=False)
    try:
        with storages.optuna_quiet():
            return record, optuna.load_study(study_name=record.study, storage=store)
    except KeyError:
        raise ConvtrainError(
            f"{path}: its study {record.study} is not in {storages.masked(storage_url(path, record))}"
        ) from None
