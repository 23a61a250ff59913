"""Writing files: atomically, and with one handler for a full disk or an unwritable folder.

An atomic write goes to a temporary file beside the target, then renames it over: a crash
(even kill -9) or a full disk leaves either the old file or the new one, never a torn one.
Every writer of convtrain (these atomic writes, and the few that stream: download, extraction,
the image cache, TensorBoard) turns an OSError into `write_failure`'s one line, exit code 1.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convtrain.errors import WriteFailed, human_size

_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# The machine's fault, not the command line's: exit code 1.
ENVIRONMENT = _SPACE | {errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _free(path: Path) -> int | None:
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def write_failure(
    path: str | Path,
    exc: OSError,
    needed: int | None = None,
    written: int = 0,
    remedy: str | None = None,
) -> WriteFailed:
    """The one line for an OSError met while writing `path`.

    `needed` is what the file needs (exact, or the size of the version it replaces), `written`
    how much reached the disk before the error; `remedy` replaces the default advice.
    """
    path = Path(path)
    code = exc.errno
    reason = (os.strerror(code) if code else str(exc) or type(exc).__name__).lower()
    folder = path.parent
    if code in _SPACE:
        free = _free(folder)
        parts = [f"needs about {human_size(needed)}" if needed else ""]
        if not needed and written:
            parts[0] = f"needs more than the {human_size(written)} written"
        parts.append(f"{human_size(free)} free" if free is not None else "")
        sizes = ", ".join(p for p in parts if p)
        reason = f"{reason}: {sizes}" if sizes else reason
        default = "free some space"
    elif code in (errno.EACCES, errno.EPERM):
        default = f"make {folder} writable for this user, or write somewhere else"
    elif code == errno.EROFS:
        default = f"{folder} is on a read-only file system: write somewhere else"
    elif code == errno.EIO:
        default = "check the disk (an input/output error)"
    else:
        default = "check that path"
    return WriteFailed(path, reason, remedy or default, exit_code=1 if code in ENVIRONMENT else 2)


@contextmanager
def writing(
    path: str | Path, needed: int | None = None, remedy: str | None = None
) -> Iterator[None]:
    """An OSError of the system inside becomes `write_failure` for `path` (streaming writers).

    Not the network's (a download streams into the file), nor one without an errno (a corrupt
    gzip stream being extracted is an OSError too): those are the caller's to word.
    """
    try:
        yield
    except (ConnectionError, TimeoutError):
        raise
    except OSError as exc:
        if exc.errno is None:
            raise
        raise write_failure(path, exc, needed, remedy=remedy) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(
    path: Path, write: Callable[[Path], None], suffix: str, needed: int | None, fresh: bool
) -> None:
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent
        )
        os.close(fd)
        tmp = Path(name)
        if fresh:
            tmp.unlink()  # some writers (Keras) refuse to overwrite
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        written = _size(tmp)
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # first, so that the message counts the space it held
        raise write_failure(path, exc, needed or _size(path), written) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _atomic(Path(path), lambda p: p.write_bytes(data), "", len(data), fresh=False)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(
    path: str | Path, save: Callable[[Path], None], suffix: str = "", needed: int | None = None
) -> None:
    """Let `save` write a new temporary file (with `suffix`, e.g. '.keras'), then rename it.

    `needed`: the size expected, for the message on a full disk (default: the current file's).
    """
    _atomic(Path(path), save, suffix, needed, fresh=True)
