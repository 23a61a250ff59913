"""convtrain: convolutional-network experiments on CALTECH-101, one YAML config per experiment."""

import os

# TensorFlow's own CPU kernels run Conv2D and pools only in channels_last; its oneDNN kernels
# run both. TensorFlow turns oneDNN on by itself only on some CPUs (those with AVX-512), so
# without this `data_format: channels_first` trains on one x86 machine and fails on the next.
# It must be set before TensorFlow is imported; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
