"""Pure rules on trial results: how a trial ended, and which trials are Pareto-optimal."""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "WORDS", "COLLAPSED_DETAIL", "JUDGED", "TrialFacts", "classify", "describe", "count_words",
           "collapse_detail", "pareto_front", "is_finite_number"]

_UNFINISHED_STATES = {"RUNNING", "PENDING", "PAUSED"}


class Outcome(str, enum.Enum):
    """How a trial ended (the ``outcome`` column; ``status`` says it in words: :data:`WORDS`, :func:`describe`)."""

    COMPLETED = "completed"
    PRUNED = "pruned"  # cut by ASHA
    EARLY_STOPPED = "early_stopped"  # its own patience ran out
    DIVERGED = "diverged"
    THRESHOLD = "threshold"
    STOPPED = "stopped"  # stopped before its planned epochs for another reason (time budget, ...)
    FAILED = "failed"
    UNFINISHED = "unfinished"
    COLLAPSED = "collapsed"  # no better than the majority class, or no feature kept


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


#: Every outcome in words, the one vocabulary of every surface: the event lines, the status lines and
#: the live panel of a run, its end summary, the table's ``status``, the report and ``best``. Each reads
#: as a count (``8 stopped early by patience``) and, with :func:`describe`, as a trial's status
#: (``stopped early by patience at epoch 25``).
WORDS: dict[Outcome, str] = {
    Outcome.COMPLETED: "completed",
    Outcome.EARLY_STOPPED: "stopped early by patience",
    Outcome.PRUNED: "cut by ASHA",
    Outcome.THRESHOLD: "reached the target",
    Outcome.DIVERGED: "diverged",
    Outcome.COLLAPSED: "collapsed",
    Outcome.STOPPED: "stopped short",
    Outcome.FAILED: "failed",
    Outcome.UNFINISHED: "unfinished",
}

#: What a collapsed trial is, when its detection gives no detail of its own.
COLLAPSED_DETAIL = "no better than the majority class, or no feature kept"

#: Outcomes whose values are judged for a collapse (:func:`collapse_detail`): the trials that ran their course.
#: A trial ASHA cut stays "cut by ASHA" (what stopped it): it is never on the front or picked either way.
JUDGED = frozenset({Outcome.COMPLETED, Outcome.EARLY_STOPPED, Outcome.THRESHOLD, Outcome.STOPPED})


def collapse_detail(kept: float | None, epoch: Any, best_accuracy: float | None, majority: float | None) -> str | None:
    """Why a trial learned nothing, or None: no feature kept at its best epoch (``kept`` 0), or a
    best validation accuracy no better than always answering the majority class (``majority``).

    The detail :func:`describe` puts after ``collapsed:`` (``no feature kept at epoch 12``).
    """
    if is_finite_number(kept) and kept <= 0:
        return f"no feature kept at epoch {epoch}"
    if is_finite_number(best_accuracy) and is_finite_number(majority) and best_accuracy <= majority + 1e-9:
        return (f"best validation accuracy {best_accuracy:.3f}, no better than the majority class "
                f"({majority:.3f})")
    return None


_STOP_REASONS = {"early_stopping": Outcome.EARLY_STOPPED, "diverged": Outcome.DIVERGED,
                 "threshold": Outcome.THRESHOLD}


def describe(outcome: Outcome | str, epoch: int | None = None, *, planned: int | None = None,
             detail: str | None = None) -> str:
    """A trial's status in words: ``cut by ASHA at epoch 4``, ``completed``, ``failed: ValueError: ...``.

    ``detail``: the error of a failed trial, what a collapsed one collapsed to, the reason a
    trial stopped short; ``planned``: the epochs a trial stopped short of.
    """
    outcome = Outcome(outcome)
    words = WORDS[outcome]
    if outcome is Outcome.COMPLETED:
        return words
    if outcome is Outcome.FAILED:
        return f"{words}: {detail or 'see error.txt in its folder'}"
    if outcome is Outcome.COLLAPSED:
        return f"{words}: {detail or COLLAPSED_DETAIL}"
    if outcome is Outcome.UNFINISHED:
        return f"{words} at epoch {epoch}" if epoch else f"{words}, no result yet"
    if outcome is Outcome.STOPPED:
        why = f" ({detail})" if detail else ""
        of = f" of {planned}" if planned and not detail else ""
        return f"{words}{why} at epoch {epoch}{of}"
    return f"{words} at epoch {epoch}"


def count_words(counts: Mapping[Outcome | str, int]) -> str:
    """``2 completed, 8 stopped early by patience, 2 cut by ASHA``: every outcome counted, in one order.

    The numbers are the ones given, so they add up to the trials counted; outcomes with none are left out.
    """
    by_outcome = {Outcome(k): int(n) for k, n in counts.items() if n}
    return ", ".join(f"{by_outcome[o]} {WORDS[o]}" for o in WORDS if o in by_outcome)


def classify(facts: TrialFacts) -> tuple[Outcome, str]:
    """A trial's outcome and its status in words (:func:`describe`: ``cut by ASHA at epoch 4``, ...)."""
    k = facts.epochs_run
    if facts.tune_status == "ERROR" or (facts.tune_status is None and facts.error and not facts.final):
        return Outcome.FAILED, describe(Outcome.FAILED, k, detail=facts.error)
    if facts.tune_status in _UNFINISHED_STATES or not facts.final:
        return Outcome.UNFINISHED, describe(Outcome.UNFINISHED, k)
    if facts.stop_reason:
        outcome = _STOP_REASONS.get(facts.stop_reason, Outcome.STOPPED)
        detail = facts.stop_reason if outcome is Outcome.STOPPED else None
        return outcome, describe(outcome, k, detail=detail)
    if facts.last_value is not None and not math.isfinite(facts.last_value):
        return Outcome.DIVERGED, describe(Outcome.DIVERGED, k)
    short = bool(facts.planned_epochs and k is not None and k < facts.planned_epochs)
    if facts.pruned or (facts.pruned is None and short):
        return Outcome.PRUNED, describe(Outcome.PRUNED, k)
    if short:
        return Outcome.STOPPED, describe(Outcome.STOPPED, k, planned=facts.planned_epochs)
    return Outcome.COMPLETED, describe(Outcome.COMPLETED, k)


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
