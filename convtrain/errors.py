"""User-facing errors: printed as one line each, exit code 2, never a traceback."""

from __future__ import annotations


class ConvtrainError(Exception):
    """A mistake the user can fix (bad config, missing data, unreadable run dir...)."""

    exit_code = 2

    def lines(self) -> list[str]:
        return [str(self)]


class ConfigError(ConvtrainError):
    """One or more problems in an experiment config, each naming its YAML path."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {p}" for p in self.problems]


class WriteFailed(ConvtrainError):
    """A file could not be written: a full disk or an unwritable folder (convtrain.io decides).

    Exit code 1 for such an environment failure (2 for a path the user got wrong). `then` is
    what to run once fixed, which the command knows better than the writer (`--resume RUN`).
    """

    def __init__(
        self,
        path: object,
        reason: str,
        remedy: str,
        then: str = "run the command again",
        exit_code: int = 1,
    ):
        self.path, self.reason, self.remedy, self.then = path, reason, remedy, then
        self.exit_code = exit_code
        super().__init__(self.lines()[0])

    def lines(self) -> list[str]:
        return [f"{self.path}: cannot write it ({self.reason}); {self.remedy}, then {self.then}"]

    def replace(self, **changes: object) -> WriteFailed:
        """The same failure, told about another path or with another next step."""
        fields = {k: getattr(self, k) for k in ("path", "reason", "remedy", "then", "exit_code")}
        return WriteFailed(**{**fields, **changes})  # type: ignore[arg-type]


def human_size(n: int) -> str:
    """Bytes as df -h counts them (KiB, MiB, GiB)."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")
