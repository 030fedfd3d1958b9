"""Pure rules on trial results: how a trial ended, and which trials are Pareto-optimal."""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "TrialFacts", "classify", "pareto_front", "is_finite_number"]

_UNFINISHED_STATES = {"RUNNING", "PENDING", "PAUSED"}


class Outcome(str, enum.Enum):
    """How a trial ended (the ``outcome`` column; ``status`` says it in words)."""

    COMPLETED = "completed"
    PRUNED = "pruned"  # stopped by ASHA
    EARLY_STOPPED = "early_stopped"  # its own patience ran out
    DIVERGED = "diverged"
    THRESHOLD = "threshold"
    STOPPED = "stopped"  # stopped before its planned epochs for another reason (time budget, ...)
    FAILED = "failed"
    UNFINISHED = "unfinished"


@dataclass(frozen=True)
class TrialFacts:
    """What :func:`classify` needs to know about one trial."""

    epochs_run: int | None
    final: bool  # Tune wrote its last result (``done``)
    tune_status: str | None = None  # None: not in Tune's state file
    error: str | None = None
    stop_reason: str = ""
    last_value: float | None = None
    pruned: bool | None = None  # None: no searcher state, so unknown
    planned_epochs: int | None = None


_STOP_REASONS = {
    "early_stopping": (Outcome.EARLY_STOPPED, "stopped early by patience at epoch {k}"),
    "diverged": (Outcome.DIVERGED, "diverged at epoch {k}"),
    "threshold": (Outcome.THRESHOLD, "reached its target at epoch {k}"),
}


def classify(facts: TrialFacts) -> tuple[Outcome, str]:
    """A trial's outcome and its status in words (``stopped by ASHA at epoch 4``, ...)."""
    k = facts.epochs_run
    if facts.tune_status == "ERROR" or (facts.tune_status is None and facts.error and not facts.final):
        return Outcome.FAILED, f"failed: {facts.error or 'see error.txt in its folder'}"
    if facts.tune_status in _UNFINISHED_STATES or not facts.final:
        return Outcome.UNFINISHED, f"unfinished at epoch {k}" if k else "unfinished, no result yet"
    if facts.stop_reason:
        outcome, words = _STOP_REASONS.get(facts.stop_reason, (Outcome.STOPPED, f"stopped ({facts.stop_reason}) at epoch {{k}}"))
        return outcome, words.format(k=k)
    if facts.last_value is not None and not math.isfinite(facts.last_value):
        return Outcome.DIVERGED, f"diverged at epoch {k}"
    short = bool(facts.planned_epochs and k is not None and k < facts.planned_epochs)
    if facts.pruned or (facts.pruned is None and short):
        return Outcome.PRUNED, f"stopped by ASHA at epoch {k}"
    if short:
        return Outcome.STOPPED, f"stopped at epoch {k} of {facts.planned_epochs}"
    return Outcome.COMPLETED, "completed"


def pareto_front(scores: list[float], counts: list[float], mode: str) -> list[bool]:
    """Which points are Pareto-optimal: best score (``mode``) for fewest features.

    A point is dominated when another is at least as good on both and strictly better on one.
    Points with a missing or non-finite value are never on the front.
    """
    sign = 1.0 if mode == "max" else -1.0
    points = [(sign * s, -c) if is_finite_number(s) and is_finite_number(c) else None for s, c in zip(scores, counts)]
    front = []
    for i, p in enumerate(points):
        front.append(p is not None and not any(
            q is not None and j != i and q[0] >= p[0] and q[1] >= p[1] and q != p for j, q in enumerate(points)))
    return front


def is_finite_number(value: Any) -> bool:
    """A real, finite number (numpy's included; bools and NaN are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
