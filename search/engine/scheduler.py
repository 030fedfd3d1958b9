"""ASHA on the trial's own epoch, telling the searcher which trials it cut."""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search.engine.searcher import EPOCH, PruningAwareOptunaSearch

__all__ = ["PruningASHA"]

log = logging.getLogger(__name__)


class PruningASHA(AsyncHyperBandScheduler):
    """ASHA on the trial's own ``epoch`` that tells the searcher which trials it cut.

    A STOP counts as pruning only when the trial would have gone on: not at
    ``max_t``, not at its own last epoch, and not when the trainable itself
    decided to stop (its ``stop_reason`` is set).
    """

    def __init__(self, searcher: PruningAwareOptunaSearch | None = None, **kwargs: Any) -> None:
        super().__init__(time_attr=EPOCH, **kwargs)
        self.searcher = searcher
        if searcher is not None and kwargs.get("metric"):
            searcher.record_rung_metric(kwargs["metric"])  # what rebuild_rungs reads after a resume
        self.pruned: dict[str, int] = {}  # trial id -> epoch at which it was cut

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled from tuner.pkl by Tuner.restore: the rungs as they were when the run started
        # (Tune saves the searcher as it goes, never the scheduler). Rebuilt on first use.
        self.__dict__.update(state)
        self._rungs_to_rebuild = True

    def rebuild_rungs(self) -> int:
        """Refill the rungs from the searcher's record of ASHA's metric by epoch: what ASHA recorded before a resume.

        ASHA records a trial's value at the first report whose epoch is >= a milestone; the
        searcher keeps every trial's value of ASHA's metric at each epoch, and the bracket ASHA
        drew for it (its saved state is what ``resume`` restores), so the same value is recorded
        in the same bracket. Returns how many values were recorded.
        """
        self._rungs_to_rebuild = False
        if self.searcher is None or not self._metric_op:
            return 0
        count = 0
        for trial_id, values in self.searcher.rung_values().items():
            epochs = sorted(values)
            bracket = self._brackets[min(self.searcher.bracket_of(trial_id), len(self._brackets) - 1)]
            for milestone, recorded in bracket._rungs:
                reached = next((e for e in epochs if e >= milestone - 1e-9), None)
                if reached is not None and trial_id not in recorded:
                    recorded[trial_id] = self._metric_op * values[reached]
                    count += 1
        return count

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
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and self._is_cut(trial, result):
            self.pruned[trial.trial_id] = int(result[EPOCH])
            if self.searcher is not None:
                self.searcher.mark_pruned(trial.trial_id)
        return decision

    def _is_cut(self, trial: Any, result: dict[str, Any]) -> bool:
        if result.get("done") or result.get("stop_reason") or EPOCH not in result:
            return False
        epoch = int(result[EPOCH])
        planned = (trial.config or {}).get("epochs", self._max_t)
        return epoch < min(self._max_t, planned if isinstance(planned, int) else self._max_t)
