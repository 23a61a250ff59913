"""Where a study lives: Optuna's journal file in the sweep directory, or a database URL.

The default is `SWEEP_DIR/study.journal` (JournalStorage on a JournalFileBackend): nothing to
install or start, safe for several processes on one machine, and measured 4 to 8 times faster
than SQLite under several writers (docs/experiments.md). A database URL (postgresql://,
mysql://, sqlite:///) is Optuna's RDBStorage with its heartbeat, so a trial whose machine died
is seen as stale by the processes of the other machines and retried.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from convtrain.errors import ConvtrainError

JOURNAL = "study.journal"
# A trial process records a heartbeat this often; one silent for GRACE seconds is stale.
HEARTBEAT_S = 20
GRACE_S = 90
# A trial whose process died is retried at most this often (a config that kills its process
# every time is then failed for good, not retried forever).
MAX_RETRY = 3
_SCHEMES = ("postgresql", "mysql", "sqlite", "journal")
_DRIVERS = {"postgresql": ("psycopg", "convtrain[postgres]"), "mysql": ("pymysql", "pymysql")}


def default_url(sweep_dir: Path) -> str:
    return f"journal://{(sweep_dir / JOURNAL).resolve()}"


def locks_dir(sweep_dir: Path, url: str) -> tuple[Path, bool]:
    """Where the sweep processes of a study keep their owner locks, and whether every process of
    the study shares that folder. A journal's processes all reach its file, so their locks sit
    beside it; a database's processes may be on machines that share nothing else, so each
    keeps its own in its sweep directory (Optuna's heartbeat covers the other machines)."""
    if scheme(url) == "journal":
        return Path(url.split("://", 1)[1]).resolve().parent / "locks", True
    return sweep_dir.resolve() / "locks", False


def masked(url: str) -> str:
    """The URL with any password hidden, for messages and records."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def check_url(url: str) -> str:
    if scheme(url) not in _SCHEMES or "://" not in url:
        raise ConvtrainError(
            f"--storage: expected a URL postgresql://USER@HOST/DB, mysql://USER@HOST/DB, "
            f"sqlite:///PATH or journal:///PATH, received {masked(url)!r}"
        )
    return url


def with_driver(url: str) -> str:
    """postgresql:// is SQLAlchemy's psycopg (3); an installed psycopg2 serves when it is not."""
    if url.startswith("postgresql://"):
        for module, dialect in (
            ("psycopg", "postgresql+psycopg"),
            ("psycopg2", "postgresql+psycopg2"),
        ):
            try:
                __import__(module)
            except ImportError:
                continue
            return dialect + url.removeprefix("postgresql")
    return url


def _driver_missing(url: str) -> str | None:
    name = scheme(url)
    if name not in _DRIVERS:
        return None
    module, package = _DRIVERS[name]
    dialect = url.split(":", 1)[0]
    if "+" in dialect:
        module = dialect.split("+", 1)[1]
    try:
        __import__(module)
    except ImportError:
        return f"the {name} driver {module} is not installed; expected `pip install {package}`"
    return None


def open_storage(url: str, retry: bool = True) -> Any:
    """The Optuna storage of a URL; a one-line ConvtrainError when it cannot be opened."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    check_url(url)
    if scheme(url) == "journal":
        path = Path(url.split("://", 1)[1]).resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConvtrainError(
                f"{path}: cannot open the study journal ({exc.strerror})"
            ) from None
    problem = _driver_missing(with_driver(url))
    if problem:
        raise ConvtrainError(f"--storage {masked(url)}: {problem}")
    last = ""
    # Processes starting together on a new database race to create Optuna's tables: the
    # losers' CREATE fails once the tables exist, and opening again then succeeds.
    for attempt in range(5):
        try:
            with optuna_quiet():
                callback = RetryHeartbeatStaleTrialCallback(
                    MAX_RETRY, inherit_intermediate_values=True
                )
                return RDBStorage(
                    with_driver(url),
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=callback if retry else None,
                    engine_kwargs={"pool_pre_ping": True},
                )
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's and the drivers' errors share no base
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            last = first[0] if first else type(exc).__name__
            if "already exists" not in last and "duplicate key" not in last:
                break
            time.sleep(0.2 * (attempt + 1))
    raise ConvtrainError(f"--storage {masked(url)}: cannot open the study ({last})")


class optuna_quiet:
    """Optuna's experimental-feature warnings (heartbeat) are not the user's concern."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", category=Warning)

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)


def heartbeat(storage: Any) -> bool:
    from optuna.storages import RDBStorage

    return isinstance(storage, RDBStorage)
