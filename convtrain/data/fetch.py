"""`convtrain data fetch`: CALTECH-101 into `<data-dir>/101_ObjectCategories`, verified, atomically.

The dataset is assembled in a hidden staging folder beside the target, verified against the
official per-class counts, marked, and only then renamed into place: an interrupted or failed
fetch never leaves a half dataset that looks complete, nor touches one already there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from convtrain.data.download import download
from convtrain.data.extract import archive_kind, extract_archive
from convtrain.data.verify import (
    DATASET_FOLDER,
    MARKER_NAME,
    OFFICIAL_COUNTS,
    Checksum,
    Marker,
    check_counts,
    describe_counts,
    scan_counts,
    sha256_file,
    verified_marker,
)
from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.io import write_failure, writing
from convtrain.progress import QUIET, Reporter

STAGING_PREFIX = ".convtrain-staging-"
LOCK_NAME = ".convtrain-fetch.lock"
SOURCE_KINDS = "an http(s) URL, a .zip or .tar.gz file, or a 101_ObjectCategories/ folder"


@dataclass(frozen=True)
class Reference:
    """What the official CALTECH-101 looks like; tests pass a small synthetic one."""

    url: str
    zip: Checksum  # the CaltechDATA download
    tar: Checksum  # 101_ObjectCategories.tar.gz inside it
    counts: Mapping[str, int]


OFFICIAL = Reference(
    url="https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1",
    zip=Checksum(137_414_764, "331234750fc7f77520e50d9565e8b6907b03565e30320da1401130db08c61f91"),
    tar=Checksum(131_740_031, "af6ece2f339791ca20f855943d8b55dd60892c0a25105fcd631ee3d6430f9926"),
    counts=OFFICIAL_COUNTS,
)


@dataclass(frozen=True)
class Source:
    """`--source`, normalised: a URL to download, or a local archive or folder."""

    text: str  # as the user gave it, for messages
    kind: str  # "url", "zip", "tar" or "folder"
    url: str | None = None  # set for "url"
    path: Path | None = None  # set for the others


@dataclass(frozen=True)
class Fetched:
    target: Path  # the verified 101_ObjectCategories folder
    installed: str | None  # what was installed, in one line; None when it was already there


def fetch_dataset(
    source: str | None,
    data_dir: str | Path,
    *,
    reference: Reference = OFFICIAL,
    reporter: Reporter = QUIET,
) -> Fetched:
    """Make `<data_dir>/101_ObjectCategories` a verified CALTECH-101."""
    data_dir = Path(data_dir)
    target = data_dir / DATASET_FOLDER
    if _already_there(target, reference, reporter):
        return Fetched(target, None)
    src = parse_source(source, reference)
    with writing(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
    with _lock(data_dir, reporter):
        if _already_there(target, reference, reporter):  # another fetch finished meanwhile
            return Fetched(target, None)
        for leftover in data_dir.glob(f"{STAGING_PREFIX}*"):  # from a killed fetch
            shutil.rmtree(leftover, ignore_errors=True)
        if src.url is None:
            checksum = sha256_file(src.path) if src.kind != "folder" else None
            return Fetched(target, _install(src, checksum, target, reference, reporter))
        archive, checksum, known = _download(src.url, data_dir, reference, reporter)
        try:
            downloaded = Source(src.text, _kind_of(archive, src.text), path=archive)
            installed = _install(downloaded, checksum, target, reference, reporter)
        except ConvtrainError:
            if not known:  # judged by its content only, and found wanting: do not reuse it
                archive.unlink(missing_ok=True)
            raise
        archive.unlink()  # extracted and verified: the marker keeps its checksum
    return Fetched(target, installed)


def parse_source(source: str | None, reference: Reference) -> Source:
    if source is None:
        return Source(reference.url, "url", url=reference.url)
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        return Source(source, "url", url=source)
    if "://" in source:
        raise ConvtrainError(
            f"--source {source}: expected {SOURCE_KINDS}, received a {scheme}:// URL"
        )
    path = Path(source).expanduser()
    if path.is_dir():
        if path.name != DATASET_FOLDER and (path / DATASET_FOLDER).is_dir():
            path = path / DATASET_FOLDER  # the folder holding it, as a tar.gz extracts
        return Source(source, "folder", path=path)
    if not path.exists():
        raise ConvtrainError(f"--source {source}: no such file or folder (expected {SOURCE_KINDS})")
    return Source(source, _kind_of(path, f"--source {source}"), path=path)


def _kind_of(path: Path, place: str) -> str:
    try:
        kind = archive_kind(path)
    except OSError as exc:
        raise ConvtrainError(f"{place}: cannot read it ({exc.strerror})") from None
    if kind is None:
        raise ConvtrainError(
            f"{place}: expected {SOURCE_KINDS}, received a file that is neither a zip nor a "
            f"tar archive"
        )
    return kind


def _already_there(target: Path, reference: Reference, reporter: Reporter) -> bool:
    if not target.is_dir():
        return False
    marker = verified_marker(target, reference.counts)
    if marker is not None:
        reporter.note(
            f"CALTECH-101 already present and verified at {target} "
            f"({describe_counts(marker.counts)}); delete that folder to fetch it again"
        )
        return True
    # A folder extracted by hand: accept it when its structure matches, and mark it.
    counts = scan_counts(target)
    try:
        check_counts(counts, reference.counts, str(target))
    except ConvtrainError:
        return False
    Marker.create(f"existing folder {target}", None, False, counts).write(target / MARKER_NAME)
    reporter.note(f"CALTECH-101 found at {target} and verified ({describe_counts(counts)})")
    return True


def _download(
    url: str, data_dir: Path, reference: Reference, reporter: Reporter
) -> tuple[Path, Checksum, bool]:
    """The archive, its checksum, and whether that checksum was known in advance (and matched)."""
    # Only the official URL has a known checksum; another URL is judged by its structure.
    expected = reference.zip if url == reference.url else None
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(urlparse(url).path).name)
    dest = data_dir / (name or "download")
    if dest.is_file():  # downloaded and verified by an earlier fetch whose extraction failed
        checksum = sha256_file(dest)
        if expected is None or checksum == expected:
            return dest, checksum, expected is not None
        dest.unlink()
    reporter.note(f"downloading {url} into {data_dir}")
    return dest, download(url, dest, expected=expected, reporter=reporter), expected is not None


def _install(
    src: Source, checksum: Checksum | None, target: Path, reference: Reference, reporter: Reporter
) -> str:
    """Install the source at `target`; what was installed, in one line."""
    assert src.path is not None
    if src.kind == "folder":  # cheap to check before copying anything
        check_counts(scan_counts(src.path), reference.counts, src.text)
    with writing(target.parent):
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target.parent))
    try:
        inner = None
        if src.kind == "folder":
            dataset = _copy_folder(src.path, staging / DATASET_FOLDER, reporter)
        else:
            extracted = extract_archive(src.path, src.kind, staging, reporter)
            dataset, inner = extracted.dataset, extracted.inner
        counts = scan_counts(dataset)
        warnings = check_counts(counts, reference.counts, src.text)
        official = checksum in (reference.zip, reference.tar) or inner == reference.tar
        if checksum is not None and not official:
            warnings.insert(
                0,
                f"{src.text}: sha256 {checksum.sha256} is not the official CALTECH-101 "
                f"archive's; accepted because its structure matches",
            )
        for warning in warnings:
            reporter.warning(warning)
        sha256 = checksum.sha256 if checksum else None
        Marker.create(src.text, sha256, official, counts).write(dataset / MARKER_NAME)
        _replace(target, dataset, staging, reporter)
    except WriteFailed as exc:
        raise exc.replace(then="run the command again (nothing was changed)") from None
    except OSError as exc:  # moving the verified dataset into place
        raise write_failure(target, exc).replace(then="run the command again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = "official archive" if official else "structure verified"
    return f"CALTECH-101 ready at {target} ({describe_counts(counts)}, {summary})"


def _copy_folder(source: Path, dest: Path, reporter: Reporter) -> Path:
    files = [Path(folder, name) for folder, _, names in os.walk(source) for name in names]
    total = sum(f.stat().st_size for f in files)
    with reporter.task(f"copying {source}", total, unit="bytes") as advance:
        for file in files:
            out = dest / file.relative_to(source)
            with writing(out, file.stat().st_size):
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, out)
            advance(out.stat().st_size)
    dest.mkdir(exist_ok=True)
    return dest


def _replace(target: Path, dataset: Path, staging: Path, reporter: Reporter) -> None:
    """Swap the verified dataset in; an unverified folder at `target` goes into staging (removed)."""
    if target.is_symlink() or target.exists():
        reporter.note(f"replacing {target}, which is not a verified CALTECH-101")
        previous = staging / "previous"
        target.rename(previous)
        try:
            dataset.rename(target)
        except OSError:
            previous.rename(target)  # staging is about to be removed: put the old one back
            raise
    else:
        dataset.rename(target)


@contextmanager
def _lock(data_dir: Path, reporter: Reporter) -> Iterator[None]:
    """One fetch per data dir at a time (several `make train` may start together)."""
    with writing(data_dir / LOCK_NAME):
        fh = open(data_dir / LOCK_NAME, "w")  # noqa: SIM115 - held for the whole fetch
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            reporter.note(f"waiting for another fetch into {data_dir} to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield
