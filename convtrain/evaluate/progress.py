"""A minimal progress display on stderr: a redrawn bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    def __init__(self, label: str, total: int | None, stream: TextIO | None = None):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        of = f"/{self.total}" if self.total else ""
        if not self.tty:
            # Logs and pipes: one line per step, never a carriage return.
            self.stream.write(f"{self.label}: {self.done}{of}\n")
            self.stream.flush()
            return
        filled = WIDTH * self.done // self.total if self.total else 0
        bar = "#" * filled + "-" * (WIDTH - filled)
        elapsed = time.monotonic() - self.start
        self.stream.write(f"\r{self.label} [{bar}] {self.done}{of} {elapsed:.0f}s")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.done:
            self.stream.write("\n")
            self.stream.flush()
