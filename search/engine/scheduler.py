"""ASHA on the trial's own epoch, telling the searcher which trials it cut; MO-ASHA for several objectives.

With one metric (one objective, or an explicit ``scheduler.metric``) a rung is Ray's own:
a trial reaching it continues when its value is at least the ``1 - 1/η`` percentile
(η: the reduction factor) of the values the other trials recorded there.

With several objectives and no ``scheduler.metric``, a rung is MO-ASHA's (Schmucker et al.,
"Multi-objective Asynchronous Successive Halving", 2021): a cut on one objective would starve
one side of the front (in ``[val_accuracy, num_selected]``, the sparse trials, a little less
accurate at an early rung). The values at a rung (every objective of every trial recorded
there, the new trial's included) are ranked by non-dominated sorting, ties within a front
broken by crowding distance (larger is better), and the trial goes on when its rank is in
the top ``1/η`` by Ray's own cutoff, applied to ranks instead of values (:func:`continues_at_rung`).
docs/moasha.md has the rule and its cases.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search.internals import Bracket, bracket_rungs

from search.engine.searcher import EPOCH, PruningAwareOptunaSearch

__all__ = ["PruningASHA", "pareto_fronts", "crowding_distances", "rung_ranks", "continues_at_rung"]

log = logging.getLogger(__name__)

#: One trial's objectives at a rung, each signed so that larger is better (as Ray's rungs store
#: ``metric_op * value`` for one metric).
Point = tuple[float, ...]


def pareto_fronts(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-dominated sorting (larger is better on every axis): each point's front.

    Front 0 holds the points no other point dominates, front 1 those dominated only by
    front 0, and so on. A point dominates another when it is at least as good on every axis
    and better on one; equal points do not dominate each other.
    """
    values = np.asarray(points, dtype=float).reshape(len(points), -1)
    at_least = (values[:, None, :] >= values[None, :, :]).all(axis=2)
    better = (values[:, None, :] > values[None, :, :]).any(axis=2)
    dominates = at_least & better  # [i, j]: i dominates j
    fronts = np.full(len(values), -1)
    remaining = np.ones(len(values), dtype=bool)
    front = 0
    while remaining.any():
        beaten = dominates[np.ix_(remaining, remaining)].any(axis=0)
        members = np.flatnonzero(remaining)[~beaten]
        fronts[members] = front
        remaining[members] = False
        front += 1
    return fronts.tolist()


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each point of one front (larger: a less crowded part of it).

    Per axis, the points sorted on it: the two ends get infinity, each other point the gap
    between its two neighbours divided by the axis's span over the front; the distances add up
    over the axes. An axis on which every point is equal adds nothing. Equal points get the same
    distance (computed once, so that neither the order of arrival nor a twin decides).
    """
    if not len(points):
        return []
    values = np.asarray(points, dtype=float).reshape(len(points), -1)
    unique, inverse = np.unique(values, axis=0, return_inverse=True)
    distance = np.zeros(len(unique))
    for column in unique.T:
        span = column.max() - column.min()
        if span <= 0:
            continue
        order = np.argsort(column, kind="stable")
        distance[order[0]] = distance[order[-1]] = math.inf
        distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance[np.ravel(inverse)].tolist()


def rung_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """For each point, how many of the others rank strictly ahead of it.

    Ahead: in a lower front, or in the same front with a larger crowding distance (within that
    front). Points in one front with equal distances (the two ends, both infinite) are tied.
    """
    values = np.asarray(points, dtype=float).reshape(len(points), -1)
    fronts = np.asarray(pareto_fronts(values))
    crowding = np.zeros(len(values))
    for front in np.unique(fronts):
        members = np.flatnonzero(fronts == front)
        crowding[members] = crowding_distances(values[members])
    same_front = fronts[None, :] == fronts[:, None]
    ahead = (fronts[None, :] < fronts[:, None]) | (same_front & (crowding[None, :] > crowding[:, None]))
    return ahead.sum(axis=1).tolist()


def continues_at_rung(recorded: Sequence[Sequence[float]], point: Sequence[float], reduction_factor: float) -> bool:
    """Whether a trial reaching a rung with ``point`` goes on, the rung holding ``recorded`` (the others' values).

    With ``n`` others recorded: none, it goes on (Ray: no cutoff yet); else it goes on when at
    most ``(n - 1) / η`` of them, rounded to the nearest whole number (halves up), rank strictly
    ahead of it (:func:`rung_ranks`, over the rung's values and its own), so a tie goes on.
    That is Ray's ``_Bracket`` rule (go on when the value is at least the ``1 - 1/η``
    percentile, linearly interpolated, of the others' values) applied to ranks instead of
    values: the interpolated cutoff falls between the ranks ``floor`` and ``ceil`` of
    ``(n - 1) / η``, and between two neighbouring ranks the trial's own sits half-way.
    """
    others = len(recorded)
    if not others:
        return True
    ahead = rung_ranks([*recorded, point])[-1]
    return ahead <= math.floor((others - 1) / reduction_factor + 0.5 + 1e-9)  # 1e-9: a half a hair low in float


class _ParetoBracket(Bracket):
    """Ray's bracket (its milestones and rung bookkeeping), its rungs recording Points ranked by MO-ASHA."""

    def on_result(self, trial: Any, cur_iter: float, cur_rew: Point | None) -> str:  # type: ignore[override]
        # Ray's walk over the rungs, highest milestone first, kept as it is: a trial is judged at
        # the highest milestone its epoch has reached and it has no value recorded at, once.
        action = TrialScheduler.CONTINUE
        for milestone, recorded in self._rungs:
            if cur_iter >= milestone and trial.trial_id in recorded and not self._stop_last_trials:
                break
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            if cur_rew is not None:
                if not continues_at_rung(list(recorded.values()), cur_rew, self.rf):
                    action = TrialScheduler.STOP
                recorded[trial.trial_id] = tuple(cur_rew)
            break
        return action

    def cutoff(self, recorded: dict[str, Any]) -> None:
        """No value cutoff: a rung ranks Points (Ray's debug string asks for one)."""
        return None


class PruningASHA(AsyncHyperBandScheduler):
    """ASHA on the trial's own ``epoch`` that tells the searcher which trials it cut.

    ``objectives`` (two or more ``(metric, mode)``): MO-ASHA, every rung ranked on all of them
    (see the module); otherwise ``metric``/``mode``, Ray's single-metric rungs.

    A STOP counts as pruning only when the trial would have gone on: not at
    ``max_t``, not at its own last epoch, and not when the trainable itself
    decided to stop (its ``stop_reason`` is set).
    """

    def __init__(self, searcher: PruningAwareOptunaSearch | None = None, *,
                 objectives: Sequence[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        ranked = tuple((str(metric), str(mode)) for metric, mode in objectives or ())
        if ranked and (kwargs.get("metric") or kwargs.get("mode")):
            raise ValueError("PruningASHA: give objectives (ranked on all) or metric and mode (one metric), not both")
        if ranked:  # Ray's own checks want one metric; with several, the rungs rank on all of them
            kwargs["metric"], kwargs["mode"] = ranked[0]
        super().__init__(time_attr=EPOCH, **kwargs)
        self.searcher = searcher
        self._objectives = ranked if len(ranked) > 1 else ()
        if self._objectives:
            grace = kwargs.get("grace_period", 1)
            self._brackets = [_ParetoBracket(grace, self._max_t, self._reduction_factor, s,
                                             stop_last_trials=self._stop_last_trials)
                              for s in range(len(self._brackets))]
        if searcher is not None and self._objectives:  # what rebuild_rungs reads after a resume
            searcher.record_rung_objectives([metric for metric, _ in self._objectives])
        elif searcher is not None and kwargs.get("metric"):
            searcher.record_rung_metric(kwargs["metric"])
        self.pruned: dict[str, int] = {}  # trial id -> epoch at which it was cut

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """The ``(metric, mode)`` pairs MO-ASHA ranks rungs on; empty for single-metric ASHA."""
        return self.__dict__.get("_objectives", ())  # absent from schedulers pickled before MO-ASHA

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled from tuner.pkl by Tuner.restore: the rungs as they were when the run started
        # (Tune saves the searcher as it goes, never the scheduler). Rebuilt on first use.
        self.__dict__.update(state)
        self._rungs_to_rebuild = True

    def rebuild_rungs(self) -> int:
        """Refill the rungs from the searcher's record of the values by epoch: what ASHA recorded before a resume.

        ASHA records a trial's value (MO-ASHA: its objectives) at the first report whose epoch is
        >= a milestone; the searcher keeps every trial's values at each epoch, and the bracket
        ASHA drew for it (its saved state is what ``resume`` restores), so the same value is
        recorded in the same bracket. Returns how many values were recorded.
        """
        self._rungs_to_rebuild = False
        if self.searcher is None or not self._metric_op:
            return 0
        count = 0
        for trial_id, values in self._history().items():
            epochs = sorted(values)
            bracket = self._brackets[min(self.searcher.bracket_of(trial_id), len(self._brackets) - 1)]
            for milestone, recorded in bracket_rungs(bracket):
                reached = next((e for e in epochs if e >= milestone - 1e-9), None)
                if reached is not None and trial_id not in recorded:
                    recorded[trial_id] = values[reached]
                    count += 1
        return count

    def _history(self) -> dict[str, dict[int, Any]]:
        """Trial id -> epoch -> what a rung records (``metric_op * value``, or a Point), from the searcher."""
        if self.objectives:
            return {trial_id: {epoch: point for epoch, by_metric in by_epoch.items()
                               if (point := self._point(by_metric)) is not None}
                    for trial_id, by_epoch in self.searcher.rung_points().items()}
        return {trial_id: {epoch: self._metric_op * value for epoch, value in by_epoch.items()}
                for trial_id, by_epoch in self.searcher.rung_values().items()}

    def _point(self, result: dict[str, Any]) -> Point | None:
        """The objectives of a result signed larger-is-better; None when one is missing or not finite."""
        values = [result.get(metric) for metric, _ in self.objectives]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            return None
        return tuple(float(v) if mode == "max" else -float(v) for v, (_, mode) in zip(values, self.objectives))

    def _rebuild_if_restored(self) -> None:
        if self.__dict__.get("_rungs_to_rebuild"):
            recorded = self.rebuild_rungs()
            log.info("resume: ASHA's rungs rebuilt from the study (%d values)", recorded)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._rebuild_if_restored()
        super().on_trial_add(tune_controller, trial)
        if self.searcher is not None and len(self._brackets) > 1:  # the searcher's saved state keeps the draw
            self.searcher.record_bracket(trial.trial_id, self._brackets.index(self._trial_info[trial.trial_id]))

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        self._rebuild_if_restored()
        if self.objectives:
            decision = self._ranked_result(trial, result)
        else:
            decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and self._is_cut(trial, result):
            self.pruned[trial.trial_id] = int(result[EPOCH])
            if self.searcher is not None:
                self.searcher.mark_pruned(trial.trial_id)
        return decision

    def _ranked_result(self, trial: Any, result: dict[str, Any]) -> str:
        """Ray's ``on_trial_result`` with a Point in place of ``metric_op * value``."""
        if EPOCH not in result or any(metric not in result for metric, _ in self.objectives):
            return TrialScheduler.CONTINUE  # as Ray does when its metric is missing
        if result[EPOCH] >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            point = self._point(result)  # a NaN is not ranked: no decision, nothing recorded
            action = (self._trial_info[trial.trial_id].on_result(trial, result[EPOCH], point)
                      if point is not None else TrialScheduler.CONTINUE)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if not self.objectives:
            return super().on_trial_complete(tune_controller, trial, result)
        self._rebuild_if_restored()
        result = result or {}
        if EPOCH not in result or any(metric not in result for metric, _ in self.objectives):
            return None  # as Ray does: the trial stays in its bracket's books
        point = self._point(result)
        if point is not None:  # Ray records a finished trial's last result at a rung it had not reached
            self._trial_info[trial.trial_id].on_result(trial, result[EPOCH], point)
        del self._trial_info[trial.trial_id]
        return None

    def debug_string(self) -> str:
        if not self.objectives:
            return super().debug_string()
        rungs = " | ".join(f"epoch {milestone:g}: {len(recorded)} recorded"
                           for bracket in self._brackets for milestone, recorded in bracket_rungs(bracket))
        return f"Using MO-ASHA on {', '.join(m for m, _ in self.objectives)}: num_stopped={self._num_stopped}\n{rungs}"

    def _is_cut(self, trial: Any, result: dict[str, Any]) -> bool:
        if result.get("done") or result.get("stop_reason") or EPOCH not in result:
            return False
        epoch = int(result[EPOCH])
        planned = (trial.config or {}).get("epochs", self._max_t)
        return epoch < min(self._max_t, planned if isinstance(planned, int) else self._max_t)
