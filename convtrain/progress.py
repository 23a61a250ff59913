"""Progress of counted work on stderr: a redrawn bar on a terminal, a line every 10% elsewhere.

Used for long loops (decoding images, evaluating batches); downloads and extraction count
bytes instead and use convtrain.data.byte_progress.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """A progress bar on stderr; plain lines every 10% when stderr is not a terminal (CI logs)."""

    def __init__(self, total: int, label: str, *, enabled: bool = True):
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and total > 0
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        frac = self.done / self.total
        elapsed = time.perf_counter() - self.start
        if self.tty:
            bar = "#" * int(frac * 30)
            print(
                f"\r{self.label} [{bar:<30}] {self.done}/{self.total} {elapsed:.1f}s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            print(f"{self.label}: {self.done}/{self.total} ({elapsed:.1f}s)", file=sys.stderr)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)
