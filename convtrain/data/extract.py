"""Safe extraction of a CALTECH-101 archive (.tar.gz or .zip) into a fresh staging folder.

Every entry is checked before it is written: absolute paths, `..`, links leading outside the
staging folder and device files are refused, so nothing is ever written outside it. The caller
moves the dataset folder into place only once it is complete and verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from convtrain.data.verify import DATASET_FOLDER, Checksum
from convtrain.errors import ConvtrainError
from convtrain.io import writing
from convtrain.progress import QUIET, Advance, Reporter

INNER_TAR = f"{DATASET_FOLDER}.tar.gz"  # what the official zip holds
SPECIAL = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "named pipe",
    stat.S_IFSOCK: "socket",
}
TAR_SPECIAL = {
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}
# Python >= 3.10.12 also has tarfile's own "data" filter: a second line of defence.
TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
CORRUPT = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError)


@dataclass(frozen=True)
class Extracted:
    dataset: Path  # the 101_ObjectCategories folder inside the staging folder
    inner: Checksum | None  # the tar.gz found inside a zip, hashed while it was read


def archive_kind(path: Path) -> str | None:
    """'zip' or 'tar' (plain or compressed) from the file's first bytes, None for anything else."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    return None


def extract_archive(
    archive: Path, kind: str, staging: Path, reporter: Reporter = QUIET
) -> Extracted:
    try:
        if kind == "zip":
            inner = _extract_zip(archive, staging, reporter)
        else:
            with (
                open(archive, "rb") as fh,
                reporter.task(
                    f"extracting {archive.name}", archive.stat().st_size, unit="bytes"
                ) as advance,
            ):
                _extract_tar(_Reader(fh, advance), staging, str(archive))
            inner = None
    except CORRUPT as exc:
        raise ConvtrainError(f"{archive}: corrupt archive ({exc or type(exc).__name__})") from None
    except OSError as exc:  # reading it; a failed write is convtrain.io's WriteFailed
        raise ConvtrainError(f"cannot extract {archive}: {exc}") from None
    return Extracted(_find_dataset(staging, str(archive)), inner)


class _Reader:
    """A file object that reports progress and hashes what tarfile reads through it."""

    def __init__(self, raw: BinaryIO, advance: Advance):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.advance = advance

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        self.advance(len(data))
        return data

    def drain(self) -> Checksum:
        while self.read(1 << 20):
            pass
        return Checksum(self.size, self.digest.hexdigest())


def _extract_tar(reader: _Reader, staging: Path, archive: str) -> Checksum:
    with tarfile.open(fileobj=reader, mode="r|*") as tf:
        for member in tf:
            if member.type in TAR_SPECIAL:
                _refuse_special(archive, member.name, TAR_SPECIAL[member.type])
            path = _entry_path(staging, member.name, archive)
            if member.issym():
                _check_link(staging, path.parent, member.linkname, member.name, "symbolic", archive)
            elif member.islnk():
                _check_link(staging, staging, member.linkname, member.name, "hard", archive)
            try:
                with writing(path, member.size):
                    tf.extract(member, staging, **TAR_FILTER)
            except getattr(tarfile, "FilterError", ()) as exc:
                raise _refused(archive, member.name, str(exc)) from None
        return reader.drain()


def _extract_zip(archive: Path, staging: Path, reporter: Reporter) -> Checksum | None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # all names first: a hostile archive writes nothing
            _check_zip_entry(zf, info, staging, str(archive))
        inner = [
            i
            for i in infos
            if PurePosixPath(i.filename).name == INNER_TAR
            and not i.filename.startswith("__MACOSX/")
        ]
        if inner:
            member = min(inner, key=lambda i: len(i.filename))
            label = f"{archive.name}:{member.filename}"
            with (
                zf.open(member) as raw,
                reporter.task(f"extracting {label}", member.file_size, unit="bytes") as advance,
            ):
                return _extract_tar(_Reader(raw, advance), staging, label)
        total = sum(i.file_size for i in infos)
        with reporter.task(f"extracting {archive.name}", total, unit="bytes") as advance:
            for info in infos:
                _extract_zip_entry(zf, info, staging, str(archive))
                advance(info.file_size)
    return None


def _zip_mode(info: zipfile.ZipInfo) -> int:
    # Unix permissions and file type live in the high bits, when the zip was made on Unix.
    return info.external_attr >> 16 if info.create_system == 3 else 0


def _check_zip_entry(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, staging: Path, archive: str
) -> Path:
    kind = stat.S_IFMT(_zip_mode(info))
    if kind in SPECIAL:
        _refuse_special(archive, info.filename, kind)
    path = _entry_path(staging, info.filename, archive)
    if kind == stat.S_IFLNK:
        target = zf.read(info).decode("utf-8", "surrogateescape")
        _check_link(staging, path.parent, target, info.filename, "symbolic", archive)
    return path


def _extract_zip_entry(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, staging: Path, archive: str
) -> None:
    # Checked again now that earlier entries (links) exist on disk.
    path = _check_zip_entry(zf, info, staging, archive)
    with writing(path, info.file_size):
        if info.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(_zip_mode(info)):
            os.symlink(zf.read(info).decode("utf-8", "surrogateescape"), path)
            return
        with zf.open(info) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _entry_path(staging: Path, name: str, archive: str) -> Path:
    pure = PurePosixPath(name)
    if pure.is_absolute():
        raise _refused(
            archive, name, "absolute path (expected a path relative to the archive root)"
        )
    if ".." in pure.parts:
        raise _refused(archive, name, "path with '..' (expected a path inside the archive root)")
    path = staging.joinpath(*pure.parts)
    if not _inside(staging, path):
        raise _refused(archive, name, "path leads outside the target folder through a link")
    return path


def _check_link(staging: Path, base: Path, target: str, name: str, kind: str, archive: str) -> None:
    if os.path.isabs(target) or not _inside(staging, base / target):
        raise _refused(archive, name, f"{kind} link to '{target}' leads outside the target folder")


def _refuse_special(archive: str, name: str, kind: int) -> None:
    raise _refused(archive, name, f"{SPECIAL[kind]} (expected regular files, folders and links)")


def _inside(root: Path, path: Path) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


def _refused(archive: str, name: str, problem: str) -> ConvtrainError:
    return ConvtrainError(f"{archive}: refused entry '{name}': {problem}")


def _find_dataset(staging: Path, archive: str) -> Path:
    for candidate in (staging / DATASET_FOLDER, *sorted(staging.glob(f"*/{DATASET_FOLDER}"))):
        if candidate.is_dir() and not candidate.is_symlink():
            _check_links_stay_in(candidate, archive)
            return candidate
    raise ConvtrainError(
        f"{archive}: expected a {DATASET_FOLDER}/ folder at the top of the archive or one level "
        f"down, received {sorted(p.name for p in staging.iterdir())[:10]}"
    )


def _check_links_stay_in(dataset: Path, archive: str) -> None:
    # Links were checked against the staging folder; only the dataset folder is kept.
    for folder, dirs, files in os.walk(dataset):
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink() and not _inside(dataset, path):
                entry = path.relative_to(dataset.parent)
                raise _refused(
                    archive, str(entry), f"symbolic link leads outside {DATASET_FOLDER}/"
                )
