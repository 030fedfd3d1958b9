"""Tell Optuna the truth about ASHA-stopped trials.

Ray's OptunaSearch reports ASHA-stopped trials as COMPLETE with their last, early
value, and intermediate values by ``training_iteration``. TPE then ranks a
1-epoch score against 20-epoch scores. Here: intermediate values are reported at
the trial's own ``epoch``; the scheduler tells the searcher which trials it cut;
those are told to Optuna as PRUNED (TPE uses a pruned trial's intermediate values).
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search.optuna import OptunaSearch

__all__ = ["PruningAwareOptunaSearch", "EPOCH", "warm_start"]

#: The time attribute of the search: each trial reports its own epoch (Tune's
#: ``training_iteration`` restarts counting after a restore).
EPOCH = "epoch"


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records intermediate values by epoch and tells pruned trials as PRUNED."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pruned: set[str] = set()
        self._reported_steps: dict[str, set[int]] = {}

    def mark_pruned(self, trial_id: str) -> None:
        self._pruned.add(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict[str, Any] | None) -> None:
        if not result or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value, step = result.get(self.metric), result.get(EPOCH, result.get("training_iteration"))
        if isinstance(value, (int, float)) and math.isfinite(value) and step is not None:
            steps = self._reported_steps.setdefault(trial_id, set())
            if int(step) not in steps:  # Optuna rejects a second value for a step
                steps.add(int(step))
                self._ot_trials[trial_id].report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        # The scheduler's STOP skips on_trial_result for the last result: record it now.
        self._report(trial_id, result)
        if trial_id in self._pruned and not error:
            import optuna

            self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        value = (result or {}).get(self.metric)
        diverged = (result or {}).get("stop_reason") == "diverged" or (
            isinstance(value, float) and not math.isfinite(value))
        if diverged and not error:
            # Optuna refuses NaN values, and a FAIL is ignored by TPE: the sampler would
            # never learn that this region blows up. PRUNED trials are ranked below every
            # completed one, so TPE steers away from the region.
            import optuna

            self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result, error)


def warm_start(searcher: PruningAwareOptunaSearch, earlier: Any, distributions: dict[str, Any]) -> tuple[int, int]:
    """Tell ``searcher``'s study every finished trial of an ``earlier`` study.

    Only trials whose parameters all lie in the new space are added (a conditional
    parameter may be absent). Returns (added, skipped).
    """
    import optuna

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    added = skipped = 0
    for trial in earlier.get_trials(deepcopy=False, states=finished):
        params = trial.params
        if not params or not all(_fits(distributions.get(k), v) for k, v in params.items()):
            skipped += 1
            continue
        searcher._ot_study.add_trial(optuna.trial.create_trial(
            state=trial.state, value=trial.value if trial.state is optuna.trial.TrialState.COMPLETE else None,
            params=params, distributions={k: distributions[k] for k in params},
            intermediate_values=dict(trial.intermediate_values)))
        added += 1
    return added, skipped


def _fits(distribution: Any, value: Any) -> bool:
    if distribution is None:
        return False
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):  # a categorical value that is no longer a choice
        return False
