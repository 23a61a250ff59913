"""Find the images of a CALTECH-101-shaped folder: one sub-folder per class.

A file is an image when Pillow identifies it from its header, whatever its name (CALTECH-101's
`BACKGROUND_Google/tmp` is a JPEG without extension). Only headers are read here, so indexing
9,144 files takes about a second; truncated files are caught later, when they are decoded.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from convtrain.config.schema import DataConfig, Experiment
from convtrain.errors import ConvtrainError

ROOT_ENV = "CONVTRAIN_DATA_ROOT"


@dataclass(frozen=True)
class ImageMeta:
    """What the header and the file system say about one image (no pixel is decoded)."""

    width: int
    height: int
    mode: str  # Pillow mode before conversion: "RGB", "L", "CMYK", "P", ...
    nbytes: int
    mtime_ns: int

    @property
    def grayscale(self) -> bool:
        return self.mode in ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class ImageIndex:
    root: Path
    classes: tuple[str, ...]  # sorted folder names after data.classes / data.exclude
    items: tuple[tuple[str, int], ...]  # ("Faces/image_0001.jpg", label index)
    skipped: tuple[tuple[str, str], ...]  # (relative path, reason)
    meta: tuple[ImageMeta, ...] = ()  # parallel to `items`

    def label_counts(self) -> list[int]:
        counts = [0] * len(self.classes)
        for _, label in self.items:
            counts[label] += 1
        return counts


def resolve_root(data: DataConfig) -> Path:
    """The dataset folder: $CONVTRAIN_DATA_ROOT when set, else data.root."""
    env = os.environ.get(ROOT_ENV)
    root = Path(env) if env else Path(data.root)
    origin = f"{ROOT_ENV}={env}" if env else f"data.root={data.root}"
    return check_root(root, origin)


def with_data_root(experiment: Experiment) -> Experiment:
    """The experiment with data.root the folder actually read (CONVTRAIN_DATA_ROOT applied)."""
    data = experiment.data.model_copy(update={"root": str(resolve_root(experiment.data))})
    return experiment.model_copy(update={"data": data})


def check_root(root: Path, origin: str) -> Path:
    root = root.expanduser()
    if not root.exists():
        raise ConvtrainError(
            f"{root}: dataset folder not found (from {origin}); run `convtrain data fetch` "
            f"(or `make data`) to download and extract CALTECH-101, or point {ROOT_ENV} at a "
            f"folder with one sub-folder per class"
        )
    if not root.is_dir():
        raise ConvtrainError(
            f"{root}: expected a dataset folder with one sub-folder per class (from {origin}), "
            f"received a file; run `convtrain data fetch` (or `make data`) to extract it"
        )
    # A common slip: pointing at the folder that only contains 101_ObjectCategories/.
    subfolders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if [p.name for p in subfolders] == ["101_ObjectCategories"]:
        return subfolders[0]
    return root


def _class_folders(root: Path) -> list[str]:
    try:
        names = [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    except OSError as exc:
        raise ConvtrainError(f"{root}: cannot list the dataset folder ({exc.strerror})") from None
    if not names:
        raise ConvtrainError(
            f"{root}: expected one sub-folder per class, received no sub-folders; run "
            f"`convtrain data fetch` (or `make data`) to extract CALTECH-101 there"
        )
    return sorted(names)


def select_classes(available: list[str], data: DataConfig, root: Path) -> tuple[str, ...]:
    """Apply data.classes and data.exclude; unknown names are an error with close matches."""
    if data.classes == "all":
        excluded = set(data.exclude)
        chosen = [c for c in available if c not in excluded]
    else:
        unknown = [c for c in data.classes if c not in available]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
                hints.append(
                    f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                )
            raise ConvtrainError(
                f"data.classes: expected class folders of {root}, received unknown "
                f"{'class' if len(unknown) == 1 else 'classes'} {'; '.join(hints)}"
            )
        chosen = sorted(data.classes)
    if len(chosen) < 2:
        raise ConvtrainError(
            f"data.classes: expected at least 2 classes in {root}, received {len(chosen)} "
            f"after data.exclude={data.exclude}"
        )
    return tuple(chosen)


def _inspect_file(path: Path, nbytes: int) -> tuple[int, int, str] | str:
    """(width, height, mode) from the header, or the reason the file is not usable."""
    if nbytes == 0:
        return "empty file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning etc.: not our business here
            with Image.open(path) as img:
                return img.size[0], img.size[1], img.mode
    except UnidentifiedImageError:
        return "not an image"
    except OSError as exc:
        if exc.errno is not None:  # the file system's refusal, e.g. permission denied
            return f"unreadable ({exc.strerror})"
        return f"truncated or corrupt ({exc})"
    except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"truncated or corrupt ({exc})"


def list_classes(data: DataConfig) -> tuple[str, ...]:
    """The classes `index_dataset` gives, from the folder names alone (nothing is opened)."""
    root = resolve_root(data)
    return select_classes(_class_folders(root), data, root)


def index_dataset(data: DataConfig, *, root: Path | None = None) -> ImageIndex:
    """Index the class folders of data.root (or `root`, e.g. from `data info --root`)."""
    root = resolve_root(data) if root is None else check_root(Path(root), "--root")
    classes = select_classes(_class_folders(root), data, root)
    items: list[tuple[str, int]] = []
    meta: list[ImageMeta] = []
    skipped: list[tuple[str, str]] = []
    for label, name in enumerate(classes):
        try:
            with os.scandir(root / name) as entries:
                found = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            raise ConvtrainError(
                f"{root / name}: cannot list the class folder ({exc.strerror})"
            ) from None
        for entry in found:
            rel = f"{name}/{entry.name}"
            if entry.is_dir():
                skipped.append((rel + "/", "a folder inside a class folder"))
                continue
            try:
                st = entry.stat()
            except OSError as exc:  # e.g. a dangling symbolic link
                skipped.append((rel, f"unreadable ({exc.strerror})"))
                continue
            header = _inspect_file(Path(entry.path), st.st_size)
            if isinstance(header, str):
                skipped.append((rel, header))
                continue
            items.append((rel, label))
            meta.append(ImageMeta(header[0], header[1], header[2], st.st_size, st.st_mtime_ns))
    return ImageIndex(root, classes, tuple(items), tuple(skipped), tuple(meta))
