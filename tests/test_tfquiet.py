"""TensorFlow started by convtrain prints none of its own warnings, unless CONVTRAIN_TF_LOGS=1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

RETRACES = """
from convtrain.tfquiet import import_tensorflow

import_tensorflow()
import tensorflow as tf


@tf.function
def double(x):
    return x * 2


for i in range(8):
    double(i)  # a Python int per call: a retrace each time, as a probe per trial gives
print("done")
"""


@pytest.mark.parametrize("logs", [None, "1"])
def test_tensorflow_warnings_are_hidden_unless_asked_for(logs):
    env = {k: v for k, v in os.environ.items() if k != "CONVTRAIN_TF_LOGS"}
    if logs:
        env["CONVTRAIN_TF_LOGS"] = logs
    proc = subprocess.run([sys.executable, "-c", RETRACES], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    assert ("triggered tf.function retracing" in proc.stderr) == bool(logs)
