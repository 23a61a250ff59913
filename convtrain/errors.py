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
