"""The cluster of a multi-worker run, from TF_CONFIG or `--workers`/`--worker-index`.

Validated here, before TensorFlow starts, so a typo in an address is a one-line error rather
than a worker waiting for a peer that does not exist.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convtrain.errors import ConvtrainError
from convtrain.safeload import loads_json

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Cluster:
    """The workers of a multi-worker run, and which task this process is."""

    workers: tuple[str, ...]
    chief: str | None  # TF_CONFIG's optional "chief" job (one task); None: worker 0 is chief
    task_type: str  # "worker" or "chief"
    task_index: int
    source: str  # where it came from: "TF_CONFIG" or "--workers"

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.chief is None and self.task_index == 0)

    @property
    def size(self) -> int:
        return len(self.workers) + (self.chief is not None)

    @property
    def address(self) -> str:
        return self.chief if self.task_type == "chief" else self.workers[self.task_index]  # type: ignore[return-value]

    def describe(self) -> str:
        role = "chief" if self.is_chief else "worker"
        return f"{self.task_type} {self.task_index} of {self.size} ({self.address}, {role})"

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.workers if self.chief is None else (self.chief, *self.workers)

    def spec(self) -> dict[str, list[str]]:
        jobs = {"worker": list(self.workers)}
        if self.chief is not None:
            jobs["chief"] = [self.chief]
        return jobs


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConvtrainError(f"{where}: expected a list of host:port addresses, received {value!r}")
    for item in value:
        match = _ADDRESS.match(item) if isinstance(item, str) else None
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ConvtrainError(
                f"{where}: expected host:port addresses (port 1-65535), received {item!r}"
            )
    if len(set(value)) != len(value):
        raise ConvtrainError(f"{where}: expected distinct addresses, received {value!r}")
    return tuple(value)


def cluster_from_tf_config(text: str) -> Cluster:
    """The cluster described by a TF_CONFIG value (jobs `worker` and optionally `chief`)."""
    try:
        data = loads_json(text, "TF_CONFIG")
    except json.JSONDecodeError as exc:
        raise ConvtrainError(
            f"TF_CONFIG: expected JSON, received {text[:60]!r} ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict):
        raise ConvtrainError(
            'TF_CONFIG: expected {"cluster": {"worker": [...]}, "task": {"type": "worker", '
            f'"index": N}}}}, received {text[:80]!r}'
        )
    jobs = data["cluster"]
    unknown = sorted(set(jobs) - {"worker", "chief"})
    if unknown:
        raise ConvtrainError(
            f"TF_CONFIG: cluster: expected the jobs worker and (optionally) chief, received {unknown}"
        )
    workers = _addresses(jobs.get("worker"), "TF_CONFIG: cluster.worker")
    chief = None
    if "chief" in jobs:
        chiefs = _addresses(jobs["chief"], "TF_CONFIG: cluster.chief")
        if len(chiefs) != 1:
            raise ConvtrainError(
                f"TF_CONFIG: cluster.chief: expected one address, received {len(chiefs)}"
            )
        chief = chiefs[0]
    task = data.get("task")
    if not isinstance(task, dict):
        raise ConvtrainError(
            f'TF_CONFIG: task: expected {{"type": ..., "index": ...}}, received {task!r}'
        )
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in jobs:
        raise ConvtrainError(
            f"TF_CONFIG: task.type: expected one of the cluster's jobs {sorted(jobs)}, received {task_type!r}"
        )
    size = len(workers) if task_type == "worker" else 1
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ConvtrainError(
            f"TF_CONFIG: task.index: expected an integer in 0..{size - 1}, received {index!r}"
        )
    return Cluster(workers, chief, task_type, index, "TF_CONFIG")


def cluster_from_flags(workers: str, index: int) -> Cluster:
    addresses = _addresses([w.strip() for w in workers.split(",")], "--workers")
    if not 0 <= index < len(addresses):
        raise ConvtrainError(
            f"--worker-index: expected an integer in 0..{len(addresses) - 1} (one per --workers "
            f"address), received {index}"
        )
    return Cluster(addresses, None, "worker", index, "--workers")


def resolve_cluster(
    strategy: str,
    workers: str | None = None,
    worker_index: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Cluster | None:
    """The cluster of a `multi_worker` run; None for a single process (or any other strategy)."""
    if (workers is None) != (worker_index is None):
        given, missing = (
            ("--workers", "--worker-index") if workers else ("--worker-index", "--workers")
        )
        raise ConvtrainError(
            f"{given}: expected {missing} too (both or neither), received only {given}"
        )
    tf_config = environ.get("TF_CONFIG", "").strip()
    if workers is not None:
        if strategy != "multi_worker":
            raise ConvtrainError(
                f"--workers: expected distribute.strategy multi_worker, received {strategy} "
                f"(add --set distribute.strategy=multi_worker)"
            )
        if tf_config:
            raise ConvtrainError(
                "--workers: expected the cluster from either TF_CONFIG or --workers, received both "
                "(unset TF_CONFIG or drop --workers and --worker-index)"
            )
        return cluster_from_flags(workers, worker_index)  # type: ignore[arg-type]
    if strategy == "multi_worker" and tf_config:
        return cluster_from_tf_config(tf_config)
    return None
