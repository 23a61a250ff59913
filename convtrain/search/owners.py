"""Which process runs a trial, and which trials lost theirs (killed, or their machine died).

Each sweep process holds an flock on its own file in SWEEP_DIR/locks/ for as long as it lives;
every trial it runs names that file. The kernel releases the lock when the process dies, even
by kill -9, so a RUNNING trial whose owner's lock can be taken is stale. Database storages add
Optuna's heartbeat for trials whose owner ran on another machine. A stale trial is failed and
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

    def __init__(self, sweep_dir: Path) -> None:
        # The start time too: a pid reused by a later process must not adopt a dead one's trials.
        name = f"{HOST}-{os.getpid()}-{time.time_ns()}.lock"
        self.path = (sweep_dir / "locks" / name).resolve()
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


def _dead(lock: str) -> bool:
    """True when no process holds `lock` (its owner died); False while one does or elsewhere."""
    try:
        fh = open(lock)  # noqa: SIM115
    except OSError:
        return False  # on another machine, or already cleaned up by the process that reclaimed it
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        Path(lock).unlink(missing_ok=True)
        return True


def retry(study: Any, trial: Any, limit: int | None = storages.MAX_RETRY) -> bool:
    """Enqueue a copy of `trial` (Optuna's retry callback); False when its retries are used up."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    before = len(study.get_trials(deepcopy=False))
    with storages.optuna_quiet():
        RetryHeartbeatStaleTrialCallback(limit, inherit_intermediate_values=True)(study, trial)
    return len(study.get_trials(deepcopy=False)) > before


def reclaim(study: Any) -> list[int]:
    """Fail and retry every RUNNING trial whose owner on this machine has died; their numbers."""
    import optuna
    from optuna.trial import TrialState

    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("owner")
        if trial.user_attrs.get("host") != HOST or not owner or not _dead(owner):
            continue
        storage = study._storage  # Optuna's public API has no "fail this trial" of its own
        try:
            storage.set_trial_user_attr(
                trial._trial_id, "error", f"its sweep process on {HOST} died (killed?); retried"
            )
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process reclaimed it first
        stale.append(trial.number)
        retry(study, storage.get_trial(trial._trial_id))
    return stale
