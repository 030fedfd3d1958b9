"""Keep disk bounded: a trial ASHA stopped keeps only its best checkpoint."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback

__all__ = ["PrunedCheckpointCleanup"]

log = logging.getLogger(__name__)


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
    manager._checkpoint_results = [best]
    manager._latest_checkpoint_result = best
    return removed
