"""The experiment config: one pydantic model per YAML section, `extra="forbid"` throughout.

Every value a later module needs is validated and normalised here, so the rest of convtrain
passes typed objects, never dicts of strings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from convtrain.config.sweep import SweepConfig  # the sweep section lives in its own module
from convtrain.layers import LayerSpec
from convtrain.layers.base import Pair

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
PositiveInt = Annotated[int, Field(ge=1)]

DEFAULT_DATA_ROOT = "data/caltech-101/101_ObjectCategories"
DEFAULT_CACHE_DIR = "data/cache"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --- data -----------------------------------------------------------------------------------


class StratifiedSplit(Section):
    """Random split keeping each class's proportion in train, val and test."""

    method: Literal["stratified"]
    val: Fraction = 0.1
    test: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    seed: int | None = None  # None: the experiment's seed

    @model_validator(mode="after")
    def _leaves_training_data(self) -> StratifiedSplit:
        if self.val + self.test >= 1.0:
            raise ValueError(
                f"expected val + test < 1 so that images remain for training, "
                f"received val={self.val} + test={self.test}"
            )
        return self


class PerClassSplit(Section):
    """The standard CALTECH-101 protocol: N training images per class, at most M test images."""

    method: Literal["per_class"]
    train_per_class: PositiveInt = 30
    val_per_class: Annotated[int, Field(ge=0)] = 0
    test_per_class: PositiveInt = 50
    seed: int | None = None


class FileSplit(Section):
    """A fixed split loaded from a file written by an earlier run (`split.json`)."""

    method: Literal["file"]
    file: str


SplitConfig = Annotated[StratifiedSplit | PerClassSplit | FileSplit, Field(discriminator="method")]


class DataConfig(Section):
    # Overridden by the CONVTRAIN_DATA_ROOT environment variable.
    root: str = DEFAULT_DATA_ROOT
    classes: Literal["all"] | Annotated[list[str], Field(min_length=2)] = "all"
    # BACKGROUND_Google is clutter collected from image search, not an object category.
    exclude: list[str] = ["BACKGROUND_Google"]
    image_size: Pair = (96, 96)
    resize: Literal["stretch", "pad", "crop"] = "stretch"
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    # Overridden by the CONVTRAIN_CACHE_DIR environment variable.
    cache_dir: str = DEFAULT_CACHE_DIR
    split: SplitConfig = StratifiedSplit(method="stratified")

    @model_validator(mode="after")
    def _classes_unique(self) -> DataConfig:
        if isinstance(self.classes, list):
            seen = {c for c in self.classes if self.classes.count(c) > 1}
            if seen:
                raise ValueError(
                    f"expected distinct class names, received duplicates {sorted(seen)}"
                )
            dropped = sorted(set(self.classes) & set(self.exclude))
            if dropped:
                raise ValueError(f"classes {dropped} are also listed in data.exclude")
        return self

    @property
    def channels(self) -> int:
        return 3 if self.color_mode == "rgb" else 1


class AugmentConfig(Section):
    """Random transformations of training images (never of validation or test images)."""

    horizontal_flip: bool = False
    vertical_flip: bool = False
    rotation: Annotated[float, Field(ge=0.0, le=180.0)] = 0.0  # degrees, +/-
    zoom: Fraction = 0.0  # +/- fraction of the image size
    width_shift: Fraction = 0.0  # +/- fraction of the width
    height_shift: Fraction = 0.0  # +/- fraction of the height
    shear: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0  # +/- shear factor (tan of the angle)
    brightness: Fraction = 0.0  # +/- added to pixel values in [0, 1]
    contrast: Fraction = 0.0  # +/- fraction of contrast change
    random_crop: Annotated[float, Field(ge=0.0, lt=0.5)] = (
        0.0  # crop up to this fraction, resize back
    )
    fill_mode: Literal["nearest", "reflect", "wrap", "constant"] = "nearest"

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f) for f in type(self).model_fields if f != "fill_mode")


# --- model ----------------------------------------------------------------------------------


class InputSpec(Section):
    image_size: Pair
    channels: Literal[1, 3]


class ModelConfig(Section):
    input: InputSpec | None = None  # None: taken from data.image_size and data.color_mode
    # Per layer type, values applied to every layer of that type that does not set its own.
    # Merged into the layers when the config is loaded (see convtrain.config.load).
    defaults: dict[str, dict] = {}
    layers: Annotated[list[LayerSpec], Field(min_length=1)]


# --- train ----------------------------------------------------------------------------------


class OptimizerBase(Section):
    learning_rate: PositiveFloat = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0)] | None = None
    clipnorm: PositiveFloat | None = None


class AdamConfig(OptimizerBase):
    type: Literal["adam"]
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-7


