"""The run's Tune callbacks that keep its state right: bounded disk (a trial ASHA cut keeps only its
best checkpoint) and the time budget's stops told to Optuna.

What the run shows while it runs is :mod:`search.engine.progress`; its :class:`ProgressLines` is
also reachable here, where the tuner (and a tuner.pkl saved before the split) looks for it.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from search.engine.progress import ProgressLines

__all__ = ["ProgressLines", "PrunedCheckpointCleanup", "TellBudgetStops", "keep_only_best_checkpoint"]

log = logging.getLogger(__name__)


class TellBudgetStops(Callback):
    """When the time budget ends the run, tell Optuna the trials Tune stopped (PRUNED, not left RUNNING).

    Tune stops the running trials without calling the searcher's ``on_trial_complete``;
    this checks, at the end of each step once the budget has run out, for trials Tune
    holds as TERMINATED that the study still holds as running. It runs before Tune's
    final save, so the saved study has them.
    """

    def __init__(self, searcher: Any, budget_s: float) -> None:
        self.searcher = searcher  # the Tuner's searcher: one pickle (tuner.pkl) keeps them one object
        self.budget_s = budget_s
        self._started = time.monotonic()

    def setup(self, **info: Any) -> None:
        self._started = time.monotonic()  # a resumed run gets the budget anew, as Tune's stopper does

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if time.monotonic() - self._started < self.budget_s:
            return
        stopped = [t.trial_id for t in trials if t.status == "TERMINATED"]
        for trial_id in self.searcher.untold(stopped):
            self.searcher.tell_stopped(trial_id)
            log.info("trial %s was stopped by the time budget: told to Optuna as PRUNED", trial_id)


class PrunedCheckpointCleanup(Callback):
    """On completion of a trial the scheduler cut, delete all its checkpoints but the best.

    A pruned trial will never be resumed, so its latest checkpoint (kept by Tune for
    fault tolerance) is dead weight; only the best is worth keeping for analysis.
    """

    def __init__(self, pruned: dict[str, int]) -> None:
        self.pruned = pruned  # shared with the scheduler, which fills it

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if trial.trial_id in self.pruned:
            removed = keep_only_best_checkpoint(trial)
            if removed:
                log.info("trial %s was cut by ASHA: removed %d non-best checkpoint(s)", trial.trial_id, removed)


def keep_only_best_checkpoint(trial: Any) -> int:
    from search.internals import set_checkpoint_results

    manager = trial.run_metadata.checkpoint_manager
    best = manager.best_checkpoint_result
    if best is None or best.checkpoint is None:
        return 0
    keep = Path(best.checkpoint.path)
    removed = 0
    for folder in keep.parent.glob("checkpoint_*"):
        if folder.is_dir() and folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    # Keep Tune's own bookkeeping consistent with the disk (it lists kept checkpoints in results).
    set_checkpoint_results(manager, [best], best)
    return removed
