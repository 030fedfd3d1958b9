"""The run's Tune callbacks that keep its state right: bounded disk (a trial ASHA cut keeps only its
best checkpoint) and the time budget's stops told to Optuna; and Tune's TensorBoard files, written
off the driver's loop.

What the run shows while it runs is :mod:`search.engine.progress`; its :class:`ProgressLines` is
also reachable here, where the tuner (and a tuner.pkl saved before the split) looks for it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.logger import TBXLoggerCallback

from search.engine.progress import ProgressLines

__all__ = ["BackgroundTensorBoard", "ProgressLines", "PrunedCheckpointCleanup", "TellBudgetStops",
           "keep_only_best_checkpoint", "tensorboard_logger"]

log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    """``DirectSummaryWriter`` lived here before :mod:`search.engine.tensorboard_writer`: a ``tuner.pkl`` saved
    then names it here, and ``resume`` unpickles it (imported on that use only, as the logger's thread does)."""
    if name == "DirectSummaryWriter":
        try:
            from search.engine.tensorboard_writer import DirectSummaryWriter
        except ImportError:  # tensorboardX gone since: the logger writes no events, as for a new run without it
            return _NO_EVENTS
        return DirectSummaryWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


#: The writer class of a :class:`BackgroundTensorBoard` whose tensorboardX does not import.
_NO_EVENTS = object()


class BackgroundTensorBoard(TBXLoggerCallback):
    """Tune's TensorBoard logger, the same event files, written on a thread of its own.

    Tune's own writes every result's 25-odd scalars (a protobuf each) and flushes them on the
    driver's loop, 3.5 to 5 ms a result here, while the trial that reported waits in
    ``tune.report`` for the driver to ask for its next result. This one queues each call, in
    order, for a thread that makes it; the experiment's end waits for the queue. Given in the
    run's callbacks, it replaces Tune's default one (Tune adds a TBX logger only when none is given).

    tensorboardX itself is imported on that thread, when the first trial starts
    (:mod:`search.engine.tensorboard_writer`): its import (0.15-0.2 s) was on the driver's path from
    ``ray.init`` to the first trial's request, and is now made while the driver waits for that trial's process.
    """

    def __init__(self) -> None:  # not Tune's __init__, which imports tensorboardX
        self._summary_writer_cls: Any = None  # DirectSummaryWriter, imported on the writer's thread
        self._trial_writer: dict[Any, Any] = {}
        self._trial_result: dict[Any, dict] = {}
        self._jobs: queue.SimpleQueue | None = None
        self._writer: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:  # the Tuner pickles its callbacks (tuner.pkl): no thread, no queue
        return {**self.__dict__, "_jobs": None, "_writer": None, "_trial_writer": {}, "_trial_result": {},
                "_summary_writer_cls": None}

    def get_state(self) -> None:
        """Tune's experiment snapshot asks every callback for its state, then copies the driver's staging
        folder (where the event files are) to storage: wait for the queued writes first, so each copy,
        the final one included, holds every event so far (a trial's last epochs, its hparams at its end)."""
        if self._writer is not None and self._writer.is_alive():
            written = threading.Event()
            self._jobs.put((written.set, ()))
            written.wait()
        return None

    def log_trial_start(self, trial: Any) -> None:
        # Tune's log_trial_start calls trial.init_local_path(), which drops the trial's cached JSON state. Off
        # this thread it would race Tune's snapshot, which reads that cache here (Trial.get_json_state sets it,
        # then returns the attribute again): a snapshot could then save the trial as null, and neither the
        # run's end nor `resume` could read the state back. So the folder is made here, the writer there.
        # On the writer's thread (Tune's log_trial_result starting a trial it never saw), _start_writer makes it.
        if threading.current_thread() is not self._writer:
            try:
                trial.init_local_path()
            except OSError:  # as on the thread: one event file less; the trial and its results go on
                log.exception("TensorBoard logger: log_trial_start failed")
                return
        self._call(self._start_writer, trial, trial.local_path)

    def _start_writer(self, trial: Any, folder: str) -> None:
        """Tune's ``log_trial_start`` after ``init_local_path``, on the writer's thread: the trial's writer."""
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        os.makedirs(folder, exist_ok=True)  # the trial's JSON state untouched (init_local_path invalidates it)
        if self._summary_writer_cls is None:  # already on a thread: tensorboardX's own would add one per trial
            try:
                from search.engine.tensorboard_writer import DirectSummaryWriter
            except ImportError as exc:  # installed, but it does not import: no event files, said once
                log.warning("TensorBoard: no event files, tensorboardX does not import: %s", exc)
                self._summary_writer_cls = _NO_EVENTS
                return
            self._summary_writer_cls = DirectSummaryWriter
        if self._summary_writer_cls is _NO_EVENTS:
            return
        self._trial_writer[trial] = self._summary_writer_cls(folder, flush_secs=30)
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        self._call(self._write_result, iteration, trial, dict(result))

    def _write_result(self, iteration: int, trial: Any, result: dict) -> None:
        if trial not in self._trial_writer:  # a trial first seen here, or whose start made no writer
            self.log_trial_start(trial)
        if trial in self._trial_writer:
            super().log_trial_result(iteration, trial, result)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._call(super().log_trial_end, trial, failed)  # a trial without a writer: nothing (Tune's checks)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.drain()
        super().on_experiment_end(trials, **info)

    def drain(self) -> None:
        """Wait until every queued call is made (the thread then ends; a later call starts another)."""
        if self._writer is not None and self._writer.is_alive():
            self._jobs.put(None)
            self._writer.join()
        self._writer = None

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.current_thread() is self._writer:  # Tune's own calls from inside one (a result's first start)
            fn(*args)
            return
        if self._writer is None or not self._writer.is_alive():
            self._jobs = queue.SimpleQueue()
            self._writer = threading.Thread(target=self._work, args=(self._jobs,), name="tensorboard-logger",
                                            daemon=True)
            self._writer.start()
        self._jobs.put((fn, args))

    @staticmethod
    def _work(jobs: queue.SimpleQueue) -> None:
        while (job := jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one event file less; the trial and its results go on
                log.exception("TensorBoard logger: %s failed", getattr(fn, "__name__", fn))


def tensorboard_logger() -> list[Callback]:
    """``[BackgroundTensorBoard()]``, or ``[]`` without tensorboardX (as Tune's default adds none then)."""
    if importlib.util.find_spec("tensorboardX") is None:
        return []
    return [BackgroundTensorBoard()]
