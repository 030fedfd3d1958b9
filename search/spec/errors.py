"""Spec problems: collected, located (file, line, dotted key) and reported together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainables.suggest import did_you_mean  # one helper for both packages; re-exported

__all__ = ["Problem", "SpecError", "did_you_mean"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec."""

    path: str  # dotted key, e.g. "space.lr.low"; "" for the whole file
    message: str
    line: int | None = None

    def format(self, source: str | Path | None) -> str:
        where = str(source) if source else "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class SpecError(ValueError):
    """A spec failed validation; holds every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem], source: str | Path | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in {self.source or 'spec'}:"
        return "\n".join([head, *(f"  {p.format(self.source)}" for p in self.problems)])
