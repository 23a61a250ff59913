"""Import TensorFlow without its C++ start-up chatter.

TensorFlow's absl logging writes oneDNN/CUDA notices to file descriptor 2 before
TF_CPP_MIN_LOG_LEVEL is read, burying convtrain's own output. Redirecting the descriptor while
TensorFlow imports and enumerates its devices hides exactly that; Python exceptions still reach
the user (they are printed after the descriptor is restored); TensorFlow's Python logger is
set to errors only. CONVTRAIN_TF_LOGS=1 shows it all.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow() -> None:
    if os.environ.get("CONVTRAIN_TF_LOGS") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401  (keras imports TensorFlow: both start up here)
        import tensorflow as tf

        tf.config.list_physical_devices()
        # Its Python-side warnings too: "triggered tf.function retracing" is printed whenever
        # a command probes several models (compare on a sweep makes one probe per trial).
        tf.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
