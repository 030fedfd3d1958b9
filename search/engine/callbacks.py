"""The run's Tune callbacks: one line per trial event on stderr (instead of Tune's wide tables
on stdout), bounded disk (a trial ASHA stopped keeps only its best checkpoint), and the time
budget's stops told to Optuna."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

__all__ = ["ProgressLines", "PrunedCheckpointCleanup", "TellBudgetStops", "keep_only_best_checkpoint"]

log = logging.getLogger(__name__)


class ProgressLines(Callback):
    """Prints ``[12.3s] trial 3f2a epoch 4 val_accuracy=0.912 (best 0.931)`` lines."""

    def __init__(self, metric: str, mode: str, stream: TextIO | None = None, pruned: dict[str, int] | None = None) -> None:
        self.metric, self.mode = metric, mode
        self.stream = stream
        self.pruned = pruned if pruned is not None else {}
        self.best: float | None = None
        self.started = time.monotonic()
        self.finished = 0

    def _print(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", file=self.stream or sys.stderr, flush=True)

    def _better(self, value: float) -> bool:
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(f"trial {trial.trial_id} started  {_params(trial.evaluated_params)}")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and value == value and self._better(value):
            self.best = float(value)
        extra = f" selected={result['num_selected']}" if "num_selected" in result else ""
        best = f" (best {self.best:.4g})" if self.best is not None else ""
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else value
        self._print(f"trial {trial.trial_id} epoch {result.get('epoch', '?')} {self.metric}={shown}{extra}{best}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.finished += 1
        last = trial.last_result or {}
        if trial.trial_id in self.pruned:
            how = f"stopped by ASHA at epoch {self.pruned[trial.trial_id]}"
        elif last.get("stop_reason"):
            how = f"stopped ({last['stop_reason']}) at epoch {last.get('epoch')}"
        else:
            how = f"completed {last.get('epoch', '?')} epochs"
        self._print(f"trial {trial.trial_id} {how}  [{self.finished}/{len(trials)} done]")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(f"trial {trial.trial_id} FAILED: {trial.error_file or 'see its error.txt'}")


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


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
