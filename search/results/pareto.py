"""A multi-objective search's answer: the Pareto front of the results table, and one trial picked from it.

A trial is on the front when it ended as the searcher counts a finished trial (it ran to its
end, or stopped itself: patience, a threshold; Optuna holds exactly these as COMPLETE), has a
finite value for every objective, and no other such trial is at least as good on every
objective and better on one. Trials cut by ASHA, diverged, failed or unfinished are never on
it (their values are from an epoch they would have gone past), nor are collapsed ones (no feature
kept, or no better than the majority class: chance's values, which would otherwise sit on the
front for their 0 features; the table's ``outcome`` says ``collapsed``). The values are those of the
table's ``best_<metric>`` columns: every objective at the trial's best epoch.

The pick (:func:`pick`) follows the spec's ``select`` (:class:`~search.spec.models.SelectSpec`)
or the rule given to ``best``: bounds first (``limits``), then the trials within
``tolerance`` of the best first objective, of which the one best on the later objectives in
order; without a tolerance, the one best on the first objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from search.results.outcomes import Outcome

__all__ = ["FRONT_OUTCOMES", "PARETO_COLUMN", "pareto_mask", "pick", "PickError", "describe_rule"]

#: Outcomes the searcher tells Optuna as COMPLETE: the trials that can be on the front.
FRONT_OUTCOMES = frozenset({Outcome.COMPLETED.value, Outcome.EARLY_STOPPED.value, Outcome.THRESHOLD.value})

#: The table's column marking the front (multi-objective experiments only).
PARETO_COLUMN = "pareto"


class PickError(ValueError):
    """No trial of the front satisfies the rule (the message says which bound left none)."""


def _columns(objectives: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"best_{metric}" for metric, _ in objectives]


def _as_max(table: pd.DataFrame, objectives: tuple[tuple[str, str], ...]) -> np.ndarray:
    """The objectives as a (trials x objectives) array where larger is better everywhere."""
    values = table[_columns(objectives)].to_numpy(dtype=float, na_value=math.nan)
    signs = np.array([1.0 if mode == "max" else -1.0 for _, mode in objectives])
    return values * signs


def pareto_mask(table: pd.DataFrame, objectives: tuple[tuple[str, str], ...]) -> pd.Series:
    """True for the table's rows on the Pareto front (see the module's rule)."""
    eligible = table["outcome"].isin(FRONT_OUTCOMES).to_numpy().copy()
    values = _as_max(table, objectives)
    eligible &= np.isfinite(values).all(axis=1)
    candidates = np.flatnonzero(eligible)
    on_front = np.zeros(len(table), dtype=bool)
    points = values[candidates]
    for row, point in zip(candidates, points):
        dominated = ((points >= point).all(axis=1) & (points > point).any(axis=1)).any()
        on_front[row] = not dominated
    return pd.Series(on_front, index=table.index, name=PARETO_COLUMN)


def describe_rule(objectives: tuple[tuple[str, str], ...], tolerance: float | None,
                  limits: Mapping[str, float]) -> str:
    """The rule in words: ``num_selected <= 25; then fewest num_selected within 0.01 of the best val_accuracy``."""
    modes = dict(objectives)
    (first, first_mode), rest = objectives[0], objectives[1:]
    words = [", ".join(f"{m} {'<=' if modes.get(m) == 'min' else '>='} {b:g}" for m, b in limits.items())] if limits else []
    if tolerance is not None and rest:
        second, second_mode = rest[0]
        words.append(f"{'fewest' if second_mode == 'min' else 'most'} {second} within {tolerance:g} of the best {first}")
    else:
        words.append(f"{'highest' if first_mode == 'max' else 'lowest'} {first}")
    return "; then ".join(words)


def pick(front: pd.DataFrame, objectives: tuple[tuple[str, str], ...], tolerance: float | None = None,
         limits: Mapping[str, float] | None = None) -> Any:
    """The index (in ``front``) of the trial the rule picks from the front's rows.

    Raises:
        PickError: the front is empty, or no trial of it meets the limits.
    """
    limits = dict(limits or {})
    modes = dict(objectives)
    unknown = [m for m in limits if m not in modes]
    if unknown:
        raise PickError(f"limit on {', '.join(unknown)}: not an objective (objectives: {', '.join(modes)})")
    if front.empty:
        raise PickError("the Pareto front is empty: no trial finished with every objective reported")
    kept = front
    for metric, bound in limits.items():
        column = kept[f"best_{metric}"]
        inside = column <= bound if modes[metric] == "min" else column >= bound
        if not inside.any():
            closest = column.min() if modes[metric] == "min" else column.max()
            raise PickError(f"no trial of the front has {metric} {'<=' if modes[metric] == 'min' else '>='} {bound:g} "
                            f"(the front's best is {closest:g}); loosen the limit")
        kept = kept[inside]
    values = _as_max(kept, objectives)
    if tolerance is not None and len(objectives) > 1:
        best_first = np.nanmax(values[:, 0])
        within = values[:, 0] >= best_first - tolerance - 1e-12
        kept, values = kept[within], values[within]
        order = list(range(1, len(objectives))) + [0]  # the later objectives, then the first for ties
    else:
        order = list(range(len(objectives)))
    # Lexicographic on the chosen order (larger is better), then the lower trial id.
    keys = [(tuple(values[i, j] for j in order), str(tid)) for i, tid in enumerate(kept["trial_id"])]
    best = max(range(len(keys)), key=lambda i: (keys[i][0], _reverse(keys[i][1])))
    return kept.index[best]


def _reverse(text: str) -> tuple[int, ...]:
    """A key that sorts strings in reverse, so that max() prefers the lower trial id on a tie."""
    return tuple(-ord(c) for c in text) + (0,)
