"""What `convtrain sweep` shows while its study runs, drawn from the engine's events.

A sweep's trial lines are its output, on stdout ("trial 9 complete: value 0.9211 ..."); each
trial process's own lines (its epochs) are on stderr. On a terminal they all scroll above one
live line of rich: trials done of the budget, running, pruned, failed, the best value so far
and the time elapsed. Elsewhere (a log, a pipe, CI=true) they are plain lines, as they were.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

import click
from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from convtrain.commands.console import on_terminal
from convtrain.search.events import Event, Opened, Tally, TrialOutput


def status(tally: Tally, monitor: str) -> str:
    """`1 running, 2 pruned, 0 failed, best val_accuracy 0.9211` (the live line's counts)."""
    best = f"best {monitor} {tally.best:.4f}" if tally.best is not None else "no best yet"
    return f"{tally.running} running, {tally.pruned} pruned, {tally.failed} failed, {best}"


class SweepView:
    """The command's event callback: `with SweepView(workers) as view: run_sweep(..., emit=view)`.

    `out`, `err` and `terminal` are for tests (default: stdout, stderr, detected on stdout).
    """

    def __init__(
        self,
        workers: int,
        out: TextIO | None = None,
        err: TextIO | None = None,
        terminal: bool | None = None,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.prefix = workers > 1  # whose epoch lines these are, when trials run side by side
        self.terminal = on_terminal(self.out) if terminal is None else terminal
        self.monitor = "value"
        self.lock = threading.Lock()  # events come from one thread per worker
        self.progress: Progress | None = None

    def __enter__(self) -> SweepView:
        if self.terminal:
            console = RichConsole(file=self.out, force_terminal=True, highlight=False)
            self.progress = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("trials, {task.fields[status]}"),
                TimeElapsedColumn(),
                console=console,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.task = self.progress.add_task("sweep", total=None, status=status(Tally(), "value"))
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()  # the last count stays on the screen

    def __call__(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, Opened):
                self.monitor = event.monitor
            if isinstance(event, Tally):
                self._count(event)
                return
            text = event.line()
            if isinstance(event, TrialOutput) and self.prefix:
                text = f"[trial {event.number}] {text}"
            if self.progress is not None:
                style = "dim" if isinstance(event, TrialOutput) else None
                self.progress.console.print(text, markup=False, style=style, soft_wrap=True)
            else:
                click.echo(text, file=self.err if isinstance(event, TrialOutput) else self.out)

    def _count(self, tally: Tally) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task,
                total=tally.total,
                completed=tally.done,
                status=status(tally, self.monitor),
            )
