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

from convtrain import __version__


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    import tensorflow as tf

    out = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        out.append(details.get("device_name", device.name))
    return out


def session() -> dict[str, Any]:
    """Who started this part of the run, when, and how (one per start or resume)."""
    return {
        "start_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # argv[0] is a path to __main__.py or the entry-point script; the command is convtrain.
        "command_line": shlex.join(["convtrain", *sys.argv[1:]]),
        "hostname": socket.gethostname(),
    }


def environment(seed: int) -> dict[str, Any]:
    import keras
    import numpy as np
    import tensorflow as tf

    return {
        "convtrain": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "seed": seed,
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "gpus": _gpus(),
        **session(),
        "resumed": [],
    }
