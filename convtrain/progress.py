"""How library code tells the user what it is doing without printing: a Reporter.

Long work (downloads, extraction, decoding, evaluation batches) opens a `task` and advances it;
notes and warnings are single lines. The commands pass a reporter that draws on the terminal
(convtrain.commands.console: rich bars, or plain lines off a terminal); QUIET, the default of
every library function, shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[float], None]  # called with the amount of work just done


class Reporter:
    """Shows nothing; the commands' reporter overrides each method."""

    def note(self, text: str) -> None:
        """One line about what is happening."""

    def warning(self, text: str) -> None:
        """One line about something the user should know (shown as `warning: text`)."""

    @contextmanager
    def task(
        self, label: str, total: float | None, *, done: float = 0, unit: str = ""
    ) -> Iterator[Advance]:
        """Work of `total` units (None: unknown), `done` of them already; unit "bytes" or ""."""
        yield _ignore


def _ignore(amount: float) -> None:
    pass


QUIET = Reporter()


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as download sizes are quoted)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
