"""Build the Keras model of an experiment by following its plan (convtrain.model.shapes).

TensorFlow and Keras are imported inside functions so that importing this module, and
`convtrain --help`, stay instant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convtrain.config.keras_objects import KerasObject
from convtrain.config.schema import Experiment
from convtrain.errors import ConvtrainError
from convtrain.model.arithmetic import FIRST
from convtrain.model.fused_bn import fuse_batch_norm
from convtrain.model.shapes import PERMUTE_DIMS, Plan, Step, plan_model

INPUT_NAME = "image"


def _keras_object(obj: KerasObject | None) -> Any:
    """A Keras built-in from the validated tables (never a Python path)."""
    if obj is None:
        return None
    import keras

    module = {
        "initializer": keras.initializers,
        "regularizer": keras.regularizers,
        "constraint": keras.constraints,
    }[obj.kind]
    return getattr(module, obj.class_name)(**obj.kwargs)


def _objects(spec: Any, *fields: str) -> dict[str, Any]:
    return {f: _keras_object(getattr(spec, f)) for f in fields}


def _weights(spec: Any, prefix: str) -> dict[str, Any]:
    return _objects(
        spec,
        f"{prefix}_initializer",
        f"{prefix}_regularizer",
        f"{prefix}_constraint",
    )


def _bias_and_activity(spec: Any) -> dict[str, Any]:
    return {
        "use_bias": spec.use_bias,
        **_weights(spec, "bias"),
        **_objects(spec, "activity_regularizer"),
    }


def _conv2d(step: Step, x: Any) -> Any:
    import keras

    s = step.spec
    return keras.layers.Conv2D(
        s.filters, s.kernel_size, strides=s.strides, padding=s.padding,
        data_format=step.layout, dilation_rate=s.dilation_rate, groups=s.groups,
        activation=s.activation, name=step.name, **_weights(s, "kernel"), **_bias_and_activity(s),
    )(x)  # fmt: skip


def _separable(step: Step, x: Any) -> Any:
    import keras

    s = step.spec
    return keras.layers.SeparableConv2D(
        s.filters, s.kernel_size, strides=s.strides, padding=s.padding,
        data_format=step.layout, dilation_rate=s.dilation_rate,
        depth_multiplier=s.depth_multiplier, activation=s.activation, name=step.name,
        **_weights(s, "depthwise"), **_weights(s, "pointwise"), **_bias_and_activity(s),
    )(x)  # fmt: skip


def _depthwise(step: Step, x: Any) -> Any:
    import keras

    s = step.spec
    return keras.layers.DepthwiseConv2D(
        s.kernel_size, strides=s.strides, padding=s.padding,
        depth_multiplier=s.depth_multiplier, data_format=step.layout,
        dilation_rate=s.dilation_rate, activation=s.activation, name=step.name,
        **_weights(s, "depthwise"), **_bias_and_activity(s),
    )(x)  # fmt: skip


def _pool(cls_name: str) -> Callable[[Step, Any], Any]:
    def build(step: Step, x: Any) -> Any:
        import keras

        s = step.spec
        return getattr(keras.layers, cls_name)(
            pool_size=s.pool_size, strides=s.strides, padding=s.padding,
            data_format=step.layout, name=step.name,
        )(x)  # fmt: skip

    return build


def _global_pool(cls_name: str) -> Callable[[Step, Any], Any]:
    def build(step: Step, x: Any) -> Any:
        import keras

        return getattr(keras.layers, cls_name)(data_format=step.layout, name=step.name)(x)

    return build


def _batch_norm(step: Step, x: Any) -> Any:
    import keras

    s = step.spec
    axis = 1 if step.inp.spatial and step.layout == FIRST else -1
    return keras.layers.BatchNormalization(
        axis=axis, momentum=s.momentum, epsilon=s.epsilon, center=s.center, scale=s.scale,
        name=step.name,
    )(x)  # fmt: skip


def _dropout(step: Step, x: Any) -> Any:
    import keras

    return keras.layers.Dropout(step.spec.rate, name=step.name)(x)


def _spatial_dropout(step: Step, x: Any) -> Any:
    import keras

    return keras.layers.SpatialDropout2D(step.spec.rate, data_format=step.layout, name=step.name)(x)


def _flatten(step: Step, x: Any) -> Any:
    import keras

    return keras.layers.Flatten(name=step.name)(x)


def _dense(step: Step, x: Any) -> Any:
    import keras

    s = step.spec
    return keras.layers.Dense(
        step.out.shape[-1], activation=s.activation, name=step.name,
        **_weights(s, "kernel"), **_bias_and_activity(s),
    )(x)  # fmt: skip


def _activation(step: Step, x: Any) -> Any:
    import keras

    return keras.layers.Activation(step.spec.activation, name=step.name)(x)


def _permute(step: Step, x: Any) -> Any:
    import keras

    return keras.layers.Permute(PERMUTE_DIMS[step.layout], name=step.name)(x)


def _residual(step: Step, x: Any) -> Any:
    import keras

    body = build_steps(step.body, x)
    shortcut = build_steps(step.shortcut, x)
    add, *after = step.merge
    return build_steps(after, keras.layers.Add(name=add.name)([body, shortcut]))


def _inception(step: Step, x: Any) -> Any:
    import keras

    outputs = [build_steps(branch, x) for branch in step.branches]
    axis = 1 if step.layout == FIRST else -1
    return keras.layers.Concatenate(axis=axis, name=step.merge[0].name)(outputs)


# YAML `type` (and the plan's inserted kinds) -> a function adding that layer to the graph.
BUILDERS: dict[str, Callable[[Step, Any], Any]] = {
    "conv2d": _conv2d,
    "separable_conv2d": _separable,
    "depthwise_conv2d": _depthwise,
    "max_pool": _pool("MaxPooling2D"),
    "avg_pool": _pool("AveragePooling2D"),
    "global_avg_pool": _global_pool("GlobalAveragePooling2D"),
    "global_max_pool": _global_pool("GlobalMaxPooling2D"),
    "batch_norm": _batch_norm,
    "dropout": _dropout,
    "spatial_dropout": _spatial_dropout,
    "flatten": _flatten,
    "dense": _dense,
    "activation": _activation,
    "residual": _residual,
    "inception": _inception,
    "permute": _permute,
}


def build_steps(steps: list[Step], x: Any) -> Any:
    for step in steps:
        x = BUILDERS[step.kind](step, x)
    return x


def _check_device(plan: Plan) -> None:
    """TensorFlow's CPU kernels for Conv2D and pooling cannot run NCHW (channels_first)."""
    first = next((s for s in plan.leaves() if s.layout == FIRST and s.kind != "permute"), None)
    if first is None:
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise ConvtrainError(
            f"{first.path}.data_format: expected channels_last on this machine (TensorFlow's "
            f"CPU kernels cannot run channels_first convolutions or pooling and no GPU is "
            f"visible), received channels_first"
        )


def build_model(experiment: Experiment, num_classes: int, *, check_device: bool = True) -> Any:
    """The experiment's keras.Model: layers named as in the config, softmax head `classifier`."""
    plan = plan_model(experiment, num_classes)
    if plan.problems:
        from convtrain.errors import ConfigError

        raise ConfigError(plan.problems, source="model")
    if check_device:
        _check_device(plan)
    import keras

    inputs = keras.Input(shape=plan.input.shape, name=INPUT_NAME)
    *body, head = plan.steps  # the plan always ends with the classifier head
    x = build_steps(body, inputs)
    # Under mixed precision the head still computes in float32 (Keras's mixed-precision guide):
    # a bfloat16 softmax loses the small probabilities, and top-k accuracy refuses it.
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        outputs = build_steps([head], x)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    model = keras.Model(inputs, outputs, name=experiment.name)
    if experiment.train.fused_batch_norm:
        fuse_batch_norm(model)
    return model
