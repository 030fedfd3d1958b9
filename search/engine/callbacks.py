"""The run's Tune callbacks: one line per trial event on stderr (instead of Tune's wide tables
on stdout), bounded disk (a trial ASHA stopped keeps only its best checkpoint), and the time
budget's stops told to Optuna."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

__all__ = ["ProgressLines", "PrunedCheckpointCleanup", "TellBudgetStops", "keep_only_best_checkpoint"]

log = logging.getLogger(__name__)


class ProgressLines(Callback):
    """One line per trial event, and a status line now and then; epoch lines only when asked.

    ``[  12.3s] trial 3f2a started  lr=0.01 ...``, ``... trial 3f2a stopped by ASHA at epoch 4``,
    ``[  60.0s] 12/60 trials done (3 running: 7 completed, 4 cut by ASHA, 1 failed); best
    val_accuracy=0.931 (trial 3f2a); ~4m left``: a 60-trial search prints a few hundred lines,
    not one per epoch (``epoch_lines=True``, i.e. ``--verbose``, adds those). Status lines come
    every ``status_every_s`` at first, then ever further apart (at most a tenth of the time run
    so far), so a run of hours adds tens of them, not hundreds.

    On a terminal (``live=None``: when the stream is a TTY) the event lines scroll above a
    live panel (rich): a progress bar of trials with the counts, elapsed time and ETA, the
    best trial so far with its parameters, and the running trials with their epoch and metric.
    Whether the stream is a terminal is decided when the run (or its resume) starts.
    """

    def __init__(self, metric: str, mode: str, stream: TextIO | None = None, pruned: dict[str, int] | None = None,
                 *, num_samples: int | None = None, epoch_lines: bool = False, status_every_s: float = 30.0,
                 live: bool | None = None) -> None:
        self.metric, self.mode = metric, mode
        self.stream = stream
        self.pruned = pruned if pruned is not None else {}
        self.num_samples = num_samples
        self.epoch_lines = epoch_lines
        self.status_every_s = status_every_s
        self.live = live
        self.best: float | None = None
        self.best_trial: str | None = None
        self.best_params: dict[str, Any] = {}
        self.started = time.monotonic()
        self.last_status = self.started
        self.finished = 0
        self.finished_before = 0  # trials a resumed run had finished before it started again (for the ETA)
        self.counts: dict[str, int] = {}
        self.running: dict[str, tuple[Any, Any]] = {}  # trial id -> (epoch, metric value) of its last result
        self.trial_best: dict[str, tuple[float, Any]] = {}  # running trial id -> (best value, its epoch)
        self._panel: Any = None  # the rich Live display, while it runs

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: not the display
        return {**self.__dict__, "_panel": None}

    #: What Tune saves with its experiment state and hands back on resume (tuner.pkl has this object
    #: as it was when the run started): the counts and the best trial so far.
    _SAVED = ("finished", "counts", "best", "best_trial", "best_params")

    def get_state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._SAVED}

    def set_state(self, state: dict[str, Any]) -> None:
        for key in self._SAVED:
            if key in state:
                setattr(self, key, state[key])
        self.finished_before = self.finished  # the ETA follows the pace of the trials finished from here on

    def _stream(self) -> TextIO:
        from search.engine.console import console

        return self.stream or console()

    def _print(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:7.1f}s] {text}"
        if self._panel is not None:
            self._panel.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self._stream(), flush=True)

    def setup(self, **info: Any) -> None:
        # A resumed run brings this object back from tuner.pkl: its clock (another process's
        # monotonic time) means nothing now. Times count from this start; the ETA follows the
        # pace of the trials finished since.
        self.started = self.last_status = time.monotonic()
        self.finished_before = self.finished
        self.running.clear()
        stream = self._stream()
        live = self.live if self.live is not None else bool(getattr(stream, "isatty", lambda: False)())
        if not live:
            return
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:  # rich is a dependency; without it, plain lines
            return
        import atexit

        self._panel = Live(console=Console(file=stream, force_terminal=True), auto_refresh=False,
                           redirect_stdout=False, redirect_stderr=False, transient=False)
        self._panel.start()
        atexit.register(self._stop_panel)  # an interrupt skips on_experiment_end: give the cursor back anyway

    def _stop_panel(self) -> None:
        if self._panel is not None:
            self._panel.stop()
            self._panel = None

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self._panel is not None:
            self._panel.update(self.render(trials, time.monotonic() - self.started), refresh=True)
        self._stop_panel()

    def render(self, trials: list[Any], elapsed: float) -> Any:
        """The live panel: trials bar and counts, the best trial, the running trials."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        total = self.num_samples or len(trials) or 1
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=total, completed=self.finished, width=30),
                     Text(f"{_duration(elapsed)} elapsed · {self.status(trials, elapsed)}"))
        parts: list[Any] = [head]
        if self.best_trial is not None:
            params = _params(self.best_params)
            parts.append(Text(f"best: trial {self.best_trial}  {self.metric}={self.best:.4g}  {params}"))
        running = [t for t in trials if t.status == "RUNNING"]
        if running:
            table = Table(box=None, pad_edge=False, show_edge=False)
            for column in ("running", "epoch", self.metric, "parameters"):
                table.add_column(column)
            for trial in running[:10]:
                epoch, value = self.running.get(trial.trial_id, ("-", None))
                shown = f"{value:.4g}" if isinstance(value, (int, float)) else "-"
                table.add_row(trial.trial_id, str(epoch), shown, _params(trial.evaluated_params))
            parts.append(table)
        return Group(*parts)

    def _better(self, value: float) -> bool:
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(f"trial {trial.trial_id} started  {_params(trial.evaluated_params)}")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and value == value and self._better(value):
            self.best, self.best_trial, self.best_params = float(value), trial.trial_id, dict(trial.evaluated_params)
        self.running[trial.trial_id] = (result.get("epoch", "?"), value)
        if isinstance(value, (int, float)) and value == value:
            mine = self.trial_best.get(trial.trial_id)
            better = mine is None or (value >= mine[0] if self.mode == "max" else value <= mine[0])  # ties: the later
            if better:
                self.trial_best[trial.trial_id] = (float(value), result.get("epoch", "?"))
        if not self.epoch_lines:
            return
        extra = f" selected={result['num_selected']}" if "num_selected" in result else ""
        best = f" (best {self.best:.4g})" if self.best is not None else ""
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else value
        self._print(f"trial {trial.trial_id} epoch {result.get('epoch', '?')} {self.metric}={shown}{extra}{best}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.finished += 1
        self.running.pop(trial.trial_id, None)
        last = trial.last_result or {}
        if trial.trial_id in self.pruned:
            how, kind = f"stopped by ASHA at epoch {self.pruned[trial.trial_id]}", "cut by ASHA"
        elif last.get("stop_reason") == "diverged":
            how, kind = f"diverged at epoch {last.get('epoch')}", "diverged"
        elif last.get("stop_reason"):
            how, kind = f"stopped ({last['stop_reason']}) at epoch {last.get('epoch')}", "stopped early"
        else:
            how, kind = f"completed {last.get('epoch', '?')} epochs", "completed"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        # The trial's value as the table and Optuna have it: its best epoch, not its last.
        best = self.trial_best.pop(trial.trial_id, None)
        value = last.get(self.metric)
        if best is not None:
            shown = f" {self.metric}={best[0]:.4g}" + (f" (best, epoch {best[1]})" if best[1] != last.get("epoch") else "")
        else:
            shown = f" {self.metric}={value:.4g}" if isinstance(value, (int, float)) else ""
        self._print(f"trial {trial.trial_id} {how}{shown}  [{self.finished}/{self.num_samples or len(trials)} done]")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.finished += 1
        self.running.pop(trial.trial_id, None)
        self.trial_best.pop(trial.trial_id, None)
        self.counts["failed"] = self.counts.get("failed", 0) + 1
        self._print(f"trial {trial.trial_id} FAILED: {trial.error_file or 'see its error.txt'}")

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self._panel is not None:  # the panel, redrawn a few times a second, replaces the status lines
            if now - self.last_status >= 0.25:
                self.last_status = now
                self._panel.update(self.render(trials, now - self.started), refresh=True)
            return
        if now - self.last_status < max(self.status_every_s, (now - self.started) / 10):
            return
        self.last_status = now
        self._print(self.status(trials, now - self.started))

    def status(self, trials: list[Any], elapsed: float) -> str:
        """``12/60 trials done (3 running: 7 completed, ...); best val_accuracy=0.931 (trial 3f2a); ~4m left``."""
        total = self.num_samples or len(trials)
        running = sum(t.status == "RUNNING" for t in trials)
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n)
        line = f"{self.finished}/{total} trials done ({running} running" + (f": {kinds})" if kinds else ")")
        if self.best is not None:
            line += f"; best {self.metric}={self.best:.4g} (trial {self.best_trial})"
        done_here = self.finished - self.finished_before
        if done_here > 0 and self.finished < total:
            line += f"; ~{_duration(elapsed / done_here * (total - self.finished))} left"
        return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


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
