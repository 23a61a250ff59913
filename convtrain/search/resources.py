"""What each of `--workers N` trial processes gets: one GPU each, or its share of the cores.

GPUs are found without TensorFlow (CUDA_VISIBLE_DEVICES, else nvidia-smi), so the sweep
process stays light. Without GPUs the cores are split: train.threads = cores // N, unless the
config sets train.threads itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def visible_gpus() -> list[str]:
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g for g in given.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class Slots:
    """Slot i of N: its environment and its `--set` assignments."""

    def __init__(self, workers: int, threads: int | None, gpus: list[str] | None = None) -> None:
        self.workers = workers
        self.gpus = visible_gpus() if gpus is None else gpus
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        split = workers > 1 and not self.gpus and threads is None
        self.threads = max(1, (cores or 1) // workers) if split else None

    def env(self, slot: int) -> dict[str, str]:
        if not self.gpus:
            return {}
        return {"CUDA_VISIBLE_DEVICES": self.gpus[slot % len(self.gpus)]}

    def sets(self, slot: int) -> list[str]:
        return [] if self.threads is None else [f"train.threads={self.threads}"]

    def describe(self) -> str:
        if self.gpus:
            return f"{self.workers} trial processes, one GPU each ({', '.join(self.gpus)})"
        if self.threads is not None:
            return f"{self.workers} trial processes, {self.threads} threads each"
        return f"{self.workers} trial process{'es' if self.workers > 1 else ''}"
