"""`convtrain data fetch`: resumable download from a local HTTP server, verification, atomic install."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_dataset

import convtrain.data.fetch as fetch_module
from convtrain.commands import cli
from convtrain.commands.data import run_fetch
from convtrain.data.fetch import Reference
from convtrain.data.verify import MARKER_NAME, OFFICIAL_COUNTS, Checksum, read_marker, scan_counts
from convtrain.errors import ConvtrainError

DS = "101_ObjectCategories"
ZIP_PATH = "/records/x/files/caltech-101.zip?download=1"
CLASSES = {"alpha": 9, "beta": 7, "gamma": 5}


# --- a local HTTP server with Range support that can drop connections -------------------------


@dataclass
class Served:
    """What the test server answers; `ranges` records the Range header of every request."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: int = 0  # with drops > 0: send only this many body bytes, then hang up
    drops: int = 0
    honour_range: bool = True
    ranges: list[str | None] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def make_handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            served.ranges.append(self.headers.get("Range"))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            header = self.headers.get("Range")
            if header and served.honour_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if served.drops > 0:
                served.drops -= 1
                self.wfile.write(body[start : start + served.drop_after])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body[start:])

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def served() -> Iterator[Served]:
    state = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


# --- synthetic archives shaped like the official one --------------------------------------------


@dataclass(frozen=True)
class Archives:
    root: Path  # the extracted 101_ObjectCategories it was made from
    tar: Path  # 101_ObjectCategories.tar.gz
    zip: Path  # caltech-101.zip holding caltech-101/101_ObjectCategories.tar.gz
    counts: dict[str, int]


def checksum(path: Path) -> Checksum:
    data = path.read_bytes()
    return Checksum(len(data), hashlib.sha256(data).hexdigest())


@pytest.fixture
def archives(tmp_path: Path) -> Archives:
    root = make_dataset(tmp_path / "src", CLASSES, size_range=(40, 80))
    tar = tmp_path / f"{DS}.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(root, arcname=DS)
    zipped = tmp_path / "caltech-101.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tar, f"caltech-101/{DS}.tar.gz")
    return Archives(root, tar, zipped, scan_counts(root))


def reference_for(archives: Archives, served: Served, **changes: object) -> Reference:
    fields = {
        "url": served.url(ZIP_PATH),
        "zip": checksum(archives.zip),
        "tar": checksum(archives.tar),
        "counts": archives.counts,
    }
    return Reference(**{**fields, **changes})  # type: ignore[arg-type]


def local_reference(archives: Archives) -> Reference:
    """For local sources: the URL is never contacted."""
    return Reference(
        "http://unused", checksum(archives.zip), checksum(archives.tar), archives.counts
    )


def leftovers(data_dir: Path) -> list[str]:
    """Everything in the data dir except the dataset and the lock file."""
    return sorted(p.name for p in data_dir.iterdir() if p.name not in (DS, ".convtrain-fetch.lock"))


# --- download -----------------------------------------------------------------------------------


