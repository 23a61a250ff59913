"""Safe extraction: hostile tar and zip entries are refused and nothing lands outside the target."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import make_dataset

from convtrain.data.extract import archive_kind, extract_archive
from convtrain.errors import ConvtrainError

DS = "101_ObjectCategories"


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    """(staging folder, a folder beside it holding a file an attacker would like to reach)."""
    staging = tmp_path / "data" / "staging"
    staging.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep me\n")
    return staging, outside


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` except inside `skip`, with its size and link count."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if path != skip and skip not in path.parents:
                info = path.lstat()
                found[str(path)] = (info.st_size if path.is_file() else 0, info.st_nlink)
    return found


def make_tar(path: Path, entries: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        good = tarfile.TarInfo(f"{DS}/alpha/image_0001.jpg")
        good.size = 4
        tf.addfile(good, io.BytesIO(b"jpeg"))
        for entry in entries:
            data = b"evil" if entry.isreg() else None
            if data:
                entry.size = len(data)
            tf.addfile(entry, io.BytesIO(data) if data else None)
    return path


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def make_zip(path: Path, entries: list[tuple[str, int, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{DS}/alpha/image_0001.jpg", b"jpeg")
        for name, mode, data in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix: the mode bits below are honoured
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def hostile_tar_cases(outside: Path) -> list[tuple[list[tarfile.TarInfo], str, str]]:
    absolute = str(outside / "evil")
    return [
        ([tar_entry("../evil")], "../evil", "path with '..' (expected a path inside the archive root)"),
        ([tar_entry(f"{DS}/../../evil")], f"{DS}/../../evil", "path with '..' (expected a path inside the archive root)"),
        ([tar_entry(absolute)], absolute, "absolute path (expected a path relative to the archive root)"),
        (
            [tar_entry(f"{DS}/link", tarfile.SYMTYPE, "../../../outside"), tar_entry(f"{DS}/link/evil")],
            f"{DS}/link",
            "symbolic link to '../../../outside' leads outside the target folder",
        ),
        (
            [tar_entry(f"{DS}/link", tarfile.SYMTYPE, str(outside))],
            f"{DS}/link",
            f"symbolic link to '{outside}' leads outside the target folder",
        ),
        (
            [tar_entry(f"{DS}/hard", tarfile.LNKTYPE, "../../outside/secret")],
            f"{DS}/hard",
            "hard link to '../../outside/secret' leads outside the target folder",
        ),
        (
            [tar_entry(f"{DS}/hard", tarfile.LNKTYPE, str(outside / "secret"))],
            f"{DS}/hard",
            f"hard link to '{outside / 'secret'}' leads outside the target folder",
        ),
        (
            [tar_entry(f"{DS}/dev", tarfile.CHRTYPE)],
            f"{DS}/dev",
            "character device (expected regular files, folders and links)",
        ),
        (
            [tar_entry(f"{DS}/disk", tarfile.BLKTYPE)],
            f"{DS}/disk",
            "block device (expected regular files, folders and links)",
        ),
        (
            [tar_entry(f"{DS}/pipe", tarfile.FIFOTYPE)],
            f"{DS}/pipe",
            "named pipe (expected regular files, folders and links)",
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(10))
def test_hostile_tar_entry_is_refused_and_nothing_is_written_outside(
    tmp_path: Path, place: tuple[Path, Path], case: int
) -> None:
    staging, outside = place
    entries, name, problem = hostile_tar_cases(outside)[case]
    archive = make_tar(tmp_path / "hostile.tar.gz", entries)
    before = snapshot(tmp_path, skip=staging)

    with pytest.raises(ConvtrainError) as err:
        extract_archive(archive, "tar", staging)

    assert str(err.value) == f"{archive}: refused entry '{name}': {problem}"
    assert snapshot(tmp_path, skip=staging) == before  # the secret keeps one link, no `evil`
    assert not list(tmp_path.rglob("evil"))


def hostile_zip_cases(outside: Path) -> list[tuple[str, int, bytes, str]]:
    absolute = str(outside / "evil")
    regular = stat.S_IFREG | 0o644
    return [
        ("../evil", regular, b"evil", "path with '..' (expected a path inside the archive root)"),
        (f"{DS}/a/../../../evil", regular, b"evil", "path with '..' (expected a path inside the archive root)"),
        (absolute, regular, b"evil", "absolute path (expected a path relative to the archive root)"),
        (f"{DS}/link", stat.S_IFLNK | 0o777, b"../../../outside", "symbolic link to '../../../outside' leads outside the target folder"),
        (f"{DS}/link", stat.S_IFLNK | 0o777, str(outside).encode(), f"symbolic link to '{outside}' leads outside the target folder"),
        (f"{DS}/dev", stat.S_IFCHR | 0o644, b"", "character device (expected regular files, folders and links)"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(6))
def test_hostile_zip_entry_is_refused_before_anything_is_written(
    tmp_path: Path, place: tuple[Path, Path], case: int
) -> None:
    staging, outside = place
    name, mode, data, problem = hostile_zip_cases(outside)[case]
    archive = make_zip(tmp_path / "hostile.zip", [(name, mode, data)])
    before = snapshot(tmp_path, skip=staging)

    with pytest.raises(ConvtrainError) as err:
        extract_archive(archive, "zip", staging)

    assert str(err.value) == f"{archive}: refused entry '{name}': {problem}"
    assert snapshot(tmp_path, skip=staging) == before
    assert list(staging.iterdir()) == []  # every name is checked before the first write


def test_links_inside_the_dataset_are_extracted(tmp_path: Path, place: tuple[Path, Path]) -> None:
    staging, _ = place
    archive = make_tar(
        tmp_path / "links.tar.gz",
        [
            tar_entry(f"{DS}/beta", tarfile.SYMTYPE, "alpha"),
            tar_entry(f"{DS}/alpha/copy.jpg", tarfile.LNKTYPE, f"{DS}/alpha/image_0001.jpg"),
        ],
    )
    extracted = extract_archive(archive, "tar", staging)

    assert extracted.dataset == staging / DS
    assert os.readlink(staging / DS / "beta") == "alpha"
    copy = staging / DS / "alpha" / "copy.jpg"
    assert copy.read_bytes() == b"jpeg" and copy.stat().st_nlink == 2


def test_link_leaving_the_dataset_folder_is_refused(
    tmp_path: Path, place: tuple[Path, Path]
) -> None:
    # Inside the staging folder, but only 101_ObjectCategories/ is kept: the link would dangle.
    staging, _ = place
    other = tar_entry("other", tarfile.DIRTYPE)
    archive = make_tar(
        tmp_path / "x.tar.gz", [other, tar_entry(f"{DS}/x", tarfile.SYMTYPE, "../other")]
    )

    with pytest.raises(ConvtrainError) as err:
        extract_archive(archive, "tar", staging)
    assert str(err.value) == (
        f"{archive}: refused entry '{DS}/x': symbolic link leads outside {DS}/"
    )


def test_zip_with_the_dataset_tree(tmp_path: Path, place: tuple[Path, Path]) -> None:
    staging, _ = place
    root = make_dataset(tmp_path / "src", {"alpha": 2, "beta": 3})
    archive = tmp_path / "tree.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, f"caltech-101/{path.relative_to(root.parent)}")

    extracted = extract_archive(archive, "zip", staging)

    assert extracted.dataset == staging / "caltech-101" / DS
    assert extracted.inner is None
    assert sorted(p.name for p in (extracted.dataset / "beta").iterdir()) == [
        "image_0001.jpg", "image_0002.jpg", "image_0003.jpg"
    ]  # fmt: skip
    assert (extracted.dataset / "alpha" / "image_0002.jpg").read_bytes() == (
        root / "alpha" / "image_0002.jpg"
    ).read_bytes()


def test_zip_holding_the_official_tar_gz_is_streamed_and_hashed(
    tmp_path: Path, place: tuple[Path, Path]
) -> None:
    staging, _ = place
    root = make_dataset(tmp_path / "src", {"alpha": 2, "beta": 1})
    inner = tmp_path / f"{DS}.tar.gz"
    with tarfile.open(inner, "w:gz") as tf:
        tf.add(root, arcname=DS)
    archive = tmp_path / "caltech-101.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(inner, f"caltech-101/{DS}.tar.gz")
        zf.writestr("caltech-101/show_annotation.m", "% not extracted\n")

    extracted = extract_archive(archive, "zip", staging)

    assert extracted.dataset == staging / DS
    assert extracted.inner is not None
    assert extracted.inner.size == inner.stat().st_size
    assert extracted.inner.sha256 == hashlib.sha256(inner.read_bytes()).hexdigest()
    assert sorted(p.name for p in extracted.dataset.iterdir()) == ["alpha", "beta"]
    assert not (staging / "caltech-101").exists()


def test_truncated_tar_gz_is_reported_as_corrupt(tmp_path: Path, place: tuple[Path, Path]) -> None:
    staging, _ = place
    root = make_dataset(tmp_path / "src", {"alpha": 6})
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        tf.add(root, arcname=DS)
    archive = tmp_path / "truncated.tar.gz"
    archive.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    with pytest.raises(ConvtrainError) as err:
        extract_archive(archive, "tar", staging)
    assert str(err.value).startswith(f"{archive}: corrupt archive (")


def test_damaged_zip_is_reported_as_corrupt(tmp_path: Path, place: tuple[Path, Path]) -> None:
    staging, _ = place
    archive = tmp_path / "damaged.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\x00" * 200)

    with pytest.raises(ConvtrainError) as err:
        extract_archive(archive, "zip", staging)
    assert str(err.value) == f"{archive}: corrupt archive (File is not a zip file)"


def test_archive_without_the_dataset_folder(tmp_path: Path, place: tuple[Path, Path]) -> None:
    staging, _ = place
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("photos/cat.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"cat"))

    with pytest.raises(ConvtrainError) as err:
        extract_archive(archive, "tar", staging)
    assert str(err.value) == (
        f"{archive}: expected a {DS}/ folder at the top of the archive or one level down, "
        f"received ['photos']"
    )


def test_archive_kind_reads_the_first_bytes(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "src", {"alpha": 1})
    kinds = {}
    for mode, name in [("w:gz", "a.tgz"), ("w", "a.tar"), ("w:bz2", "a.tar.bz2")]:
        with tarfile.open(tmp_path / name, mode) as tf:
            tf.add(root, arcname=DS)
        kinds[name] = archive_kind(tmp_path / name)
    make_zip(tmp_path / "a.zip", [])
    kinds["a.zip"] = archive_kind(tmp_path / "a.zip")
    (tmp_path / "notes.txt").write_text("hello\n")
    kinds["notes.txt"] = archive_kind(tmp_path / "notes.txt")

    assert kinds == {
        "a.tgz": "tar",
        "a.tar": "tar",
        "a.tar.bz2": "tar",
        "a.zip": "zip",
        "notes.txt": None,
    }


def test_zip_symlink_inside_the_dataset_is_extracted(
    tmp_path: Path, place: tuple[Path, Path]
) -> None:
    staging, _ = place
    archive = make_zip(tmp_path / "links.zip", [(f"{DS}/beta", stat.S_IFLNK | 0o777, b"alpha")])

    extracted = extract_archive(archive, "zip", staging)

    assert os.readlink(extracted.dataset / "beta") == "alpha"
    assert (extracted.dataset / "beta" / "image_0001.jpg").read_bytes() == b"jpeg"
