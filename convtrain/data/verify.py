"""What a correct CALTECH-101 looks like: checksums, per-class file counts, the dataset marker.

The counts table was derived once from the real `101_ObjectCategories.tar.gz`; structure
verification compares a folder against it and names every missing or short class folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from convtrain.errors import ConvtrainError
from convtrain.io import atomic_write_json
from convtrain.safeload import read_json

DATASET_FOLDER = "101_ObjectCategories"
MARKER_NAME = ".convtrain-dataset.json"

# Files per folder in the official archive (9,145 in 102 folders). BACKGROUND_Google's 468
# include `tmp`, a JPEG without extension shipped with the dataset.
OFFICIAL_COUNTS: dict[str, int] = {
    "BACKGROUND_Google": 468, "Faces": 435, "Faces_easy": 435, "Leopards": 200,
    "Motorbikes": 798, "accordion": 55, "airplanes": 800, "anchor": 42, "ant": 42,
    "barrel": 47, "bass": 54, "beaver": 46, "binocular": 33, "bonsai": 128, "brain": 98,
    "brontosaurus": 43, "buddha": 85, "butterfly": 91, "camera": 50, "cannon": 43,
    "car_side": 123, "ceiling_fan": 47, "cellphone": 59, "chair": 62, "chandelier": 107,
    "cougar_body": 47, "cougar_face": 69, "crab": 73, "crayfish": 70, "crocodile": 50,
    "crocodile_head": 51, "cup": 57, "dalmatian": 67, "dollar_bill": 52, "dolphin": 65,
    "dragonfly": 68, "electric_guitar": 75, "elephant": 64, "emu": 53, "euphonium": 64,
    "ewer": 85, "ferry": 67, "flamingo": 67, "flamingo_head": 45, "garfield": 34,
    "gerenuk": 34, "gramophone": 51, "grand_piano": 99, "hawksbill": 100, "headphone": 42,
    "hedgehog": 54, "helicopter": 88, "ibis": 80, "inline_skate": 31, "joshua_tree": 64,
    "kangaroo": 86, "ketch": 114, "lamp": 61, "laptop": 81, "llama": 78, "lobster": 41,
    "lotus": 66, "mandolin": 43, "mayfly": 40, "menorah": 87, "metronome": 32, "minaret": 76,
    "nautilus": 55, "octopus": 35, "okapi": 39, "pagoda": 47, "panda": 38, "pigeon": 45,
    "pizza": 53, "platypus": 34, "pyramid": 57, "revolver": 82, "rhino": 59, "rooster": 49,
    "saxophone": 40, "schooner": 63, "scissors": 39, "scorpion": 84, "sea_horse": 57,
    "snoopy": 35, "soccer_ball": 64, "stapler": 45, "starfish": 86, "stegosaurus": 59,
    "stop_sign": 64, "strawberry": 35, "sunflower": 85, "tick": 49, "trilobite": 86,
    "umbrella": 75, "watch": 239, "water_lilly": 37, "wheelchair": 59, "wild_cat": 34,
    "windsor_chair": 56, "wrench": 39, "yin_yang": 60,
}  # fmt: skip


@dataclass(frozen=True)
class Checksum:
    size: int
    sha256: str

    def describe(self) -> str:
        return f"{self.size:,} bytes, sha256 {self.sha256}"


def sha256_file(path: Path) -> Checksum:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return Checksum(size, digest.hexdigest())


def scan_counts(root: Path) -> dict[str, int]:
    """Regular, non-hidden files in each immediate sub-folder of `root` (the marker is hidden)."""
    counts: dict[str, int] = {}
    with os.scandir(root) as folders:
        for folder in folders:
            if folder.is_dir() and not folder.name.startswith("."):
                with os.scandir(folder.path) as files:
                    counts[folder.name] = sum(
                        1 for f in files if f.is_file() and not f.name.startswith(".")
                    )
    return dict(sorted(counts.items()))


def check_counts(found: Mapping[str, int], expected: Mapping[str, int], place: str) -> list[str]:
    """Raise if a folder is missing or short; return warnings about extra folders or files."""
    missing = [name for name in expected if name not in found]
    short = [f"{n} ({found[n]} of {expected[n]})" for n in found if found[n] < expected.get(n, 0)]
    if missing or short:
        problems = []
        if missing:
            problems.append(f"missing folders: {', '.join(missing)}")
        if short:
            problems.append(f"folders with too few files: {', '.join(short)}")
        raise ConvtrainError(
            f"{place}: expected CALTECH-101's {describe_counts(expected)}, received "
            f"{describe_counts(found)}; {'; '.join(problems)}"
        )
    warnings = []
    extra = [name for name in found if name not in expected]
    if extra:
        warnings.append(f"{place}: folders that are not in CALTECH-101: {', '.join(extra)}")
    more = [f"{n} ({found[n]} of {expected[n]})" for n in expected if found[n] > expected[n]]
    if more:
        warnings.append(f"{place}: folders with more files than CALTECH-101: {', '.join(more)}")
    return warnings


def describe_counts(counts: Mapping[str, int]) -> str:
    return f"{len(counts)} folders with {sum(counts.values()):,} files"


@dataclass(frozen=True)
class Marker:
    """Written into the dataset folder once it has been verified, before it is moved into place."""

    source: str
    sha256: str | None
    official: bool
    counts: dict[str, int]
    verified_at: str

    @classmethod
    def create(
        cls, source: str, sha256: str | None, official: bool, counts: Mapping[str, int]
    ) -> Marker:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(source, sha256, official, dict(counts), stamp)

    def write(self, root: Path) -> None:
        atomic_write_json(root / MARKER_NAME, asdict(self))


def read_marker(root: Path) -> Marker | None:
    """The marker of a verified dataset, or None when absent or unreadable (then re-verify)."""
    try:
        raw = read_json(root / MARKER_NAME)
        return Marker(
            source=str(raw["source"]),
            sha256=raw["sha256"],
            official=bool(raw["official"]),
            counts={str(k): int(v) for k, v in raw["counts"].items()},
            verified_at=str(raw["verified_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConvtrainError):
        return None


def verified_marker(root: Path, expected: Mapping[str, int]) -> Marker | None:
    """The marker when `root` still holds exactly what was verified; a quick listing, no hashing."""
    marker = read_marker(root)
    if marker is None or scan_counts(root) != marker.counts:
        return None
    try:
        check_counts(marker.counts, expected, str(root))
    except ConvtrainError:
        return None
    return marker
