"""Train / validation / test splits: made per class, deterministic for a seed and a file set.

Each class is shuffled with its own generator, seeded by (split seed, class name), so adding
or removing a class leaves the other classes' splits unchanged.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from convtrain.config.schema import Experiment, FileSplit, PerClassSplit, StratifiedSplit
from convtrain.data.cache import open_cache
from convtrain.data.index import index_dataset, resolve_root
from convtrain.errors import ConvtrainError
from convtrain.io import atomic_write_text
from convtrain.safeload import MAX_JSON_BYTES, loads_json, read_bounded

SPLIT_FORMAT = 1
PARTS = ("train", "val", "test")

Items = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Split:
    classes: tuple[str, ...]
    train: Items
    val: Items
    test: Items
    protocol: Mapping[str, Any] = field(default_factory=dict)  # how it was made, for readers

    def to_json(self) -> dict:
        return {
            "format": SPLIT_FORMAT,
            "protocol": dict(self.protocol),
            "counts": {part: len(getattr(self, part)) for part in PARTS},
            "classes": list(self.classes),
            **{part: [[path, label] for path, label in getattr(self, part)] for part in PARTS},
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> Split:
        def fail(what: str) -> ConvtrainError:
            return ConvtrainError(f"{source}: {what}")

        if not isinstance(data, dict):
            raise fail(
                f"expected a JSON object with classes, train, val and test, received "
                f"{type(data).__name__}"
            )
        missing = [k for k in ("classes", *PARTS) if k not in data]
        if missing:
            raise fail(f"expected keys classes, train, val and test, missing {', '.join(missing)}")
        classes = data["classes"]
        if (
            not isinstance(classes, list)
            or len(classes) < 2
            or not all(isinstance(c, str) and c and "/" not in c for c in classes)
        ):
            raise fail(f"classes: expected a list of at least 2 folder names, received {classes!r}")
        if len(set(classes)) != len(classes):
            raise fail(f"classes: expected distinct names, received duplicates in {classes!r}")
        parts: dict[str, Items] = {}
        seen: dict[str, str] = {}
        for part in PARTS:
            entries = data[part]
            if not isinstance(entries, list):
                raise fail(f"{part}: expected a list of [path, label], received {entries!r}")
            out = []
            for i, entry in enumerate(entries):
                where = f"{part}[{i}]"
                if (
                    not isinstance(entry, list)
                    or len(entry) != 2
                    or not isinstance(entry[0], str)
                    or not isinstance(entry[1], int)
                    or isinstance(entry[1], bool)
                    or not 0 <= entry[1] < len(classes)
                ):
                    raise fail(
                        f"{where}: expected [path, label] with label in 0..{len(classes) - 1}, "
                        f"received {entry!r}"
                    )
                path, label = entry
                parts_of = PurePosixPath(path).parts
                if path.startswith("/") or ".." in parts_of or len(parts_of) != 2:
                    raise fail(
                        f"{where}: expected a path 'class/file' inside the dataset root, received {path!r}"
                    )
                if parts_of[0] != classes[label]:
                    raise fail(
                        f"{where}: label {label} is class {classes[label]!r} but the file is in "
                        f"folder {parts_of[0]!r}"
                    )
                if path in seen:
                    raise fail(f"{where}: {path!r} is listed twice (also in {seen[path]})")
                seen[path] = where
                out.append((path, label))
            parts[part] = tuple(out)
        for part in ("train", "test"):
            if not parts[part]:
                raise fail(f"{part}: expected at least one image, received an empty list")
        protocol = data.get("protocol", {})
        return cls(
            tuple(classes),
            parts["train"],
            parts["val"],
            parts["test"],
            dict(protocol) if isinstance(protocol, dict) else {},
        )


def save_split(split: Split, path: Path) -> None:
    """Write split.json atomically, one [path, label] per line so that it reads (and diffs) well."""
    payload = split.to_json()
    head = json.dumps({k: v for k, v in payload.items() if k not in PARTS}, indent=2)
    parts = []
    for part in PARTS:
        rows = ",\n    ".join(json.dumps(entry) for entry in payload[part])
        parts.append(f'  "{part}": [\n    {rows}\n  ]' if rows else f'  "{part}": []')
    atomic_write_text(path, head[: -len("\n}")] + ",\n" + ",\n".join(parts) + "\n}\n")


def load_split(path: Path) -> Split:
    path = Path(path)
    try:
        text = read_bounded(path, MAX_JSON_BYTES, "a split file").decode("utf-8")
    except FileNotFoundError:
        raise ConvtrainError(
            f"{path}: no such split file; expected the split.json written by an earlier run "
            f"(runs/<name>-<timestamp>/split.json)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvtrainError(f"{path}: cannot read the split file ({exc})") from None
    try:
        data = loads_json(text, str(path))
    except json.JSONDecodeError as exc:
        raise ConvtrainError(
            f"{path}: expected JSON, received invalid text at line {exc.lineno} column {exc.colno} ({exc.msg})"
        ) from None
    return Split.from_json(data, str(path))


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


def make_split(experiment: Experiment) -> Split:
    """Index the data, drop files that do not decode, apply data.split (or load its file)."""
    data = experiment.data
    if isinstance(data.split, FileSplit):
        split = load_split(Path(data.split.file))
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
    cache = open_cache(index, data)  # decoding finds the truncated files the index cannot see
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
        "root": str(index.root),
        "skipped": [list(s) for s in (*index.skipped, *cache.failed)],
    }
    return Split(index.classes, _items(train), _items(val), _items(test), protocol)
