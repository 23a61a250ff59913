"""A watchdog process that ends a worker stuck waiting for the other workers.

A worker blocked inside TensorFlow's C++ (joining the cluster, a collective op) holds the GIL,
so neither a Python thread nor a signal handler of its own gets to run: the watch has to be
kept from outside. This small process (no TensorFlow) does it. The worker talks to it over a
pipe, one line each: `arm <what>` starts the clock, `feed` restarts it, `disarm` stops it; when
the worker exits the pipe closes and the watchdog ends too. When an armed clock runs out, it
prints one line on the worker's stderr and kills the worker (SIGKILL).

    python -m convtrain.train.watchdog PID SECONDS PREFIX
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any


class Watchdog:
    """The worker's side: starts the watchdog process and keeps it informed."""

    def __init__(
        self,
        seconds: float,
        prefix: str,
        pid: int | None = None,
        stderr: IO[str] | int | None = None,
    ) -> None:
        self.seconds = seconds
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "convtrain.train.watchdog"]
            + [str(pid or os.getpid()), repr(float(seconds)), prefix],
            stdin=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

    def _send(self, line: str) -> None:
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(line.replace("\n", " ") + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the watchdog already acted, or was closed

    def arm(self, what: str) -> None:
        self._send(f"arm {what}")

    def feed(self) -> None:
        self._send("feed")

    def disarm(self) -> None:
        self._send("disarm")

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


def _end(pid: int) -> None:
    # SIGKILL: a multi-worker TensorFlow process blocked in C++ outlived SIGTERM in our tests, and
    # the run directory is consistent after a kill -9 at any moment anyway.
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def watch(
    fd: int,
    pid: int,
    seconds: float,
    prefix: str,
    out: IO[str],
    *,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[..., Any] = select.select,
    read: Callable[[int, int], bytes] = os.read,
    end: Callable[[int], None] = _end,
) -> None:
    """Watch the commands on `fd`; `clock`, `wait`, `read` and `end` are replaceable for tests."""
    what: str | None = None
    deadline = 0.0
    pending = b""
    while True:
        timeout = None if what is None else max(0.0, deadline - clock())
        ready, _, _ = wait([fd], [], [], timeout)
        if not ready:
            print(
                f"error: {prefix}: {what}: no progress from the other workers in {seconds:g} s "
                f"(distribute.timeout); is every worker running?",
                file=out,
                flush=True,
            )
            end(pid)
            return
        chunk = read(fd, 4096)
        if not chunk:
            return  # the worker closed the pipe: it exited
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            command, _, rest = line.decode("utf-8", "replace").partition(" ")
            if command == "arm":
                what = rest
            elif command == "disarm":
                what = None
            deadline = clock() + seconds


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    watch(sys.stdin.fileno(), int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.stderr)
