"""What the commands show while they work: notes, warnings and progress, all on stderr.

On a terminal, long work is a rich progress bar with its rate and time left; elsewhere (a log
file, a pipe, CI=true) it is a plain line at every tenth of the work and one when it ends, so a
log stays short and readable. stdout holds only a command's result (tables, JSON, summaries).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import click
from rich.console import Console as RichConsole
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from convtrain.progress import Advance, Reporter, human_bytes


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def on_terminal(stream: TextIO) -> bool:
    """A live bar only on an interactive terminal; CI logs (CI=true) get plain lines."""
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return stream.isatty() and not ci and os.environ.get("TERM") != "dumb"


class Console(Reporter):
    """The commands' reporter. `stream` and `terminal` are for tests (default: stderr, detected)."""

    def __init__(self, stream: TextIO | None = None, terminal: bool | None = None) -> None:
        self._stream = stream
        self._terminal = terminal

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def note(self, text: str) -> None:
        click.echo(text, file=self.stream)

    def warning(self, text: str) -> None:
        click.echo(f"warning: {text}", file=self.stream)

    @contextmanager
    def task(
        self, label: str, total: float | None, *, done: float = 0, unit: str = ""
    ) -> Iterator[Advance]:
        if total == 0:
            yield lambda amount: None  # nothing to do, nothing to show
            return
        terminal = on_terminal(self.stream) if self._terminal is None else self._terminal
        work = _Bar if terminal else _Lines
        with work(self.stream, label, total, done, unit == "bytes") as advance:
            yield advance


class _Bar:
    """rich's bar: amount, rate and time left, redrawn in place."""

    def __init__(self, stream: TextIO, label: str, total: float | None, done: float, nbytes: bool):
        columns: list[ProgressColumn | str] = [TextColumn("{task.description}"), BarColumn()]
        if nbytes:
            columns += [TaskProgressColumn(), DownloadColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn(), TextColumn("{task.fields[rate]}")]
        columns.append(TimeRemainingColumn())
        console = RichConsole(file=stream, force_terminal=True, highlight=False)
        self.progress = Progress(*columns, console=console, transient=False)
        self.task = self.progress.add_task(label, total=total, completed=done, rate="")
        self.nbytes = nbytes

    def __enter__(self) -> Advance:
        self.progress.start()
        return self.advance

    def advance(self, amount: float) -> None:
        self.progress.advance(self.task, amount)
        if not self.nbytes:
            speed = self.progress.tasks[0].speed
            self.progress.update(self.task, rate=f"{speed:.1f}/s" if speed else "")

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class _Lines:
    """Plain lines: one at every tenth of the work (every 5 s when the total is unknown), one at the end."""

    def __init__(self, stream: TextIO, label: str, total: float | None, done: float, nbytes: bool):
        self.stream, self.label, self.total, self.done = stream, label, total, done
        self.nbytes = nbytes
        self.start_done, self.start = done, time.monotonic()
        self.shown = self._step(done)
        self.last_line = self.start

    def __enter__(self) -> Advance:
        return self.advance

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._line(finished=True)

    def _step(self, done: float) -> int:
        return int(10 * done / self.total) if self.total else 0

    def advance(self, amount: float) -> None:
        self.done += amount
        now = time.monotonic()
        if self.total:
            step = self._step(self.done)
            if step > self.shown and self.done < self.total:
                self.shown = step
                self._line(finished=False)
        elif now - self.last_line >= 5.0:
            self.last_line = now
            self._line(finished=False)

    def _amount(self, n: float) -> str:
        return human_bytes(n) if self.nbytes else f"{n:.0f}"

    def _line(self, finished: bool) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = (self.done - self.start_done) / elapsed
        amount = self._amount(self.done)
        details = []
        if self.total:
            amount += (" / " if self.nbytes else "/") + self._amount(self.total)
            details.append(f"{min(self.done / self.total, 1.0):.0%}")
        details.append(f"{human_bytes(rate)}/s" if self.nbytes else f"{rate:.1f}/s")
        if finished:
            details.append(f"done in {elapsed:.1f} s")
        elif self.total and rate > 0:
            details.append(f"ETA {_clock((self.total - self.done) / rate)}")
        click.echo(f"{self.label}: {amount} ({', '.join(details)})", file=self.stream)
