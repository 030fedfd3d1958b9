"""Tell Optuna the truth about ASHA-stopped trials.

Ray's OptunaSearch reports ASHA-stopped trials as COMPLETE with their last, early
value, and intermediate values by ``training_iteration``. TPE then ranks a
1-epoch score against 20-epoch scores. Here: intermediate values are reported at
the trial's own ``epoch``; the scheduler tells the searcher which trials it cut;
those are told to Optuna as PRUNED (TPE uses a pruned trial's intermediate values).
"""

from __future__ import annotations

import glob
import math
import os
import pickle
from pathlib import Path
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

__all__ = ["PruningAwareOptunaSearch", "PruningASHA", "EPOCH", "load_study", "read_searcher_state", "warm_start"]

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

    def rungs(self) -> list[int]:
        """Epochs at which trials may be cut (ascending), from Ray's own bracket."""
        return sorted(int(milestone) for bracket in self._brackets for milestone, _ in bracket._rungs)


def read_searcher_state(experiment: str | Path) -> dict[str, Any]:
    """The searcher's saved ``__dict__`` from an experiment's latest ``searcher-state-*.pkl``.

    Raises:
        FileNotFoundError: there is none (not a search experiment, or stopped before its first trial).
        ValueError: the file cannot be read or holds something else.
    """
    states = sorted(glob.glob(os.path.join(str(experiment), "searcher-state-*.pkl")))  # names end in a timestamp
    if not states:
        raise FileNotFoundError(f"{experiment} has no searcher-state-*.pkl: not a search experiment, "
                                "or it was stopped before its first trial")
    try:
        with open(states[-1], "rb") as fh:
            state = pickle.load(fh)  # noqa: S301 - our own file; needs `search` importable
    except Exception as exc:  # damaged, or written by another version
        raise ValueError(f"cannot read {Path(states[-1]).name} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{states[-1]} holds no searcher state")
    return state


def load_study(experiment: str | Path) -> Any:
    """The Optuna study an experiment's searcher saved."""
    study = read_searcher_state(experiment).get("_ot_study")
    if study is None:
        raise ValueError(f"{experiment}'s searcher state holds no Optuna study")
    return study


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
