"""convtrain: convolutional-network experiments on CALTECH-101, one YAML config per experiment."""

__version__ = "0.1.0"