def test_default_download_resumes_after_a_dropped_connection(
    tmp_path: Path, served: Served, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> None:
    body = archives.zip.read_bytes()
    served.files[ZIP_PATH] = body
    served.drop_after, served.drops = len(body) // 3, 1
    data_dir = tmp_path / "data"

    target = run_fetch(None, data_dir, reference=reference_for(archives, served))

    assert target == data_dir / DS
    assert served.ranges == [None, f"bytes={len(body) // 3}-"]
    assert scan_counts(target) == archives.counts
    marker = read_marker(target)
    assert marker is not None and marker.official
    assert marker.sha256 == checksum(archives.zip).sha256
    assert leftovers(data_dir) == []  # no .part, no archive, no staging folder
    out, err = capsys.readouterr()
    assert "download interrupted" in err and "warning" not in err
    assert out == f"CALTECH-101 ready at {target} (3 folders with 21 files, official archive)\n"


def test_interrupted_download_keeps_the_part_file_and_the_next_fetch_resumes_it(
    tmp_path: Path, served: Served, archives: Archives
) -> None:
    body = archives.zip.read_bytes()
    served.files[ZIP_PATH] = body
    step = len(body) // 5
    served.drop_after, served.drops = step, 3  # every one of the three attempts breaks
    data_dir = tmp_path / "data"
    reference = reference_for(archives, served)
    part = data_dir / "caltech-101.zip.part"

    with pytest.raises(ConvtrainError) as err:
        run_fetch(None, data_dir, reference=reference)

    assert str(err.value).startswith(f"download of {reference.url} interrupted (received ")
    assert str(err.value).endswith(f"in {part}: run the command again to resume")
    assert part.stat().st_size == 3 * step
    assert part.read_bytes() == body[: 3 * step]
    assert not (data_dir / DS).exists()

    run_fetch(None, data_dir, reference=reference)

    assert served.ranges[-1] == f"bytes={3 * step}-"
    assert scan_counts(data_dir / DS) == archives.counts
    assert leftovers(data_dir) == []


def test_checksum_mismatch_deletes_the_download(
    tmp_path: Path, served: Served, archives: Archives
) -> None:
    served.files[ZIP_PATH] = archives.zip.read_bytes()
    actual = checksum(archives.zip)
    wrong = Checksum(actual.size, "0" * 64)
    data_dir = tmp_path / "data"
    reference = reference_for(archives, served, zip=wrong)

    with pytest.raises(ConvtrainError) as err:
        run_fetch(None, data_dir, reference=reference)

    assert str(err.value) == (
        f"download of {reference.url}: expected {actual.size:,} bytes, sha256 {'0' * 64}, "
        f"received {actual.size:,} bytes, sha256 {actual.sha256}; deleted the bad file "
        f"{data_dir / 'caltech-101.zip.part'}: run the command again to retry"
    )
    assert leftovers(data_dir) == [] and not (data_dir / DS).exists()


def test_server_without_range_support_restarts_from_the_first_byte(
    tmp_path: Path, served: Served, archives: Archives
) -> None:
    served.files[ZIP_PATH] = archives.zip.read_bytes()
    served.honour_range = False
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "caltech-101.zip.part").write_bytes(b"stale bytes from another file")

    run_fetch(None, data_dir, reference=reference_for(archives, served))

    assert served.ranges == ["bytes=29-"]  # asked to resume, got the whole file, rewrote it
    assert scan_counts(data_dir / DS) == archives.counts


def test_http_error_is_one_line(tmp_path: Path, served: Served, archives: Archives) -> None:
    url = served.url("/missing.zip")
    with pytest.raises(ConvtrainError) as err:
        run_fetch(url, tmp_path / "data", reference=reference_for(archives, served))
    assert str(err.value) == f"download of {url}: HTTP error 404 Not Found"


def test_unreachable_url(tmp_path: Path, archives: Archives) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/caltech-101.zip"
    with pytest.raises(ConvtrainError) as err:
        run_fetch(url, tmp_path / "data")
    assert str(err.value).startswith(f"cannot reach {url}: ")
    assert "refused" in str(err.value)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_while_downloading(tmp_path: Path, served: Served, archives: Archives) -> None:
    served.files[ZIP_PATH] = archives.zip.read_bytes()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    part = data_dir / "caltech-101.zip.part"
    part.symlink_to("/dev/full")  # every write fails with ENOSPC, like a full disk

    with pytest.raises(ConvtrainError) as err:
        run_fetch(None, data_dir, reference=reference_for(archives, served))
    message = str(err.value)  # the free space is that of tmp_path's disk, not /dev/full's
    assert message.startswith(f"{part}: cannot write it (no space left on device: needs about ")
    assert message.endswith(
        " free); free some space, then run the command again to resume the download"
    )
    assert err.value.exit_code == 1


