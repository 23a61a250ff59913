"""Resumable HTTP download with the standard library: a `.part` file continued with HTTP Range."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from convtrain.data.verify import Checksum, sha256_file
from convtrain.errors import ConvtrainError, WriteFailed
from convtrain.io import writing
from convtrain.progress import QUIET, Reporter, human_bytes

CHUNK = 1 << 16
# Errors after the response started: the connection broke, so resuming can help.
BROKEN = (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


class _Interrupted(Exception):
    """The body stopped early; the bytes received so far are in the `.part` file."""


def download(
    url: str,
    dest: Path,
    *,
    expected: Checksum | None,
    attempts: int = 3,
    retry_delay: float = 0.5,
    timeout: float = 30.0,
    reporter: Reporter = QUIET,
) -> Checksum:
    """Download `url` to `dest` through `dest.part`, resuming it; verify against `expected`.

    A wrong size or checksum deletes the bad file; an interruption keeps the `.part` so the
    next call resumes it. Returns the checksum of the complete file.
    """
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _fetch_into(url, part, expected, timeout, reporter)
            break
        except _Interrupted as exc:
            if attempt == attempts:
                raise ConvtrainError(
                    f"download of {url} interrupted ({exc}); kept the {human_bytes(_size(part))} "
                    f"received in {part}: run the command again to resume"
                ) from None
            reporter.note(f"download interrupted ({exc}); resuming from {human_bytes(_size(part))}")
            time.sleep(retry_delay)
    received = sha256_file(part)
    if expected is not None and received != expected:
        part.unlink()
        raise ConvtrainError(
            f"download of {url}: expected {expected.describe()}, received {received.describe()}; "
            f"deleted the bad file {part}: run the command again to retry"
        )
    part.replace(dest)
    return received


def _fetch_into(
    url: str, part: Path, expected: Checksum | None, timeout: float, reporter: Reporter
) -> None:
    offset = _size(part)
    if expected is not None and offset == expected.size:
        return  # complete already: only the checksum is left to check
    request = urllib.request.Request(url, headers={"User-Agent": "convtrain"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            if exc.headers.get("Content-Range", "") == f"bytes */{offset}":
                return  # the .part already holds the whole file
            # The .part is longer than this file, so not a prefix of it: start again.
            part.unlink()
            raise _Interrupted("the server refused to resume the partial file") from None
        raise ConvtrainError(f"download of {url}: HTTP error {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ConvtrainError(f"cannot reach {url}: {exc.reason}") from None
    except BROKEN as exc:
        raise ConvtrainError(f"cannot reach {url}: {exc}") from None
    with response:
        resumed = offset > 0 and response.status == 206 and _range_start(response) == offset
        if not resumed:
            offset = 0  # no Range support (or a full answer): restart from the first byte
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        try:
            label = f"downloading {part.name[: -len('.part')]}"
            with (
                writing(part, total - offset if total is not None else None),
                open(part, "ab" if resumed else "wb") as out,
                reporter.task(label, total, done=offset, unit="bytes") as advance,
            ):
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    advance(len(chunk))
        except BROKEN as exc:
            raise _Interrupted(str(exc) or type(exc).__name__) from None
        except WriteFailed as exc:  # what was received stays in the .part
            raise exc.replace(then="run the command again to resume the download") from None
    # http.client returns a short body silently when the server closes early.
    if total is not None and _size(part) < total:
        raise _Interrupted(f"received {_size(part):,} of {total:,} bytes")


def _range_start(response: http.client.HTTPResponse) -> int | None:
    content_range = response.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
