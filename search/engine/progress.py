"""What a run shows while it runs: one line per trial event and a status line now and then, or on a
terminal a live panel; in the words of :mod:`search.results.outcomes`, as the table and the summary say them."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

from search.engine import console as terminal
from search.results.outcomes import (
    JUDGED,
    Outcome,
    TrialFacts,
    classify,
    collapse_detail,
    count_words,
    describe,
    is_finite_number,
)

__all__ = ["ProgressLines"]

#: The width the panel is drawn for when it knows no terminal's.
WIDTH = 100

#: Count keys of callbacks saved (tuner.pkl, Tune's state) before the outcomes had one vocabulary.
_OLD_COUNT_KEYS = {"cut by ASHA": Outcome.PRUNED.value, "stopped early": Outcome.EARLY_STOPPED.value}


def _error_of(trial: Any) -> tuple[str | None, str | None]:
    """A failed trial's exception in one line (the last of its ``error.txt``) and that file's path."""
    from search.results.folder import read_error

    error_file = getattr(trial, "error_file", None)
    error = read_error(Path(error_file).parent) if error_file and Path(error_file).is_file() else None
    return error, error_file


class ProgressLines(Callback):
    """One line per trial event, and a status line now and then; epoch lines only when asked.

    ``[  52.3s] trial 3f2a started  lr=0.01 ...``, ``... trial 3f2a cut by ASHA at epoch 6:
    val_accuracy=0.81  [4/60 done]``, ``[  90.0s] 12/60 trials done, 3 running: 7 completed,
    4 cut by ASHA, 1 failed; best val_accuracy=0.931 (trial 3f2a); ~4m left``. Times count from
    the command's start (:func:`search.engine.console.elapsed`). A 60-trial search prints a few
    hundred lines, not one per epoch (``epoch_lines=True``, i.e. ``--verbose``, adds those).
    Status lines come every ``status_every_s`` at first, then ever further apart (at most a
    tenth of the time run so far), so a run of hours adds tens of them, not hundreds.

    ``objectives``: every ``(metric, mode)`` the search optimises (default: the ones the command
    asked the console to show, else ``metric`` alone); with several, the lines show each
    objective, and "best" gives way to the trial picked from the front so far by ``select``
    (``(tolerance, limits)``, the spec's ``select``).

    On a terminal (``live=None``: when the stream is a TTY) the event lines scroll above a
    live panel (rich): a progress bar of trials with the counts, elapsed time and ETA, the
    best (or picked) trial so far with its parameters, and the running trials with their epoch
    and objectives. Whether the stream is a terminal is decided when the run (or its resume) starts.
    """

    def __init__(self, metric: str, mode: str, stream: TextIO | None = None, pruned: dict[str, int] | None = None,
                 *, num_samples: int | None = None, epoch_lines: bool = False, status_every_s: float = 30.0,
                 live: bool | None = None, objectives: list[tuple[str, str]] | None = None,
                 select: tuple[float | None, dict[str, float]] | None = None) -> None:
        self.metric, self.mode = metric, mode
        self.stream = stream
        self.pruned = pruned if pruned is not None else {}
        self.num_samples = num_samples
        self.epoch_lines = epoch_lines
        self.status_every_s = status_every_s
        self.live = live
        self.objectives = tuple(objectives) if objectives else None  # None: asked of the console at setup
        self.select = select
        self.best: float | None = None
        self.best_trial: str | None = None
        self.best_params: dict[str, Any] = {}
        self.started = time.monotonic()  # the tuner's start: the ETA follows the pace from here
        self.last_status = self.started
        self.finished = 0
        self.finished_before = 0  # trials a resumed run had finished before it started again (for the ETA)
        self.counts: dict[str, int] = {}  # Outcome value -> trials
        # Several objectives: the trials on the front so far, id -> (outcome, values, params); a trial another
        # dominates never comes back to the front, so it is not kept (a search of 1,000 trials keeps tens).
        self.ended: dict[str, tuple[str, dict[str, float], dict[str, Any]]] = {}
        self.running: dict[str, tuple[Any, dict[str, Any]]] = {}  # trial id -> (epoch, objectives) of its last result
        self.trial_best: dict[str, tuple[float, Any, dict[str, Any]]] = {}  # running id -> (best, its epoch, objectives)
        self.judged: dict[str, tuple[float | None, Any]] = {}  # running id -> (best val_accuracy, majority rate)
        self._panel: Any = None  # the rich Live display, while it runs
        self.params_shown: dict[str, dict[str, Any]] = {}  # running id -> the parameters its last start showed

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: not the display
        return {**self.__dict__, "_panel": None}

    def __setstate__(self, state: dict[str, Any]) -> None:  # a tuner.pkl of an older version lacks the new fields
        self.__dict__.update({"objectives": None, "select": None, "ended": {}, "judged": {}, "params_shown": {}, **state})

    #: What Tune saves with its experiment state and hands back on resume (tuner.pkl has this object
    #: as it was when the run started): the counts, the best trial so far and the trials that ended.
    _SAVED = ("finished", "counts", "best", "best_trial", "best_params", "ended")

    def get_state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._SAVED}

    def set_state(self, state: dict[str, Any]) -> None:
        for key in self._SAVED:
            if key in state:
                setattr(self, key, state[key])
        valid = {o.value for o in Outcome}
        self.counts = {_OLD_COUNT_KEYS.get(k, k): n for k, n in self.counts.items() if _OLD_COUNT_KEYS.get(k, k) in valid}
        saved, self.ended = self.ended, {}  # a state saved before the front alone was kept holds every trial
        for trial_id, entry in saved.items():
            self._keep_if_on_front(trial_id, entry)
        self.finished_before = self.finished  # the ETA follows the pace of the trials finished from here on

    # ------------------------------------------------------------ what is shown
    def shown(self) -> tuple[tuple[str, str], ...]:
        """The objectives the lines show: ``((metric, mode), ...)``, this callback's metric first."""
        if self.objectives:
            return self.objectives
        asked, _ = terminal.shown_objectives()
        return asked if asked and asked[0][0] == self.metric else ((self.metric, self.mode),)

    @property
    def several(self) -> bool:
        return len(self.shown()) > 1

    def _values(self, values: dict[str, Any]) -> str:
        return " ".join(f"{m}={_number(values.get(m))}" for m, _ in self.shown())

    def _stream(self) -> TextIO:
        return self.stream or terminal.console()

    def _print(self, text: str) -> None:
        line = terminal.stamp(text)
        if self._panel is not None:
            self._panel.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            terminal.say_announcement(self._stream())
            print(line, file=self._stream(), flush=True)

    # ------------------------------------------------------------ Tune's hooks
    def setup(self, **info: Any) -> None:
        # A resumed run brings this object back from tuner.pkl: its clock (another process's
        # monotonic time) means nothing now. The ETA follows the pace of the trials finished since.
        self.started = self.last_status = time.monotonic()
        self.finished_before = self.finished
        self.running.clear()
        self.judged.clear()
        if self.objectives is None:
            asked, select = terminal.shown_objectives()
            if asked and asked[0][0] == self.metric:
                self.objectives, self.select = asked, self.select or select
        stream = self._stream()
        terminal.say_announcement(stream)
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
            self._panel.update(self.render(trials, terminal.elapsed()), refresh=True)
        self._stop_panel()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Once per trial; again only when it starts with another configuration (PBT: copied a better trial)."""
        params = _current_params(trial)
        before = self.params_shown.get(trial.trial_id)
        self.params_shown[trial.trial_id] = params
        if before is None:
            self._print(f"trial {trial.trial_id} started  {_params(params)}")
        elif before != params:  # a restart with the same configuration (a retry, a pause) says nothing here
            latest = getattr(getattr(trial, "latest_checkpoint_result", None), "metrics", None) or {}
            source, epoch = latest.get("trial_id"), latest.get("epoch")
            copied = f" from trial {source}'s checkpoint of epoch {epoch}" if source and epoch is not None else ""
            changed = {key: value for key, value in params.items() if before.get(key) != value}
            self._print(f"trial {trial.trial_id} continues{copied} (PBT), now  {_params(changed)}")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        value = result.get(self.metric)
        objectives = {m: result.get(m) for m in (*(m for m, _ in self.shown()), "num_selected")}
        finite = is_finite_number(value)
        if finite and not self.several and self._better(value):
            self.best, self.best_trial = float(value), trial.trial_id
            self.best_params = _current_params(trial)
        self.running[trial.trial_id] = (result.get("epoch", "?"), objectives)
        accuracy, majority = self.judged.get(trial.trial_id, (None, None))
        if is_finite_number(result.get("val_accuracy")):
            accuracy = max(accuracy or -math.inf, float(result["val_accuracy"]))
        self.judged[trial.trial_id] = (accuracy, result.get("majority_rate", majority))
        if finite:
            mine = self.trial_best.get(trial.trial_id)
            better = mine is None or (value >= mine[0] if self.mode == "max" else value <= mine[0])  # ties: the later
            if better:
                self.trial_best[trial.trial_id] = (float(value), result.get("epoch", "?"), objectives)
        if self.epoch_lines:
            extra = f" selected={result['num_selected']}" if "num_selected" in result and not self.several else ""
            best = f" (best {self.best:.4g})" if self.best is not None else ""
            self._print(f"trial {trial.trial_id} epoch {result.get('epoch', '?')} {self._values(result)}{extra}{best}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        epoch, value = last.get("epoch"), last.get(self.metric)
        planned = (getattr(trial, "config", None) or {}).get("epochs")
        outcome, words = classify(TrialFacts(
            epochs_run=int(epoch) if is_finite_number(epoch) else None, final=True, tune_status="TERMINATED",
            stop_reason=str(last.get("stop_reason") or ""),
            last_value=float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
            pruned=trial.trial_id in self.pruned, planned_epochs=planned if isinstance(planned, int) else None))
        # The trial's values as the table and Optuna have them: at its best epoch, not its last.
        best = self.trial_best.pop(trial.trial_id, None)
        values = best[2] if best is not None else {m: last.get(m) for m in (*(m for m, _ in self.shown()), "num_selected")}
        accuracy, majority = self.judged.pop(trial.trial_id, (None, None))
        at_epoch = best[1] if best is not None else epoch
        if outcome in JUDGED and (why := collapse_detail(values.get("num_selected"), at_epoch, accuracy, majority)):
            outcome, words = Outcome.COLLAPSED, describe(Outcome.COLLAPSED, detail=why)
        values = {m: values.get(m) for m, _ in self.shown()}
        at = f" (best, epoch {best[1]})" if best is not None and best[1] != epoch else ""
        shown = f": {self._values(values)}{at}" if any(is_finite_number(v) for v in values.values()) else ""
        self._ended(trial, outcome, values)
        self._print(f"trial {trial.trial_id} {words}{shown}  [{self.finished}/{self._total(trials)} done]")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trial_best.pop(trial.trial_id, None)
        self.judged.pop(trial.trial_id, None)
        error, error_file = _error_of(trial)
        self._ended(trial, Outcome.FAILED, {})
        detail = f"{error} (traceback: {error_file})" if error and error_file else error or (
            f"see {error_file}" if error_file else None)
        self._print(f"trial {trial.trial_id} {describe(Outcome.FAILED, detail=detail)}  "
                    f"[{self.finished}/{self._total(trials)} done]")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A failed trial Tune retries (``failure.max_retries``): which retry, and from which epoch."""
        error, _ = _error_of(trial)
        latest = getattr(trial, "latest_checkpoint_result", None)
        epoch = (getattr(latest, "metrics", None) or {}).get("epoch") if latest is not None else None
        start = f"from its checkpoint of epoch {epoch}" if epoch is not None else "from the start (no checkpoint yet)"
        retries = getattr(trial, "max_failures", None)
        count = f"{trial.num_failures}/{retries}" if isinstance(retries, int) and retries > 0 else str(trial.num_failures)
        self._print(f"trial {trial.trial_id} failed{': ' + error if error else ''}; retry {count} {start}")

    def _ended(self, trial: Any, outcome: Outcome, values: dict[str, Any]) -> None:
        self.params_shown.pop(trial.trial_id, None)
        self.finished += 1
        self.running.pop(trial.trial_id, None)
        self.counts[outcome.value] = self.counts.get(outcome.value, 0) + 1
        if self.several:  # only the picked trial (several objectives) reads the trials that ended
            kept = {m: float(v) for m, v in values.items() if is_finite_number(v)}
            self._keep_if_on_front(trial.trial_id,
                                   (outcome.value, kept, _current_params(trial)))

    def _keep_if_on_front(self, trial_id: str, entry: tuple[str, dict[str, float], dict[str, Any]]) -> None:
        """Keep a trial that ended in :attr:`ended` while it is on the front (pareto_mask's rule); drop those it dominates."""
        from search.results.pareto import FRONT_OUTCOMES  # several objectives only; picked() needs it too

        outcome, values, _ = entry
        objectives = self.shown()
        if outcome not in FRONT_OUTCOMES or not all(is_finite_number(values.get(m)) for m, _ in objectives):
            return
        if any(_dominates(kept, values, objectives) for _, kept, _ in self.ended.values()):
            return
        self.ended = {t: e for t, e in self.ended.items() if not _dominates(values, e[1], objectives)}
        self.ended[trial_id] = entry

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self._panel is not None:  # the panel, redrawn a few times a second, replaces the status lines
            if now - self.last_status >= 0.25:
                self.last_status = now
                self._panel.update(self.render(trials, terminal.elapsed()), refresh=True)
            return
        if now - self.last_status < max(self.status_every_s, (now - self.started) / 10):
            return
        self.last_status = now
        self._print(self.status(trials, terminal.elapsed()))

    # ------------------------------------------------------------ the status line and the panel
    def _better(self, value: float) -> bool:
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def _total(self, trials: list[Any]) -> int:
        return self.num_samples or len(trials)

    def _eta(self) -> str | None:
        done_here, total = self.finished - self.finished_before, self.num_samples or 0
        if done_here <= 0 or self.finished >= total:
            return None
        return _duration((time.monotonic() - self.started) / done_here * (total - self.finished))

    def picked(self) -> tuple[str, dict[str, float], dict[str, Any], int, str] | None:
        """Several objectives: (trial, values, params, size of the front, rule) picked from the front so far."""
        import pandas as pd

        from search.results.pareto import PickError, describe_rule, pareto_mask, pick

        objectives = self.shown()
        rows = [{"trial_id": t, "outcome": o, **{f"best_{m}": v.get(m, math.nan) for m, _ in objectives}}
                for t, (o, v, _) in self.ended.items()]
        if not rows:
            return None
        table = pd.DataFrame(rows)
        front = table[pareto_mask(table, objectives)]
        tolerance, limits = self.select or (None, {})
        try:
            index = pick(front, objectives, tolerance, limits)
        except PickError:
            return None
        trial_id = str(front.loc[index, "trial_id"])
        _, values, params = self.ended[trial_id]
        return trial_id, values, params, len(front), describe_rule(objectives, tolerance, limits)

    def leader(self) -> str | None:
        """``best val_accuracy=0.931 (trial 3f2a)``, or with several objectives the trial picked so far."""
        if not self.several:
            return None if self.best is None else f"best {self.metric}={self.best:.4g} (trial {self.best_trial})"
        picked = self.picked()
        if picked is None:
            return None
        trial_id, values, _, size, _ = picked
        return f"picked {self._values(values)} (trial {trial_id}, front of {size})"

    def status(self, trials: list[Any], elapsed: float) -> str:
        """``12/60 trials done, 3 running: 7 completed, ...; best val_accuracy=0.931 (trial 3f2a); ~4m left``."""
        running = sum(t.status == "RUNNING" for t in trials)
        kinds = count_words(self.counts)
        line = f"{self.finished}/{self._total(trials)} trials done, {running} running" + (f": {kinds}" if kinds else "")
        if leader := self.leader():
            line += f"; {leader}"
        if eta := self._eta():
            line += f"; ~{eta} left"
        return line

    def render(self, trials: list[Any], elapsed: float) -> Any:
        """The live panel: trials bar and counts, the best (or picked) trial, the running trials."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        total = self._total(trials) or 1
        running = [t for t in trials if t.status == "RUNNING"]
        eta = self._eta()
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=total, completed=self.finished, width=30),
                     Text(f"{self.finished}/{total} trials done · {len(running)} running · {_duration(elapsed)} elapsed"
                          + (f" · ~{eta} left" if eta else ""), no_wrap=True, overflow="ellipsis"))
        parts: list[Any] = [head]
        if kinds := count_words(self.counts):
            parts.append(Text(f"ended: {kinds}", no_wrap=True, overflow="ellipsis"))
        if not self.several and self.best_trial is not None:
            parts.append(Text(f"best: trial {self.best_trial}  {self.metric}={self.best:.4g}  {_params(self.best_params)}",
                              no_wrap=True, overflow="ellipsis"))
        elif self.several and (picked := self.picked()) is not None:
            trial_id, values, params, size, rule = picked
            parts.append(Text(f"picked: trial {trial_id}  {self._values(values)}  {_params(params)}",
                              no_wrap=True, overflow="ellipsis"))
            parts.append(Text(f"  from a front of {size} trial(s): {rule}", no_wrap=True, overflow="ellipsis"))
        if running:
            table = Table(box=None, pad_edge=False, show_edge=False)
            widths = [max(len(column), 8) for column in ("running", "epoch", *(m for m, _ in self.shown()))]
            for column, width in zip(("running", "epoch", *(m for m, _ in self.shown())), widths):
                table.add_column(column, no_wrap=True, min_width=width)
            # The parameters give way on a narrow terminal (rich would drop whole columns instead).
            screen = self._panel.console.width if self._panel is not None else WIDTH
            table.add_column("parameters", no_wrap=True, overflow="ellipsis",
                             max_width=max(20, screen - sum(widths) - 2 * len(widths) - 2))
            for trial in running[:10]:
                epoch, values = self.running.get(trial.trial_id, ("-", {}))
                table.add_row(trial.trial_id, str(epoch), *(_number(values.get(m)) for m, _ in self.shown()),
                              _params(_current_params(trial)))
            parts.append(table)
        return Group(*parts)


def _dominates(a: dict[str, float], b: dict[str, float], objectives: tuple[tuple[str, str], ...]) -> bool:
    """``a`` at least as good as ``b`` in every objective and better in one (:func:`~search.results.pareto.pareto_mask`)."""
    if not all(is_finite_number(a.get(m)) for m, _ in objectives):
        return False
    signs = [(a[m], b[m]) if mode == "max" else (-a[m], -b[m]) for m, mode in objectives]
    return all(x >= y for x, y in signs) and any(x > y for x, y in signs)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _current_params(trial: Any) -> dict[str, Any]:
    """The searched parameters of a trial as it runs now (PBT changes a trial's config; Tune's evaluated_params not)."""
    config = getattr(trial, "config", None) or {}
    return {key: config.get(key, value) for key, value in (getattr(trial, "evaluated_params", None) or {}).items()}


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())

