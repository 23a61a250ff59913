"""environment.json: what ran the experiment, so a result can be traced and repeated."""

from __future__ import annotations

import os
import platform
import shlex
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from convtrain import __version__
from convtrain.records import Record


class Distribution(Record):
    """How the run was spread over devices and workers (convtrain.train.distribute.Placement)."""

    strategy: str
    tf_strategy: str
    replicas: int
    global_batch: int
    per_replica_batch: int
    learning_rate: float
    workers: dict[str, list[str]] | None = None
    task: str | None = None


class Cpu(Record):
    model: str
    count: int | None


class Resumed(Record):
    """One resume of the run: who, when, from which epoch, with which seed."""

    start_time: str
    command_line: str
    hostname: str
    seed: int
    completed_epochs: int
    distribute: Distribution | None = None


class Environment(Record):
    # Keys of another convtrain version are kept when the file is rewritten at a resume.
    model_config = ConfigDict(extra="allow")
    FILE = "environment.json"

    convtrain: str
    tensorflow: str
    keras: str
    python: str
    numpy: str
    platform: str
    seed: int
    cpu: Cpu
    gpus: list[str]
    # The GPUs this process was given (a sweep's --workers hand one to each trial process).
    cuda_visible_devices: str | None = None
    start_time: str
    command_line: str
    hostname: str
    resumed: list[Resumed] = []
    distribute: Distribution | None = None

    def resumed_at(
        self, seed: int, completed_epochs: int, distribute: Distribution | None
    ) -> Environment:
        """The record with this resume (now, by this process) added."""
        resume = Resumed(
            **session(), seed=seed, completed_epochs=completed_epochs, distribute=distribute
        )
        return self.model_copy(update={"resumed": [*self.resumed, resume]})

    @classmethod
    def capture(cls, seed: int, distribute: Distribution | None = None) -> Environment:
        # TensorFlow takes seconds to import: only when an environment is captured, after the
        # trainer has started it; reading the record back needs none of it.
        import keras
        import numpy as np
        import tensorflow as tf

        return cls(
            convtrain=__version__,
            tensorflow=tf.__version__,
            keras=keras.__version__,
            python=platform.python_version(),
            numpy=np.__version__,
            platform=platform.platform(),
            seed=seed,
            cpu=Cpu(model=_cpu_model(), count=os.cpu_count()),
            gpus=_gpus(tf),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            **session(),
            distribute=distribute,
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus(tf: Any) -> list[str]:
    out = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        out.append(details.get("device_name", device.name))
    return out


def session() -> dict[str, str]:
    """Who started this part of the run, when, and how (one per start or resume)."""
    return {
        "start_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # argv[0] is a path to __main__.py or the entry-point script; the command is convtrain.
        "command_line": shlex.join(["convtrain", *sys.argv[1:]]),
        "hostname": socket.gethostname(),
    }
