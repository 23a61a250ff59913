"""Which images to explain, and each one as the model sees it.

Images are files named on the command line or taken from the run's own split (`--split test
--per-class N`: the first N of each class, in split.json's order, so the same command explains
the same images). A named file that belongs to the split keeps its true class. Every image is
decoded by the run's own preprocessing (`decode_image`, then /255 as the input pipeline); a file
that cannot be read becomes one line and the others still go through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtrain.config.schema import DataConfig
from convtrain.data.decode import decode_image
from convtrain.data.split import PARTS, Split
from convtrain.errors import ConvtrainError
from convtrain.explain.records import Failure


@dataclass(frozen=True)
class Source:
    path: Path
    shown: str  # as the user named it (or the split's path under the data root)
    label: int | None = None  # the true class, when the file is in the run's split
    part: str | None = None  # which part of the split it is in


@dataclass(frozen=True)
class Decoded:
    source: Source
    pixels: np.ndarray  # uint8 [H, W, C], as decode_image returns

    @property
    def inputs(self) -> np.ndarray:
        return self.pixels.astype(np.float32) / 255.0  # as convtrain.data.pipeline feeds the model


def _lookup(split: Split) -> dict[str, tuple[int, str]]:
    return {path: (label, part) for part in PARTS for path, label in getattr(split, part)}


def _relative(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return None


def from_paths(paths: list[str], split: Split, root: Path) -> list[Source]:
    known = _lookup(split)
    out = []
    for p in paths:
        rel = _relative(Path(p), root)
        label, part = known.get(rel, (None, None)) if rel is not None else (None, None)
        out.append(Source(Path(p), p, label, part))
    return out


def from_split(split: Split, part: str, per_class: int, root: Path) -> list[Source]:
    items = getattr(split, part)
    if not items:
        raise ConvtrainError(f"--split {part}: the run's split.json has no {part} images")
    taken: dict[int, int] = {}
    out = []
    for path, label in items:
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            out.append(Source(root / path, path, label, part))
    return sorted(out, key=lambda s: (s.label, s.shown))


def decode(sources: list[Source], data: DataConfig) -> tuple[list[Decoded], list[Failure]]:
    done, failed = [], []
    for source in sources:
        try:
            pixels = decode_image(source.path, data.image_size, data.resize, data.color_mode)
        except ConvtrainError as exc:
            failed.append(Failure(image=source.shown, error=str(exc)))
            continue
        done.append(Decoded(source, pixels))
    return done, failed
