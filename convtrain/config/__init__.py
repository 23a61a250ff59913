"""Experiment configs: schema (pydantic), YAML loading, `--set` overrides, error formatting."""

from convtrain.config.load import dump_config, load_config, validate
from convtrain.config.schema import Experiment

__all__ = ["Experiment", "dump_config", "load_config", "validate"]
