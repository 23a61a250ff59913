"""A command's result onto a stdout that cannot take it, in a real process.

A full disk (/dev/full) is one `error:` line naming stdout, exit code 1; a reader that closed
its end of the pipe ends the command quietly (exit code 1, nothing on stderr). No traceback,
and nothing from the interpreter's last flush ("Exception ignored ...").
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_compare import fake_run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "stridednet.yaml")
FULL = "error: stdout: cannot write it (no space left on device); free some space or send the output elsewhere, then run the command again"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("runs")
    return [str(fake_run(root, f"r{n}", n, 0.5, 0.5)) for n in (16, 32)]


def commands(runs: list[str], out: Path) -> Iterator[list[str]]:
    yield ["inspect", CONFIG]
    yield ["inspect", CONFIG, "--format", "json"]
    yield ["schema"]
    yield ["--help"]
    yield ["compare", *runs, "--format", "markdown", "--out", str(out)]


def run(args: list[str], stdout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_each_command_onto_a_full_disk_is_one_line(runs: list[str], tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        for args in commands(runs, tmp_path):
            result = run(args, full.fileno())
            assert result.returncode == 1, (args, result.stderr)
            assert result.stderr.splitlines()[-1] == FULL, (args, result.stderr)
            assert "Traceback" not in result.stderr and "Exception" not in result.stderr


def test_each_command_into_a_closed_pipe_ends_quietly(runs: list[str], tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write: every write fails (EPIPE)
    try:
        for args in commands(runs, tmp_path):
            result = run(args, write)
            assert result.returncode == 1, (args, result.stderr)
            assert "Traceback" not in result.stderr and "Exception" not in result.stderr
            assert "error:" not in result.stderr and "BrokenPipe" not in result.stderr
    finally:
        os.close(write)


def test_the_same_commands_still_print_their_result(runs: list[str], tmp_path: Path) -> None:
    # The guarded stdout is the same stream to a reader: every command's result, whole.
    for args in commands(runs, tmp_path):
        result = run(args, subprocess.PIPE)
        assert result.returncode == 0, (args, result.stderr)
        assert len(result.stdout) > 200, args
    schema = run(["schema"], subprocess.PIPE).stdout
    assert schema == (ROOT / "schema" / "convtrain.schema.json").read_text()
