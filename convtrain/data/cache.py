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
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from convtrain.config.schema import DataConfig
from convtrain.data.decode import DECODER_VERSION, decode_image
from convtrain.data.index import ImageIndex
from convtrain.errors import ConvtrainError, WriteFailed, human_size
from convtrain.io import atomic_save, write_failure
from convtrain.progress import QUIET, Reporter
from convtrain.records import Record, RecordError

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


class Manifest(Record):
    """manifest.json: what the cache array holds and the files it was decoded from."""

    FILE = "manifest.json"

    format: Literal[1]  # MANIFEST_FORMAT
    decoder_version: int
    root: str
    image_size: tuple[int, int]
    resize: str
    color_mode: str
    images: str  # the array's file name, in the same directory
    shape: tuple[int, int, int, int]
    files: list[tuple[str, int, int]]  # (relative path, size in bytes, mtime in ns), one per row
    failed: dict[str, str]  # relative path -> why it did not decode

    def made_for(self, root: Path, data: DataConfig) -> bool:
        """Whether it holds `root`'s images decoded with these parameters."""
        return (
            self.format,
            self.decoder_version,
            self.root,
            self.image_size,
            self.resize,
            self.color_mode,
        ) == (
            MANIFEST_FORMAT,
            DECODER_VERSION,
            str(root.resolve()),
            tuple(data.image_size),
            data.resize,
            data.color_mode,
        )


def _read_manifest(directory: Path) -> Manifest | None:
    """The manifest, or None when missing or damaged (the cache is then rebuilt)."""
    try:
        return Manifest.read(directory / Manifest.FILE)
    except RecordError:
        return None


@dataclass(frozen=True)
class _Stored:
    """A cache as found on disk, before checking it against the current files."""

    images: np.ndarray
    files: dict[str, tuple[int, int, int]]  # path -> (nbytes, mtime_ns, row); row -1: failed
    failed: dict[str, str]


def _read_stored(directory: Path, root: Path, data: DataConfig) -> _Stored | None:
    """The stored cache when it is complete and made with these parameters, else None."""
    manifest = _read_manifest(directory)
    if manifest is None or not manifest.made_for(root, data):
        return None
    try:
        images = np.load(directory / manifest.images, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # missing or truncated: rebuilt by the caller
    height, width = data.image_size
    if images.dtype != np.uint8 or images.shape != (
        len(manifest.files),
        height,
        width,
        data.channels,
    ):
        return None
    files = {path: (nbytes, mtime, row) for row, (path, nbytes, mtime) in enumerate(manifest.files)}
    for path in manifest.failed:
        if path in files:
            files[path] = (*files[path][:2], -1)
    return _Stored(images, files, dict(manifest.failed))


def _fingerprint(index: ImageIndex) -> list[tuple[str, int, int]]:
    if len(index.meta) != len(index.items):
        raise ValueError("the index carries no file metadata; build it with index_dataset()")
    return [
        (path, m.nbytes, m.mtime_ns) for (path, _), m in zip(index.items, index.meta, strict=True)
    ]


def _as_cache(directory: Path, stored: _Stored, decoded: int) -> ImageCache:
    rows = {path: row for path, (_, _, row) in stored.files.items() if row >= 0}
    return ImageCache(directory, stored.images, rows, tuple(sorted(stored.failed.items())), decoded)


def open_cache(index: ImageIndex, data: DataConfig, reporter: Reporter = QUIET) -> ImageCache:
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
        return _build(directory, index, data, wanted, stored, reporter)
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
    reporter: Reporter,
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
    if todo:
        reporter.note(
            f"building the image cache in {directory}: {len(todo)} images to decode"
            + (f", {len(reused)} unchanged" if reused else "")
        )

    def fill(tmp: Path, advance: Callable[[float], None]) -> None:
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
                advance(len(rows))
        out.flush()
        del out

    with reporter.task("decoding images", len(todo)) as advance:
        atomic_save(
            directory / name,
            lambda tmp: fill(tmp, advance),
            suffix=".npy",
            needed=int(np.prod(shape)),
        )
    # Mapped before the manifest exists: a concurrent build removing it cannot take it from us.
    images = np.load(directory / name, mmap_mode="r", allow_pickle=False)
    for path, reason in sorted(failed.items()):
        if old is None or path not in old.failed:
            reporter.warning(f"skipped {index.root / path}: {reason}")
    manifest = Manifest(
        format=MANIFEST_FORMAT,
        decoder_version=DECODER_VERSION,
        root=str(index.root.resolve()),
        image_size=tuple(data.image_size),
        resize=data.resize,
        color_mode=data.color_mode,
        images=name,
        shape=shape,
        files=wanted,
        failed=dict(sorted(failed.items())),
    )
    manifest.write(directory / Manifest.FILE)
    _remove_unused(directory)
    files = {p: (n, m, -1 if p in failed else row) for row, (p, n, m) in enumerate(wanted)}
    return _as_cache(directory, _Stored(images, files, failed), decoded=len(todo))


def _remove_unused(directory: Path) -> None:
    """Delete arrays the current manifest does not name (open memory maps stay valid)."""
    current = _read_manifest(directory)
    if current is None:
        return
    for stale in directory.glob("images-*.npy"):
        if stale.name != current.images:
            stale.unlink(missing_ok=True)


def recorded_failures(root: Path, data: DataConfig) -> dict[str, str] | None:
    """Files of `root` that earlier cache builds (any image size) could not decode.

    None when no cache of `root` exists, i.e. nothing is known yet about decoding.
    """
    base = resolve_cache_dir(data)
    wanted = str(root.resolve())
    failed: dict[str, str] = {}
    found = False
    for folder in (
        sorted(p.parent for p in base.glob(f"*/{Manifest.FILE}")) if base.is_dir() else []
    ):
        manifest = _read_manifest(folder)  # an unreadable one is rebuilt by the next run
        if manifest is not None and manifest.root == wanted:
            found = True
            failed.update(manifest.failed)
    return failed if found else None
