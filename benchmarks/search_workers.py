"""Trials per hour: N trial processes with the cores split, or one trial process with all cores?

    python benchmarks/search_workers.py [--trials 4] [--epochs 4] [--out JSON]

The same grid of small trials (synthetic images made with Pillow, three classes at 32x32) runs
as `convtrain sweep --workers 1 --set train.threads=CORES` and as `--workers CORES` (one thread
each), each in a fresh sweep directory; printed: wall time and trials per hour of each. The
machine's load average before and after is part of the result (a shared machine is noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import make_dataset  # noqa: E402


def config(epochs: int, trials: int) -> dict:
    return {
        "name": "workers",
        "seed": 1,
        "data": {"image_size": 32, "split": {"method": "stratified", "val": 0.2, "test": 0.2}},
        "model": {
            "layers": [
                {
                    "type": "conv2d",
                    "filters": 16,
                    "kernel_size": 3,
                    "padding": "same",
                    "activation": "relu",
                },
                {"type": "max_pool", "pool_size": 2},
                {
                    "type": "conv2d",
                    "filters": 32,
                    "kernel_size": 3,
                    "padding": "same",
                    "activation": "relu",
                },
                {"type": "global_avg_pool"},
            ]
        },
        "train": {
            "epochs": epochs,
            "batch_size": 16,
            "optimizer": {"type": "adam", "learning_rate": 0.003},
        },
        "sweep": {"grid": {"model.layers[2].filters": [16 + 8 * i for i in range(trials)]}},
    }


def run(cfg: Path, env: dict, args: list[str], folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "convtrain", "sweep", str(cfg), *args, "--sweep-dir", str(folder)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="convtrain-workers-"))
    root = make_dataset(work / "ds", {"a": 60, "b": 60, "c": 60}, size_range=(32, 48))
    env = {**os.environ, "CONVTRAIN_DATA_ROOT": str(root), "CONVTRAIN_CACHE_DIR": str(work / "cache"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    cfg = work / "c.yaml"
    cfg.write_text(yaml.safe_dump(config(args.epochs, args.trials)))
    run(cfg, env, ["--trials", "1", "--random", "1"], work / "warm")  # the image cache, once
    load = os.getloadavg()
    rows = []
    for name, options in (
        (f"1 worker x {cores} threads", ["--workers", "1", "--set", f"train.threads={cores}"]),
        (f"{cores} workers x 1 thread", ["--workers", str(cores)]),
    ):
        wall = run(cfg, env, options, work / name.replace(" ", "_"))
        rows.append(
            {
                "setting": name,
                "wall_s": round(wall, 1),
                "trials_per_hour": round(3600 * args.trials / wall),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {"trials": args.trials, "epochs": args.epochs, "cores": cores, "load_before": load,
              "load_after": os.getloadavg(), "rows": rows}  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