class AdamWConfig(AdamConfig):
    type: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: Annotated[float, Field(ge=0.0)] | None = 0.004


class SGDConfig(OptimizerBase):
    type: Literal["sgd"]
    momentum: Fraction = 0.9
    nesterov: bool = False


class RMSpropConfig(OptimizerBase):
    type: Literal["rmsprop"]
    rho: Fraction = 0.9
    momentum: Fraction = 0.0
    epsilon: PositiveFloat = 1e-7


OptimizerConfig = Annotated[
    AdamConfig | AdamWConfig | SGDConfig | RMSpropConfig, Field(discriminator="type")
]


class ConstantSchedule(Section):
    type: Literal["constant"]


class StepSchedule(Section):
    type: Literal["step"]
    step_epochs: PositiveInt = 10  # multiply the rate by `gamma` every `step_epochs` epochs
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1


class ExponentialSchedule(Section):
    type: Literal["exponential"]
    decay_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.96  # per epoch


class CosineSchedule(Section):
    type: Literal["cosine"]
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    min_lr: Annotated[float, Field(ge=0.0)] = 0.0


class PlateauSchedule(Section):
    type: Literal["plateau"]
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    patience: PositiveInt = 5
    min_lr: Annotated[float, Field(ge=0.0)] = 0.0


ScheduleConfig = Annotated[
    ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule | PlateauSchedule,
    Field(discriminator="type"),
]


class EarlyStopping(Section):
    patience: PositiveInt = 10
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0


class TrainConfig(Section):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    optimizer: OptimizerConfig = AdamConfig(type="adam")
    schedule: ScheduleConfig = ConstantSchedule(type="constant")
    label_smoothing: Fraction = 0.0
    class_weight: Literal["balanced"] | None = None
    early_stopping: EarlyStopping | None = None
    # Chooses the best checkpoint; falls back to the training metric when there is no val split.
    monitor: Literal["val_accuracy", "val_loss", "accuracy", "loss"] = "val_accuracy"
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism: slower, repeatable
    # Performance options; each default is the measured winner on CPU (docs/performance.md).
    mixed_precision: Literal["float32", "bfloat16", "float16"] = "float32"
    jit_compile: bool = False  # XLA: measured slower for convolutions on CPU
    steps_per_execution: PositiveInt = 1  # training steps per call of the compiled function
    # Batch norm's training step on TensorFlow's fused kernel: the same result as Keras's
    # (up to float rounding), measured faster; false gives Keras's own ops.
    fused_batch_norm: bool = True
    threads: PositiveInt | None = None  # TensorFlow intra-op threads; None: one per core
    # Threads preparing training batches (loading, augmenting). None: 1 when the CPU also trains
    # (more would take cores from the training step: measured slower), tf.data's own choice on GPU.
    data_threads: PositiveInt | None = None
    # Multiply optimizer.learning_rate by the number of replicas (the linear scaling rule).
    scale_lr_with_replicas: bool = False


class EvalConfig(Section):
    top_k: PositiveInt = 5
    checkpoint: Literal["best", "last"] = "best"
    split: Literal["test", "val"] = "test"


class DistributeConfig(Section):
    """tf.distribute: see docs/distribute.md."""

    strategy: Literal["auto", "one_device", "mirrored", "multi_worker"] = "auto"
    # Split the CPU into this many logical devices (for `mirrored` without GPUs, and tests).
    cpu_devices: Annotated[int, Field(ge=1, le=64)] = 1
    # Seconds a multi-worker run waits for the other workers (start-up, each step) before failing.
    timeout: Annotated[float, Field(gt=0.0)] = 300.0


# --- experiment -----------------------------------------------------------------------------


class Experiment(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)] = (
        "experiment"
    )
    seed: int = 42
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    distribute: DistributeConfig = DistributeConfig()
    sweep: SweepConfig | None = None

    @model_validator(mode="after")
    def _input_from_data(self) -> Experiment:
        if self.model.input is None:
            self.model.input = InputSpec(
                image_size=self.data.image_size, channels=self.data.channels
            )
        elif (self.model.input.image_size, self.model.input.channels) != (
            self.data.image_size,
            self.data.channels,
        ):
            # The model is fed the data as decoded: a mismatch would fail at the first batch.
            raise ValueError(
                f"model.input must match the data: expected image_size "
                f"{list(self.data.image_size)} and channels {self.data.channels} "
                f"(from data.image_size and data.color_mode), received image_size "
                f"{list(self.model.input.image_size)} and channels {self.model.input.channels}"
            )
        return self

    @property
    def split_seed(self) -> int:
        seed = getattr(self.data.split, "seed", None)
        return self.seed if seed is None else seed
