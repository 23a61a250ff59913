"""Which process runs a trial, and which trials lost theirs (killed, or their machine died).

Each sweep process holds an flock on its own file in a locks/ folder for as long as it lives
(storage.locks_dir: beside a journal, in SWEEP_DIR for a database); every trial it runs names
that file. The kernel releases the lock when the process dies, even by kill -9, so a RUNNING
trial whose owner's lock can be taken is stale. In a journal's folder, shared by all the
study's processes, a lock that is gone is stale too: its owner died with its machine, or the
sweep directory was carried to another machine without it. Database storages add Optuna's
heartbeat for trials whose owner ran on another machine. A stale trial is failed and
retried by Optuna's RetryHeartbeatStaleTrialCallback: the retry keeps the params, user attributes and
reported epochs, and resumes the trial's run directory from its checkpoint.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from convtrain.search import storage as storages

HOST = socket.gethostname()


class Owner:
    """This process's lock, held from `acquire` until `release` (or death)."""

    def __init__(self, locks: Path) -> None:
        # The start time too: a pid reused by a later process must not adopt a dead one's trials.
        name = f"{HOST}-{os.getpid()}-{time.time_ns()}.lock"
        self.path = (locks / name).resolve()
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def attrs(self) -> dict[str, str]:
        return {"host": HOST, "owner": str(self.path)}


def _dead(owner: str, host: str | None, locks: Path, shared: bool) -> bool:
    """True when no process holds the lock `owner` names (its owner died); False while one does,
    or when it cannot be known here."""
    path = locks / Path(owner).name if shared else Path(owner)
    try:
        fh = open(path)  # noqa: SIM115
    except FileNotFoundError:
        # Every process of the study keeps its lock in `locks` while it has trials running.
        return shared
    except OSError:
        return False
    with fh:
        if host != HOST:
            return False  # another machine's lock, alive or not: flock need not reach across NFS
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path.unlink(missing_ok=True)
        return True


def retry(study: Any, trial: Any, limit: int | None = storages.MAX_RETRY) -> bool:
    """Enqueue a copy of `trial` (Optuna's retry callback); False when its retries are used up."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    before = len(study.get_trials(deepcopy=False))
    with storages.optuna_quiet():
        RetryHeartbeatStaleTrialCallback(limit, inherit_intermediate_values=True)(study, trial)
    return len(study.get_trials(deepcopy=False)) > before


def reclaim(study: Any, locks: Path, shared: bool) -> list[int]:
    """Fail and retry every RUNNING trial whose owner has died (storage.locks_dir: `locks` and
    whether the study's processes all share it); their numbers."""
    import optuna
    from optuna.trial import TrialState

    stale = []
    dead: set[str] = set()  # a dead owner's lock is removed with its first trial, not its others
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("owner")
        host = trial.user_attrs.get("host")
        if not owner or (owner not in dead and not _dead(owner, host, locks, shared)):
            continue
        dead.add(owner)
        storage = study._storage  # Optuna's public API has no "fail this trial" of its own
        try:
            storage.set_trial_user_attr(
                trial._trial_id,
                "error",
                f"its sweep process on {host or 'an unnamed host'} died (killed, or its machine "
                f"was lost); retried",
            )
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process reclaimed it first
        stale.append(trial.number)
        retry(study, storage.get_trial(trial._trial_id))
    return stale
