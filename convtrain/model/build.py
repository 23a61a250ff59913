"""Build the Keras model of an experiment by following its plan (convtrain.model.plan).

Each layer kind's builder is in its module under convtrain/layers/ and receives Keras from here,
so that importing the registry, `convtrain --help` and `inspect` never load TensorFlow.
"""

from __future__ import annotations

from typing import Any

from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError, ConvtrainError
from convtrain.layers import KIND_BY_TYPE
from convtrain.layers.keras_objects import KerasObject
from convtrain.layers.tensor import FIRST, LAST, Step
from convtrain.model.fused_bn import fuse_batch_norm
from convtrain.model.plan import Plan, plan_model

INPUT_NAME = "image"
PERMUTE_DIMS = {FIRST: (3, 1, 2), LAST: (2, 3, 1)}  # Keras Permute dims into that layout


def _keras_object(obj: KerasObject | None) -> Any:
    """A Keras built-in from the validated tables (never a Python path)."""
    if obj is None:
        return None
    import keras  # measured: importing Keras loads TensorFlow (seconds); only when building

    module = {
        "initializer": keras.initializers,
        "regularizer": keras.regularizers,
        "constraint": keras.constraints,
    }[obj.kind]
    return getattr(module, obj.class_name)(**obj.kwargs)


class _Builder:
    """What a kind's build function receives (convtrain.layers.registry.Builder)."""

    def __init__(self, keras: Any):
        self.keras = keras
        self.layers = keras.layers

    def objects(self, spec: Any, *fields: str) -> dict[str, Any]:
        return {f: _keras_object(getattr(spec, f)) for f in fields}

    def weights(self, spec: Any, prefix: str) -> dict[str, Any]:
        return self.objects(
            spec, f"{prefix}_initializer", f"{prefix}_regularizer", f"{prefix}_constraint"
        )

    def bias_and_activity(self, spec: Any) -> dict[str, Any]:
        return {
            "use_bias": spec.use_bias,
            **self.weights(spec, "bias"),
            **self.objects(spec, "activity_regularizer"),
        }

    def steps(self, steps: list[Step], x: Any) -> Any:
        for step in steps:
            if step.kind == "permute":  # the one layer the planner itself inserts
                x = self.layers.Permute(PERMUTE_DIMS[step.layout], name=step.name)(x)
            else:
                x = KIND_BY_TYPE[step.kind].build(step, x, self)
        return x


def _check_device(plan: Plan) -> None:
    """TensorFlow's CPU kernels for Conv2D and pooling cannot run NCHW (channels_first)."""
    first = next((s for s in plan.leaves() if s.layout == FIRST and s.kind != "permute"), None)
    if first is None:
        return
    import tensorflow as tf  # only for a channels_first model; see _keras_object

    if not tf.config.list_physical_devices("GPU"):
        raise ConvtrainError(
            f"{first.path}.data_format: expected channels_last on this machine (TensorFlow's "
            f"CPU kernels cannot run channels_first convolutions or pooling and no GPU is "
            f"visible), received channels_first"
        )


def build_model(
    experiment: Experiment, num_classes: int, *, check_device: bool = True, plan: Plan | None = None
) -> Any:
    """The experiment's keras.Model: layers named as in the config, softmax head `classifier`.

    `plan` is the caller's plan of the same stack (a command plans once); planned here otherwise.
    """
    if plan is None:
        plan = plan_model(experiment, num_classes)
    if plan.problems:
        raise ConfigError(plan.problems, source="model")
    if check_device:
        _check_device(plan)
    import keras  # see _keras_object

    builder = _Builder(keras)
    inputs = keras.Input(shape=plan.input.shape, name=INPUT_NAME)
    *body, head = plan.steps  # the plan always ends with the classifier head
    x = builder.steps(body, inputs)
    # Under mixed precision the head still computes in float32 (Keras's mixed-precision guide):
    # a bfloat16 softmax loses the small probabilities, and top-k accuracy refuses it.
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        outputs = builder.steps([head], x)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    model = keras.Model(inputs, outputs, name=experiment.name)
    if experiment.train.fused_batch_norm:
        fuse_batch_norm(model)
    return model
