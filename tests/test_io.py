"""convtrain.io's atomic writes: a process dying at any moment leaves the old file or the new one.

Each crash happens in a child process, stopped exactly where the test wants it: a hook replaces
the call at that point with os._exit (the process ends there, no finally block runs), or the
child is killed with SIGKILL while it writes in a loop.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from convtrain.io import atomic_save, atomic_write_json, atomic_write_text

OLD = {"status": "running", "completed_epochs": 3}
NEW = {"status": "completed", "completed_epochs": 4, "history": list(range(10_000))}


def crash(hook: str, write: str, path: Path) -> int:
    """Run `hook` (which ends the process somewhere inside the write), then `write`."""
    code = f"import os, pathlib, sys\nfrom convtrain import io\n{hook}\n{write}\n"
    return subprocess.run([sys.executable, "-c", code, str(path)]).returncode


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    atomic_write_json(path, OLD)
    return path


def test_a_crash_between_write_and_rename_leaves_the_old_file(old_file: Path) -> None:
    hook = "os.replace = lambda *args: os._exit(9)  # the process ends where the rename would be"
    write = f"io.atomic_write_json(sys.argv[1], {NEW!r})"
    assert crash(hook, write, old_file) == 9
    assert json.loads(old_file.read_text()) == OLD
    # The new content was complete (and flushed to disk) in a hidden temporary file beside it.
    (leftover,) = [p for p in old_file.parent.iterdir() if p != old_file]
    assert leftover.name.startswith(".state.json.") and leftover.name.endswith(".tmp")
    assert json.loads(leftover.read_text()) == NEW


def test_a_crash_in_the_middle_of_the_write_leaves_the_old_file(old_file: Path) -> None:
    hook = (
        "real = pathlib.Path.write_bytes\n"
        "def half(self, data):\n"
        "    real(self, data[: len(data) // 2])\n"
        "    os._exit(9)\n"
        "pathlib.Path.write_bytes = half"
    )
    write = f"io.atomic_write_json(sys.argv[1], {NEW!r})"
    assert crash(hook, write, old_file) == 9
    assert json.loads(old_file.read_text()) == OLD


def test_a_crash_inside_a_save_callback_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "last.keras"
    path.write_bytes(b"old checkpoint")
    write = (
        "def save(tmp):\n"
        "    tmp.write_bytes(b'half a new checkp')\n"
        "    os._exit(9)\n"
        "io.atomic_save(sys.argv[1], save, suffix='.keras')"
    )
    assert crash("", write, path) == 9
    assert path.read_bytes() == b"old checkpoint"


def test_sigkill_while_rewriting_leaves_one_whole_version(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    versions = {"a": "a" * 200_000 + "\n", "b": "b" * 300_000 + "\n"}
    atomic_write_text(path, versions["a"])
    loop = (
        "texts = ['a' * 200_000 + '\\n', 'b' * 300_000 + '\\n']\n"
        "print('writing', flush=True)\n"
        "while True:\n"
        "    for text in texts:\n"
        "        io.atomic_write_text(sys.argv[1], text)"
    )
    code = f"import sys\nfrom convtrain import io\n{loop}\n"
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"writing\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
    assert path.read_text() in versions.values()


def test_the_new_file_gets_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_save(tmp_path / "b.bin", lambda p: p.write_bytes(b"y"), suffix=".bin")
    finally:
        os.umask(mask)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]  # no temp file left
