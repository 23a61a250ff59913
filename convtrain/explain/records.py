"""What `convtrain explain` reports, as pydantic models: printed by `--format json` and written
to `explain.json` beside the pictures (and read back by the same models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Pair = tuple[int, int]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ClassScore(Record):
    class_name: str = Field(alias="class")  # "class", as `convtrain predict --format json`
    probability: float


class GradCam(Record):
    """A Grad-CAM map for one class: where the evidence for that class lies."""

    role: Literal["predicted", "true", "requested"]  # requested: `--class`
    class_name: str = Field(alias="class")
    # The centre of the receptive field of the map's strongest unit, in input pixels
    # (row, column of the image as the model sees it); None when no unit has positive weight.
    peak: Pair | None
    # max of the map before it is scaled to [0, 1] (0: the class has no positive evidence)
    strength: float


class Theoretical(Record):
    size: Pair  # receptive field in input pixels (rows, columns), as `convtrain inspect`
    box: tuple[int, int, int, int]  # top, left, bottom, right (inclusive), clipped to the image


class Effective(Record):
    """|d unit / d input| summed over the input channels (Luo et al. 2016)."""

    support: Pair | None  # rows, columns of the bounding box of the pixels with any gradient
    size_90: Pair | None  # per axis, the smallest interval around the unit holding 90% of it
    inside_share: float | None  # share of the gradient mass inside the theoretical box
    note: str | None = None  # why there is nothing to measure (every path inactive)


class ReceptiveField(Record):
    layer: str
    unit: Pair  # row, column of the unit in the layer's output map (the one nearest the centre)
    theoretical: Theoretical
    effective: Effective


class ImageExplanation(Record):
    image: str
    true_class: str | None  # known when the image is a file of the run's split
    split: Literal["train", "val", "test"] | None
    predictions: list[ClassScore]  # top-k, most probable first
    gradcam_layer: str
    gradcam: list[GradCam]
    receptive_field: ReceptiveField
    png: str | None  # None: numbers only (the library's pictures=False)


class Failure(Record):
    image: str
    error: str  # one line, naming the file


class Explanation(Record):
    run: str
    checkpoint: str
    out_dir: str
    html: str | None
    filters_png: str | None
    images: list[ImageExplanation]
    failed: list[Failure]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)