def test_other_url_is_judged_by_its_structure(
    tmp_path: Path, served: Served, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> None:
    repacked = tmp_path / "mirror.tar.gz"
    with tarfile.open(repacked, "w:gz", compresslevel=1) as tf:
        tf.add(archives.root, arcname=DS)
    served.files["/mirror/ds.tar.gz"] = repacked.read_bytes()
    data_dir = tmp_path / "data"
    url = served.url("/mirror/ds.tar.gz")

    run_fetch(url, data_dir, reference=reference_for(archives, served))

    marker = read_marker(data_dir / DS)
    assert marker is not None and not marker.official and marker.source == url
    assert capsys.readouterr().err.endswith(
        f"warning: {url}: sha256 {checksum(repacked).sha256} is not the official CALTECH-101 "
        f"archive's; accepted because its structure matches\n"
    )
    assert leftovers(data_dir) == []


def test_second_fetch_is_quick_and_offline(
    tmp_path: Path,
    served: Served,
    archives: Archives,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served.files[ZIP_PATH] = archives.zip.read_bytes()
    data_dir = tmp_path / "data"
    reference = reference_for(archives, served)
    run_fetch(None, data_dir, reference=reference)
    capsys.readouterr()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a verified dataset is recognised by its marker: nothing is read")

    # Quick: the marker and a folder listing suffice, no file is hashed, copied or extracted.
    for name in ("sha256_file", "extract_archive", "_copy_folder", "download"):
        monkeypatch.setattr(fetch_module, name, refuse)
    run_fetch(None, data_dir, reference=reference)

    assert len(served.ranges) == 1
    assert capsys.readouterr().err == (
        f"CALTECH-101 already present and verified at {data_dir / DS} (3 folders with 21 files); "
        f"delete that folder to fetch it again\n"
    )


# --- local sources ------------------------------------------------------------------------------


def test_local_official_tar_gz_needs_no_warning(
    tmp_path: Path, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = local_reference(archives)
    target = run_fetch(str(archives.tar), tmp_path / "data", reference=reference)

    assert (target / "beta" / "image_0007.jpg").read_bytes() == (
        archives.root / "beta" / "image_0007.jpg"
    ).read_bytes()
    marker = read_marker(target)
    assert marker is not None and marker.official and marker.source == str(archives.tar)
    assert "warning" not in capsys.readouterr().err
    assert archives.tar.exists()  # the user's own file is kept


def test_local_zip_of_the_tree_is_accepted_with_a_warning(
    tmp_path: Path, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree.zip"
    with zipfile.ZipFile(tree, "w") as zf:
        for path in sorted(archives.root.rglob("*")):
            zf.write(path, path.relative_to(archives.root.parent))
    reference = local_reference(archives)

    target = run_fetch(str(tree), tmp_path / "data", reference=reference)

    assert scan_counts(target) == archives.counts
    assert (
        f"warning: {tree}: sha256 {checksum(tree).sha256} is not the official"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("given", ["dataset", "parent"])
def test_local_folder_is_copied(tmp_path: Path, archives: Archives, given: str) -> None:
    source = archives.root if given == "dataset" else archives.root.parent
    reference = local_reference(archives)

    target = run_fetch(str(source), tmp_path / "data", reference=reference)

    assert scan_counts(target) == archives.counts
    marker = read_marker(target)
    assert marker is not None and marker.sha256 is None and not marker.official
    assert not (archives.root / MARKER_NAME).exists()  # the source is left as it was


def test_folder_already_in_place_without_marker_is_verified_and_marked(
    tmp_path: Path, archives: Archives
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(archives.root, data_dir / DS)
    reference = local_reference(archives)

    run_fetch(str(tmp_path / "does-not-matter.zip"), data_dir, reference=reference)

    marker = read_marker(data_dir / DS)
    assert marker is not None and marker.counts == archives.counts


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{tmp}/nope.zip",
            "--source {tmp}/nope.zip: no such file or folder (expected an http(s) URL, a .zip or .tar.gz file, or a 101_ObjectCategories/ folder)",
        ),
        (
            "{tmp}/notes.txt",
            "--source {tmp}/notes.txt: expected an http(s) URL, a .zip or .tar.gz file, or a 101_ObjectCategories/ folder, received a file that is neither a zip nor a tar archive",
        ),
        (
            "ftp://example.org/c.zip",
            "--source ftp://example.org/c.zip: expected an http(s) URL, a .zip or .tar.gz file, or a 101_ObjectCategories/ folder, received a ftp:// URL",
        ),
    ],
)
def test_bad_source_is_one_line(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("not an archive\n")
    with pytest.raises(ConvtrainError) as err:
        run_fetch(source.format(tmp=tmp_path), tmp_path / "data")
    assert str(err.value) == message.format(tmp=tmp_path)
    assert not (tmp_path / "data").exists()


def test_wrong_structure_names_missing_and_short_folders(
    tmp_path: Path, archives: Archives
) -> None:
    short = make_dataset(tmp_path / "short", {"alpha": 9, "beta": 4})
    archive = tmp_path / "short.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(short, arcname=DS)
    reference = local_reference(archives)
    data_dir = tmp_path / "data"

    with pytest.raises(ConvtrainError) as err:
        run_fetch(str(archive), data_dir, reference=reference)

    assert str(err.value) == (
        f"{archive}: expected CALTECH-101's 3 folders with 21 files, received 2 folders with "
        f"13 files; missing folders: gamma; folders with too few files: beta (4 of 7)"
    )
    assert leftovers(data_dir) == [] and not (data_dir / DS).exists()


@pytest.mark.parametrize("damage", ["truncated", "hostile"])
def test_failed_fetch_leaves_the_existing_folder_untouched(
    tmp_path: Path, archives: Archives, damage: str
) -> None:
    data_dir = tmp_path / "data"
    existing = make_dataset(data_dir, {"alpha": 2})  # not what the reference wants: replaceable
    before = {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()}
    bad = tmp_path / f"{damage}.tar.gz"
    if damage == "truncated":
        bad.write_bytes(archives.tar.read_bytes()[: archives.tar.stat().st_size // 2])
    else:
        with tarfile.open(bad, "w:gz") as tf:
            tf.add(archives.root, arcname=DS)
            tf.add(archives.root / "alpha" / "image_0001.jpg", arcname="../evil.jpg")
    reference = local_reference(archives)

    with pytest.raises(ConvtrainError) as err:
        run_fetch(str(bad), data_dir, reference=reference)

    expected = "corrupt archive (" if damage == "truncated" else "refused entry '../evil.jpg'"
    assert expected in str(err.value)
    assert {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()} == before
    assert leftovers(data_dir) == [] and not (tmp_path / "evil.jpg").exists()


def test_staging_left_by_a_killed_fetch_is_not_a_dataset_and_is_cleaned(
    tmp_path: Path, archives: Archives
) -> None:
    data_dir = tmp_path / "data"
    make_dataset(data_dir / ".convtrain-staging-x1y2", {"alpha": 9})  # a half extraction
    reference = local_reference(archives)

    run_fetch(str(archives.tar), data_dir, reference=reference)

    assert leftovers(data_dir) == []
    assert scan_counts(data_dir / DS) == archives.counts


def test_cli_bad_source_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tar.gz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convtrain",
            "data",
            "fetch",
            "--source",
            str(missing),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --source {missing}: no such file or folder (expected an http(s) URL, a .zip or "
        f".tar.gz file, or a 101_ObjectCategories/ folder)\n"
    )


def test_cli_checks_against_the_official_counts(tmp_path: Path, archives: Archives) -> None:
    result = CliRunner().invoke(
        cli, ["data", "fetch", "--source", str(archives.root), "--data-dir", str(tmp_path / "d")]
    )
    assert isinstance(result.exception, ConvtrainError)
    message = str(result.exception)
    assert message.startswith(
        f"{archives.root}: expected CALTECH-101's 102 folders with 9,145 files, received 3 folders "
        f"with 21 files; missing folders: BACKGROUND_Google, Faces, Faces_easy, Leopards,"
    )
    assert message.split("missing folders: ")[1].split(", ") == list(OFFICIAL_COUNTS)
    assert not (tmp_path / "d" / DS).exists()


# --- the real archive (slow) --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.real_data
def test_real_archive_served_as_a_zip(
    tmp_path: Path, served: Served, real_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zipped = tmp_path / "caltech-101.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED) as zf:
        zf.write(real_archive, f"caltech-101/{DS}.tar.gz")
    served.files["/mirror/caltech-101.zip"] = zipped.read_bytes()
    url = served.url("/mirror/caltech-101.zip")
    data_dir = tmp_path / "data"

    target = run_fetch(url, data_dir)

    counts = scan_counts(target)
    assert counts == OFFICIAL_COUNTS
    assert len(counts) == 102 and sum(counts.values()) == 9_145
    assert (target / "BACKGROUND_Google" / "tmp").is_file()
    err = capsys.readouterr().err
    assert f"warning: {url}: sha256 {checksum(zipped).sha256} is not the official" in err
    assert leftovers(data_dir) == []


@pytest.mark.slow
@pytest.mark.real_data
def test_real_archive_cli_killed_mid_extraction_then_completed(
    tmp_path: Path, real_archive: Path
) -> None:
    data_dir = tmp_path / "data"
    command = [
        sys.executable,
        "-m",
        "convtrain",
        "data",
        "fetch",
        "--source",
        str(real_archive),
        "--data-dir",
        str(data_dir),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and len(list(data_dir.glob(f".convtrain-staging-*/{DS}/*"))) < 20
    ):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(data_dir.glob(".convtrain-staging-*")), "the kill should land mid-extraction"
    assert not (data_dir / DS).exists()

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        done.stdout
        == f"CALTECH-101 ready at {data_dir / DS} (102 folders with 9,145 files, structure verified)\n"
    )
    marker = json.loads((data_dir / DS / MARKER_NAME).read_text())
    assert marker["counts"] == OFFICIAL_COUNTS and marker["official"] is False
    assert leftovers(data_dir) == []

    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == ""
    # The marker path: the archive is neither hashed nor extracted (test_second_fetch_is_quick).
    assert "already present and verified" in again.stderr
    assert not list(data_dir.glob(".convtrain-staging-*"))
