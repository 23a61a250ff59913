"""A byte-count progress bar on stderr: redrawn in place on a terminal, a line every few seconds in logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class ByteProgress:
    """Counts bytes towards `total` (None when unknown); `done` may start above zero when resuming."""

    def __init__(self, label: str, total: int | None, done: int = 0, stream: TextIO | None = None):
        self.label = label
        self.total = total
        self.done = done
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        # A terminal gets a smooth bar; a log file or CI console a line every few seconds.
        self.interval = 0.2 if self.tty else 5.0
        self._start_done = done
        self._start = time.monotonic()
        self._last_draw = self._start
        self._closed = False

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._draw(time.monotonic())
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _draw(self, now: float) -> None:
        rate = (self.done - self._start_done) / max(now - self._start, 1e-6)
        amount = human_bytes(self.done)
        bar = ""
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * BAR_WIDTH)
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%} "
            amount += f" / {human_bytes(self.total)}"
        line = f"{self.label}: {bar}{amount}  {human_bytes(rate)}/s"
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
