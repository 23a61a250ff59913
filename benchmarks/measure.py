"""The benchmark's measurements other than training variants: machine, data, start-up, memory.

Anything that imports TensorFlow runs in a child process (`python -m benchmarks.measure KIND
...`, one JSON line on stdout), so the driver stays light and every figure comes from a fresh
interpreter with its own thread pools.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convtrain.config.schema import DataConfig
from convtrain.data.cache import CACHE_ENV, open_cache
from convtrain.data.index import index_dataset
from convtrain.evaluate.summary import MetricsRecord
from convtrain.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


def child(kind: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m benchmarks.measure KIND ARGS` (or another module) and parse its JSON."""
    module = "benchmarks.trainbench" if kind == "train" else "benchmarks.measure"
    argv = [sys.executable, "-m", module, *([] if kind == "train" else [kind]), *args]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
        model = next((line for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    except OSError:
        model = ""
    return {
        "cpu": model.split(":", 1)[-1].strip(),
        "cores": len(os.sched_getaffinity(0)),
        "avx512_bf16": " avx512_bf16" in flags,
        "amx_bf16": " amx_bf16" in flags,
        "python": sys.version.split()[0],
    }


def matmul_rates(size: int, seconds: float) -> dict[str, float]:
    """FLOP/s of a square matmul on the CPU, float32 and bfloat16 (child process)."""
    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    rates = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.uniform([size, size], dtype=tf.float32)
        a = tf.cast(a, dtype)
        tf.linalg.matmul(a, a).numpy()  # warm-up: kernels and thread pools
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            tf.linalg.matmul(a, a).numpy()
            runs += 1
        rates[dtype] = 2 * size**3 * runs / (time.perf_counter() - start)
    return rates


@contextmanager
def _cache_env(directory: Path) -> Iterator[None]:
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(directory)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous


def preparation(root: Path, image_size: int, work: Path) -> dict[str, Any]:
    """Index and cache every image of `root` (BACKGROUND_Google included): cold, then warm.

    Cold decodes every JPEG into an empty cache folder (the JPEG files themselves may be in the
    OS page cache); warm is what every later run pays: index, fingerprint check, memory map.
    """
    data = DataConfig(
        root=str(root), classes="all", exclude=[], image_size=(image_size, image_size)
    )
    cache_dir = work / f"cache-{image_size}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    with _cache_env(cache_dir):
        start = time.perf_counter()
        index = index_dataset(data)
        cache = open_cache(index, data)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(3):
            start = time.perf_counter()
            again = open_cache(index_dataset(data), data)
            warm.append(time.perf_counter() - start)
    assert again.decoded == 0, "the warm pass decoded images: the cache was not reused"
    return {
        "image_size": image_size,
        "images": len(cache.rows),
        "skipped": len(index.skipped) + len(cache.failed),  # not images, or undecodable
        "cold_s": round(cold, 2),
        "warm_s": round(statistics.median(warm), 3),
        "cache_mb": round(cache.images.nbytes / 1e6, 1),
    }


def startup(argv: Sequence[str], repeats: int) -> float:
    """Median wall-clock seconds of `python -m convtrain ARGV` (must exit 0)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "convtrain", *argv],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def training_run(config: str, overrides: Sequence[str], work: Path) -> dict[str, Any]:
    """A real `convtrain train` (with its evaluation): peak memory, trainer images/s, accuracy."""
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=work))
    argv = [sys.executable, "-m", "convtrain", "train", config, "--runs-dir", str(runs)]
    for item in overrides:
        argv += ["--set", item]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{stderr[-3000:]}")
    (path,) = runs.iterdir()
    run = RunDir(path)
    history = run.read_history()
    metrics = run.read(MetricsRecord)
    rates = [float(r) for r in history.column("images_per_s")] if history is not None else []
    return {
        "wall_s": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "epoch_images_per_s": rates,
        "images_per_s": round(statistics.median(rates[1:] or rates), 1),
        "test_accuracy": metrics.accuracy,
    }


def _rss_mb() -> dict[str, float]:
    status = Path("/proc/self/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split()[1] for line in status if line.startswith("Rss")}
    return {k: int(v) / 1024 for k, v in fields.items()}


def streaming(root: Path, image_size: int) -> dict[str, Any]:
    """Read every cached image through convtrain's evaluation pipeline; sample memory (child).

    RssAnon is the process's own memory; RssFile counts cache pages mapped from disk, which the
    kernel can drop at any time: the dataset need not fit in RAM.
    """
    from convtrain.tfquiet import import_tensorflow

    import_tensorflow()
    from convtrain.config.schema import Experiment, ModelConfig
    from convtrain.data.pipeline import make_eval_dataset

    data = DataConfig(
        root=str(root), classes="all", exclude=[], image_size=(image_size, image_size)
    )
    cache = open_cache(index_dataset(data), data)
    items = [(path, 0) for path in cache.rows]
    layers = [{"type": "global_avg_pool"}]
    experiment = Experiment(data=data, model=ModelConfig(layers=layers))
    peak_anon, peak_file, start = 0.0, 0.0, time.perf_counter()
    for _batch in make_eval_dataset(experiment, items, 1):
        rss = _rss_mb()
        peak_anon = max(peak_anon, rss.get("RssAnon", 0.0))
        peak_file = max(peak_file, rss.get("RssFile", 0.0))
    return {
        "image_size": image_size,
        "images": len(items),
        "cache_mb": round(cache.images.nbytes / 1e6, 1),
        "read_s": round(time.perf_counter() - start, 2),
        "peak_anon_mb": round(peak_anon, 1),
        "peak_file_mb": round(peak_file, 1),
    }


KINDS: dict[str, Callable[[list[str]], Any]] = {
    "matmul": lambda a: matmul_rates(int(a[0]), float(a[1])),
    "streaming": lambda a: streaming(Path(a[0]), int(a[1])),
}


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    print(json.dumps(KINDS[kind](rest)), flush=True)
