"""Train / validation / test splits: made per class, deterministic for a seed and a file set.

Each class is shuffled with its own generator, seeded by (split seed, class name), so adding
or removing a class leaves the other classes' splits unchanged.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, model_validator

from convtrain.config.schema import Experiment, FileSplit, PerClassSplit, StratifiedSplit
from convtrain.data.cache import open_cache
from convtrain.data.index import ROOT_ENV, index_dataset, list_classes, resolve_root
from convtrain.errors import ConvtrainError
from convtrain.progress import QUIET, Reporter
from convtrain.records import Record

PARTS = ("train", "val", "test")

Items = tuple[tuple[str, int], ...]


class Split(Record):
    """split.json: the classes and the (path, label) lists a run trains, validates and tests on."""

    model_config = ConfigDict(frozen=True)
    FILE = "split.json"
    MISSING = (
        "no such split file; expected the split.json written by an earlier run "
        "(runs/<name>-<timestamp>/split.json)"
    )

    format: Literal[1] = 1
    protocol: dict[str, Any] = {}  # how it was made, for readers
    classes: tuple[str, ...]
    train: Items
    val: Items
    test: Items

    @model_validator(mode="after")
    def _consistent(self) -> Split:
        classes = self.classes
        if len(classes) < 2 or not all(c and "/" not in c for c in classes):
            raise ValueError(
                f"classes: expected a list of at least 2 folder names, received {list(classes)!r}"
            )
        if len(set(classes)) != len(classes):
            raise ValueError(
                f"classes: expected distinct names, received duplicates in {list(classes)!r}"
            )
        seen: dict[str, str] = {}
        for part in PARTS:
            for i, (path, label) in enumerate(getattr(self, part)):
                where = f"{part}[{i}]"
                if not 0 <= label < len(classes):
                    raise ValueError(
                        f"{where}: expected a label in 0..{len(classes) - 1}, received {label}"
                    )
                parts_of = PurePosixPath(path).parts
                if path.startswith("/") or ".." in parts_of or len(parts_of) != 2:
                    raise ValueError(
                        f"{where}: expected a path 'class/file' inside the dataset root, "
                        f"received {path!r}"
                    )
                if parts_of[0] != classes[label]:
                    raise ValueError(
                        f"{where}: label {label} is class {classes[label]!r} but the file is in "
                        f"folder {parts_of[0]!r}"
                    )
                if path in seen:
                    raise ValueError(f"{where}: {path!r} is listed twice (also in {seen[path]})")
                seen[path] = where
        for part in ("train", "test"):
            if not getattr(self, part):
                raise ValueError(f"{part}: expected at least one image, received an empty list")
        return self

    def dumps(self) -> str:
        """One [path, label] per line, so that the file reads (and diffs) well."""
        head = {
            "format": self.format,
            "protocol": self.protocol,
            "counts": {part: len(getattr(self, part)) for part in PARTS},
            "classes": list(self.classes),
        }
        parts = []
        for part in PARTS:
            rows = ",\n    ".join(json.dumps([path, label]) for path, label in getattr(self, part))
            parts.append(f'  "{part}": [\n    {rows}\n  ]' if rows else f'  "{part}": []')
        text = json.dumps(head, indent=2)
        return text[: -len("\n}")] + ",\n" + ",\n".join(parts) + "\n}\n"


# --- protocols ------------------------------------------------------------------------------

PerClass = list[list[str]]  # per class label: its usable relative paths, sorted
Parts = tuple[PerClass, PerClass, PerClass]


def _shuffled(paths: list[str], seed: int, name: str) -> list[str]:
    rng = np.random.default_rng([seed % 2**63, zlib.crc32(name.encode())])
    return [paths[i] for i in rng.permutation(len(paths))]


def _stratified(
    per_class: PerClass, classes: tuple[str, ...], cfg: StratifiedSplit, seed: int
) -> Parts:
    train, val, test = [], [], []
    for name, paths in zip(classes, per_class, strict=True):
        n = len(paths)
        # Every class appears in every split when it has enough images (>= 3 with val, else 2).
        n_test = max(1, round(n * cfg.test)) if n >= 2 else 0
        n_val = max(1, round(n * cfg.val)) if cfg.val > 0 and n >= 3 else 0
        while n - n_test - n_val < 1 and n_val + n_test:
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
        order = _shuffled(paths, seed, name)
        test.append(order[:n_test])
        val.append(order[n_test : n_test + n_val])
        train.append(order[n_test + n_val :])
    return train, val, test


def _per_class(
    per_class: PerClass, classes: tuple[str, ...], cfg: PerClassSplit, seed: int
) -> Parts:
    need = cfg.train_per_class + cfg.val_per_class + 1
    short = [(name, len(p)) for name, p in zip(classes, per_class, strict=True) if len(p) < need]
    if short:
        listed = ", ".join(f"{name} ({n})" for name, n in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise ConvtrainError(
            f"data.split: per_class needs at least {need} images in every class (train_per_class "
            f"{cfg.train_per_class} + val_per_class {cfg.val_per_class} + 1 test image), received "
            f"fewer in {listed}{more}; lower train_per_class or use method: stratified"
        )
    train, val, test = [], [], []
    for name, paths in zip(classes, per_class, strict=True):
        order = _shuffled(paths, seed, name)
        a, b = cfg.train_per_class, cfg.train_per_class + cfg.val_per_class
        train.append(order[:a])
        val.append(order[a:b])
        test.append(order[b : b + cfg.test_per_class])
    return train, val, test


PROTOCOLS: dict[str, Callable[[PerClass, tuple[str, ...], Any, int], Parts]] = {
    "stratified": _stratified,
    "per_class": _per_class,
}


def _items(parts: PerClass) -> Items:
    return tuple(sorted((p, label) for label, paths in enumerate(parts) for p in paths))


def split_classes(experiment: Experiment) -> tuple[str, ...]:
    """The classes `make_split` will give, from a folder listing or the split file (no decoding)."""
    data = experiment.data
    if isinstance(data.split, FileSplit):
        return Split.read(data.split.file).classes
    return list_classes(data)


def make_split(experiment: Experiment, reporter: Reporter = QUIET) -> Split:
    """Index the data, drop files that do not decode, apply data.split (or load its file)."""
    data = experiment.data
    if isinstance(data.split, FileSplit):
        split = Split.read(data.split.file)
        root = resolve_root(data)
        missing = [p for part in PARTS for p, _ in getattr(split, part) if not (root / p).is_file()]
        if missing:
            raise ConvtrainError(
                f"{data.split.file}: expected every listed image under {root}, received "
                f"{len(missing)} missing (first: {missing[0]}); is data.root the dataset the "
                f"split was made from?"
            )
        return split
    index = index_dataset(data)
    cache = open_cache(
        index, data, reporter
    )  # decoding finds the truncated files the index cannot see
    dropped = dict(cache.failed)
    per_class: PerClass = [[] for _ in index.classes]
    for path, label in index.items:
        if path not in dropped:
            per_class[label].append(path)
    seed = experiment.split_seed
    train, val, test = PROTOCOLS[data.split.method](per_class, index.classes, data.split, seed)
    protocol = {
        **data.split.model_dump(mode="json"),
        "seed": seed,
        "root": str(Path(index.root).resolve()),  # absolute: a run read from elsewhere finds it
        "skipped": [list(s) for s in (*index.skipped, *cache.failed)],
    }
    return Split(
        classes=index.classes,
        train=_items(train),
        val=_items(val),
        test=_items(test),
        protocol=protocol,
    )


def with_run_root(experiment: Experiment, split: Split) -> Experiment:
    """The experiment reading its images from the folder its run's split was made from, when
    data.root (relative, read from another working directory) is not there and
    CONVTRAIN_DATA_ROOT is unset; else as it is (a missing folder is then one line when read)."""
    data = experiment.data
    if os.environ.get(ROOT_ENV) or Path(data.root).expanduser().exists():
        return experiment
    made_from = split.protocol.get("root")
    if not (isinstance(made_from, str) and Path(made_from).is_dir()):
        return experiment
    return experiment.model_copy(update={"data": data.model_copy(update={"root": made_from})})
