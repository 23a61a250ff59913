"""Which embedded Optuna storage a sweep directory gets: the journal file or SQLite, measured.

Several processes on one machine share one study, as `convtrain sweep` workers do: each asks a
trial, reports one value per epoch, reads the study (as the pruner and the sampler do) and
tells the result. Printed per storage and number of processes: the wall time, storage
operations per second and the errors (a "database is locked" is a lost report or trial).

    python benchmarks/search_storage.py [--processes 2 4] [--trials 20] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _storage(kind: str, folder: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    return optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}", heartbeat_interval=10)


def _worker(kind: str, folder: str, trials: int, epochs: int, out: mp.Queue) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors: list[str] = []
    done = 0
    study = optuna.load_study(
        study_name="bench",
        storage=_storage(kind, Path(folder)),
        pruner=optuna.pruners.MedianPruner(),
    )
    for _ in range(trials):
        try:
            trial = study.ask()
            x = trial.suggest_float("x", -10, 10)
            for step in range(epochs):
                trial.report(-((x - 2) ** 2) - 1.0 / (step + 1), step)
                trial.should_prune()
            study.tell(trial, -((x - 2) ** 2))
            done += 1
        except Exception as exc:  # noqa: BLE001 - counted, that is the measurement
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    out.put((done, errors))


def measure(kind: str, processes: int, trials: int, epochs: int) -> dict:
    import optuna

    folder = Path(tempfile.mkdtemp(prefix=f"storage-{kind}-"))
    try:
        optuna.create_study(
            study_name="bench", storage=_storage(kind, folder), direction="maximize"
        )
        out: mp.Queue = mp.get_context("spawn").Queue()
        ctx = mp.get_context("spawn")
        start = time.perf_counter()
        procs = [
            ctx.Process(target=_worker, args=(kind, str(folder), trials, epochs, out))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        done = sum(r[0] for r in results)
        errors = [e for r in results for e in r[1]]
        study = optuna.load_study(study_name="bench", storage=_storage(kind, folder))
        finished = sum(t.state.is_finished() for t in study.trials)
        ops = done * (epochs * 2 + 3)
        return {
            "storage": kind,
            "processes": processes,
            "trials_told": done,
            "trials_finished_in_study": finished,
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "wall_s": round(wall, 2),
            "ops_per_s": round(ops / wall, 1),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = parser.parse_args()
    rows = []
    for processes in args.processes:
        for kind in ("journal", "sqlite"):
            row = measure(kind, processes, args.trials, args.epochs)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
