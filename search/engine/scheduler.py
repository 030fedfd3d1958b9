"""ASHA on the trial's own epoch, telling the searcher which trials it cut."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search.engine.searcher import EPOCH, PruningAwareOptunaSearch

__all__ = ["PruningASHA"]


class PruningASHA(AsyncHyperBandScheduler):
    """ASHA on the trial's own ``epoch`` that tells the searcher which trials it cut.

    A STOP counts as pruning only when the trial would have gone on: not at
    ``max_t``, not at its own last epoch, and not when the trainable itself
    decided to stop (its ``stop_reason`` is set).
    """

    def __init__(self, searcher: PruningAwareOptunaSearch | None = None, **kwargs: Any) -> None:
        super().__init__(time_attr=EPOCH, **kwargs)
        self.searcher = searcher
        self.pruned: dict[str, int] = {}  # trial id -> epoch at which it was cut

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
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
