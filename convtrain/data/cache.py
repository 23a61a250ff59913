"""The decoded-image cache: every image of an index, decoded and resized once, on disk.

One directory per (dataset root, image_size, resize, color_mode) holds `images-<id>.npy`, a
uint8 array [rows, H, W, C] read through a memory map (the dataset need not fit in RAM), and
`manifest.json`, which names that array and fingerprints the files it was decoded from (path,
size, mtime) with the decoder version. The manifest is written last, atomically: it is the
commit point, so a crash mid-build leaves the previous cache intact. A stale cache (files
changed) is rebuilt, reusing rows of unchanged files; a corrupt one is rebuilt from scratch.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtrain.config.schema import DataConfig
from convtrain.data.decode import DECODER_VERSION, decode_image
from convtrain.data.index import ImageIndex
from convtrain.errors import ConvtrainError, WriteFailed, human_size
from convtrain.io import atomic_save, atomic_write_json, write_failure
from convtrain.progress import Progress
from convtrain.safeload import read_json

CACHE_ENV = "CONVTRAIN_CACHE_DIR"
MANIFEST_FORMAT = 1
_CHUNK = 64  # images per task: large enough to amortise scheduling, small for smooth progress


@dataclass(frozen=True)
class ImageCache:
    directory: Path
    images: np.ndarray  # uint8 [rows, H, W, C], read-only memory map
    rows: Mapping[str, int]  # relative path -> row of `images` (decodable images only)
    failed: tuple[tuple[str, str], ...]  # (relative path, reason) for files that did not decode
    decoded: int  # images decoded by this call; 0 when everything came from disk


def resolve_cache_dir(data: DataConfig) -> Path:
    """$CONVTRAIN_CACHE_DIR when set, else data.cache_dir."""
    return Path(os.environ.get(CACHE_ENV) or data.cache_dir).expanduser()


def cache_directory(root: Path, data: DataConfig) -> Path:
    height, width = data.image_size
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.resolve().name) or "root"
    return (
        resolve_cache_dir(data)
        / f"{name}-{height}x{width}-{data.resize}-{data.color_mode}-{digest}"
    )


def _params(root: Path, data: DataConfig) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "decoder_version": DECODER_VERSION,
        "root": str(root.resolve()),
        "image_size": list(data.image_size),
        "resize": data.resize,
        "color_mode": data.color_mode,
    }


@dataclass(frozen=True)
class _Stored:
    """A cache as found on disk, before checking it against the current files."""

    images: np.ndarray
    files: dict[str, tuple[int, int, int]]  # path -> (nbytes, mtime_ns, row); row -1: failed
    failed: dict[str, str]


def _read_stored(directory: Path, root: Path, data: DataConfig) -> _Stored | None:
    """The stored cache when it is complete and made with these parameters, else None."""
    try:
        manifest = read_json(directory / "manifest.json")
        if {k: manifest.get(k) for k in _params(root, data)} != _params(root, data):
            return None
        images = np.load(directory / manifest["images"], mmap_mode="r", allow_pickle=False)
        height, width = data.image_size
        expected = (len(manifest["files"]), height, width, data.channels)
        if images.dtype != np.uint8 or images.shape != expected:
            return None
        files = {f[0]: (int(f[1]), int(f[2]), row) for row, f in enumerate(manifest["files"])}
        failed = {str(k): str(v) for k, v in manifest["failed"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, ConvtrainError):
        return None  # missing, truncated, malformed or over budget: rebuilt by the caller
    for path in failed:
        if path in files:
            files[path] = (*files[path][:2], -1)
    return _Stored(images, files, failed)


def _fingerprint(index: ImageIndex) -> list[tuple[str, int, int]]:
    if len(index.meta) != len(index.items):
        raise ValueError("the index carries no file metadata; build it with index_dataset()")
    return [
        (path, m.nbytes, m.mtime_ns) for (path, _), m in zip(index.items, index.meta, strict=True)
    ]


def _as_cache(directory: Path, stored: _Stored, decoded: int) -> ImageCache:
    rows = {path: row for path, (_, _, row) in stored.files.items() if row >= 0}
    return ImageCache(directory, stored.images, rows, tuple(sorted(stored.failed.items())), decoded)


def open_cache(index: ImageIndex, data: DataConfig, *, progress: bool = True) -> ImageCache:
    """The cache of every image in `index`, built (or brought up to date) when needed."""
    directory = cache_directory(index.root, data)
    stored = _read_stored(directory, index.root, data)
    wanted = _fingerprint(index)
    if (
        stored is not None
        and len(stored.files) == len(wanted)
        and all(stored.files.get(p, (None, None))[:2] == (n, m) for p, n, m in wanted)
    ):
        return _as_cache(directory, stored, decoded=0)
    elsewhere = (
        f"or point data.cache_dir or {CACHE_ENV} at a writable folder with room for "
        f"{_size_text(len(wanted), data)}"
    )
    try:
        return _build(directory, index, data, wanted, stored, progress)
    except WriteFailed as exc:  # named by its folder: the array's file name is random
        raise exc.replace(path=directory, remedy=f"{exc.remedy}, {elsewhere}") from None
    except OSError as exc:  # mapping the new array, removing the old one
        raise write_failure(directory, exc, remedy=f"check that folder, {elsewhere}") from None


def _size_text(count: int, data: DataConfig) -> str:
    height, width = data.image_size
    nbytes = count * height * width * data.channels
    return human_size(nbytes)  # as the disk-full line counts it


def open_cache_for(
    root: Path, items: Sequence[tuple[str, int]], data: DataConfig
) -> ImageCache | None:
    """The stored cache when it holds every item, unchanged on disk, else None (no decoding)."""
    directory = cache_directory(root, data)
    stored = _read_stored(directory, root, data)
    if stored is None:
        return None
    for path, _ in items:
        entry = stored.files.get(path)
        try:
            st = os.stat(root / path)
        except OSError:
            return None
        if entry is None or entry[:2] != (st.st_size, st.st_mtime_ns):
            return None
    return _as_cache(directory, stored, decoded=0)


def _decode_chunk(root: Path, paths: list[str], data: DataConfig) -> list[np.ndarray | str]:
    out: list[np.ndarray | str] = []
    for rel in paths:
        try:
            out.append(decode_image(root / rel, data.image_size, data.resize, data.color_mode))
        except ConvtrainError as exc:
            out.append(str(exc).removeprefix(f"{root / rel}: "))
    return out


def _build(
    directory: Path,
    index: ImageIndex,
    data: DataConfig,
    wanted: list[tuple[str, int, int]],
    old: _Stored | None,
    progress: bool,
) -> ImageCache:
    height, width = data.image_size
    shape = (len(wanted), height, width, data.channels)
    failed: dict[str, str] = {}
    todo: list[int] = []
    reused: list[tuple[int, int]] = []  # (new row, old row)
    for row, (path, nbytes, mtime) in enumerate(wanted):
        entry = old.files.get(path) if old is not None else None
        if entry is not None and entry[:2] == (nbytes, mtime):
            if entry[2] < 0:
                failed[path] = old.failed[path]
            else:
                reused.append((row, entry[2]))
        else:
            todo.append(row)
    name = f"images-{uuid.uuid4().hex[:12]}.npy"
    workers = max(1, min(len(os.sched_getaffinity(0)), 8))
    if progress and todo:
        print(
            f"building the image cache in {directory}: {len(todo)} images to decode"
            + (f", {len(reused)} unchanged" if reused else ""),
            file=sys.stderr,
        )
    bar = Progress(len(todo), "decoding images", enabled=progress)

    def fill(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        # The blocks reserved now: a memory map written on a full disk kills the process (SIGBUS).
        with open(tmp, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        for new, prev in reused:
            out[new] = old.images[prev]
        chunks = [todo[i : i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
        # Pillow releases the GIL while decoding and resizing, so threads use every core
        # without pickling arrays between processes or forking a process that holds TensorFlow.
        with ThreadPoolExecutor(workers) as pool:
            jobs = pool.map(
                lambda rows: _decode_chunk(index.root, [wanted[r][0] for r in rows], data), chunks
            )
            for rows, results in zip(chunks, jobs, strict=True):
                for row, result in zip(rows, results, strict=True):
                    if isinstance(result, str):
                        failed[wanted[row][0]] = result
                    else:
                        out[row] = result
                bar.update(len(rows))
        out.flush()
        del out

    atomic_save(directory / name, fill, suffix=".npy", needed=int(np.prod(shape)))
    # Mapped before the manifest exists: a concurrent build removing it cannot take it from us.
    images = np.load(directory / name, mmap_mode="r", allow_pickle=False)
    bar.close()
    for path, reason in sorted(failed.items()):
        if old is None or path not in old.failed:
            print(f"warning: skipped {index.root / path}: {reason}", file=sys.stderr)
    manifest = {
        **_params(index.root, data),
        "images": name,
        "shape": list(shape),
        "files": [list(f) for f in wanted],
        "failed": dict(sorted(failed.items())),
    }
    atomic_write_json(directory / "manifest.json", manifest)
    _remove_unused(directory)
    files = {p: (n, m, -1 if p in failed else row) for row, (p, n, m) in enumerate(wanted)}
    return _as_cache(directory, _Stored(images, files, failed), decoded=len(todo))


def _remove_unused(directory: Path) -> None:
    """Delete arrays the current manifest does not name (open memory maps stay valid)."""
    try:
        current = read_json(directory / "manifest.json")["images"]
    except (OSError, ValueError, KeyError, TypeError, ConvtrainError):
        return
    for stale in directory.glob("images-*.npy"):
        if stale.name != current:
            stale.unlink(missing_ok=True)


def recorded_failures(root: Path, data: DataConfig) -> dict[str, str] | None:
    """Files of `root` that earlier cache builds (any image size) could not decode.

    None when no cache of `root` exists, i.e. nothing is known yet about decoding.
    """
    base = resolve_cache_dir(data)
    wanted = str(root.resolve())
    failed: dict[str, str] = {}
    found = False
    for manifest_path in sorted(base.glob("*/manifest.json")) if base.is_dir() else []:
        try:
            manifest = read_json(manifest_path)
            if manifest.get("root") == wanted:
                found = True
                failed.update({str(k): str(v) for k, v in manifest.get("failed", {}).items()})
        except (OSError, ValueError, AttributeError, ConvtrainError):
            continue  # an unreadable manifest is rebuilt by the next run; nothing to report
    return failed if found else None
