"""Tell Optuna what the tables show.

Ray's OptunaSearch tells a finished trial its *last* result, reports intermediate values
by ``training_iteration``, tells ASHA-stopped trials COMPLETE with an early value, and
never tells a trial the time budget stopped (it stays RUNNING in the study). Here, one
definition of a trial's value, the same as the results table's ``best_<metric>``:

- a trial that ran to its end, or stopped itself (patience, a threshold), is COMPLETE
  with the best value of the metric over its epochs (the epoch whose checkpoint is "best");
- a trial stopped from outside before its end (cut by ASHA, or by the time budget) is
  PRUNED, with its intermediate values by the trial's own ``epoch`` (TPE ranks pruned
  trials by them, below completed ones);
- a diverged trial is PRUNED (Optuna refuses NaN; a FAIL would teach TPE nothing);
- an error is FAIL, told once retries are used up (a retried trial is told its final outcome);
- an interrupted trial is told nothing: ``resume`` continues it under the same Optuna trial.

Several objectives (``metric: [val_accuracy, num_selected]``): a trial's values all come from
one epoch, its best epoch by the first objective (among tied epochs the latest, the one Ray's
checkpoint manager keeps), the table's ``best_epoch``. Optuna's multi-objective studies take
no intermediate values (``Trial.report`` refuses), so a trial cut by ASHA is told PRUNED
without values; the values it had at the cut are kept in its ``values_at_cut`` user
attribute (and its epoch in ``epoch_at_cut``). Optuna's samplers learn only from COMPLETE
trials' values: its TPE ranks every pruned trial after every completed one, NSGA-II ignores
them; the Pareto front is made of completed trials. ASHA's own record of each trial's value
at each epoch (to rebuild its rungs after a resume) is kept by the searcher in every case: of
its one metric, or, for MO-ASHA (several objectives, no ``scheduler.metric``), of every objective.

The study lives in memory (Tune pickles it into ``searcher-state-*.pkl`` with the rest of
the searcher, which is what ``resume`` restores). Each time Tune saves the searcher, the
trials finished since are appended to Optuna's journal file beside it
(:data:`~search.experiment.OPTUNA_JOURNAL`), which ``optuna-dashboard`` and
``optuna.load_study`` open, live and afterwards. A journal rather than SQLite: it is
append-only (a killed driver leaves at worst a cut last line, which Optuna skips), needs
no database driver, and travels with the folder when Ray syncs it to S3 or a copy is moved.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from search.internals import frozen_trial_id, in_distribution, storage_of
from search.experiment import OPTUNA_JOURNAL

__all__ = ["PruningAwareOptunaSearch", "EPOCH", "warm_start"]

log = logging.getLogger(__name__)

#: The time attribute of the search: each trial reports its own epoch (Tune's
#: ``training_iteration`` restarts counting after a restore).
EPOCH = "epoch"


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records intermediate values by epoch and tells pruned trials as PRUNED."""

    def __init__(self, *args: Any, rung_metric: str | None = None, **kwargs: Any) -> None:
        """OptunaSearch's arguments (``metric``/``mode`` may be lists); ``rung_metric``: the metric ASHA cuts on."""
        super().__init__(*args, **kwargs)
        self._pruned: set[str] = set()
        self._reported_steps: dict[str, set[int]] = {}
        self._best: dict[str, float] = {}  # trial id -> best finite value of the first objective so far
        self._at_best: dict[str, dict[str, Any]] = {}  # trial id -> the objectives at that epoch (several objectives)
        self._rung_metric = rung_metric
        self._rung_values: dict[str, dict[int, float]] = {}  # trial id -> epoch -> rung_metric's value
        self._rung_objectives: tuple[str, ...] = ()  # MO-ASHA's metrics (several objectives)
        self._rung_points: dict[str, dict[int, dict[str, float]]] = {}  # trial id -> epoch -> each objective's value

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        modes = self._mode if isinstance(self._mode, list) else [self._mode]
        return tuple(zip(metrics, modes))

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.metric, list) and len(self.metric) > 1

    def record_rung_metric(self, metric: str) -> None:
        """Keep every trial's ``metric`` by epoch (ASHA's scheduler calls this with the metric it cuts on)."""
        self._rung_metric = metric

    def record_rung_objectives(self, metrics: Any) -> None:
        """Keep every trial's value of each of ``metrics`` by epoch (MO-ASHA calls this with its objectives)."""
        self._rung_objectives = tuple(metrics)

    def mark_pruned(self, trial_id: str) -> None:
        self._pruned.add(trial_id)

    def record_bracket(self, trial_id: str, bracket: int) -> None:
        """Keep which of ASHA's brackets a trial is in (ASHA draws it at random; a resume must know it)."""
        self.__dict__.setdefault("_brackets", {})[trial_id] = bracket

    def bracket_of(self, trial_id: str) -> int:
        """The ASHA bracket a trial was put in; 0 (the only one, by default) when none was recorded."""
        return self.__dict__.get("_brackets", {}).get(trial_id, 0)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict[str, Any] | None) -> None:
        if not result or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        (first, mode), *_ = self.objectives
        value, step = result.get(first), result.get(EPOCH, result.get("training_iteration"))
        if _finite(value):
            best = self.__dict__.setdefault("_best", {})  # absent from searcher states saved before it existed
            known = best.get(trial_id)
            if known is None or (value > known if mode == "max" else value < known) or (
                    value == known and self.multi_objective):  # a tie: the later epoch, whose checkpoint Ray keeps
                best[trial_id] = float(value)
                if self.multi_objective:
                    self.__dict__.setdefault("_at_best", {})[trial_id] = {m: result.get(m) for m, _ in self.objectives}
        rung_metric = self.__dict__.get("_rung_metric")
        if rung_metric and step is not None and _finite(result.get(rung_metric)):
            self.__dict__.setdefault("_rung_values", {}).setdefault(trial_id, {}).setdefault(
                int(step), float(result[rung_metric]))
        rung_objectives = self.__dict__.get("_rung_objectives")  # absent from searcher states saved before MO-ASHA
        if rung_objectives and step is not None and all(_finite(result.get(m)) for m in rung_objectives):
            self.__dict__.setdefault("_rung_points", {}).setdefault(trial_id, {}).setdefault(
                int(step), {m: float(result[m]) for m in rung_objectives})
        if not self.multi_objective and _finite(value) and step is not None:
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
            self._ot_trials[trial_id].set_user_attr("cut_by", "asha")  # the offline readers tell cuts apart by it
            if self.multi_objective:  # no intermediate values in the study: keep what it had at the cut
                ot_trial = self._ot_trials[trial_id]
                ot_trial.set_user_attr("values_at_cut", {m: _number(result, m) for m, _ in self.objectives})
                if (result or {}).get(EPOCH) is not None:
                    ot_trial.set_user_attr("epoch_at_cut", int(result[EPOCH]))
            self._tell_pruned(trial_id)
            return
        values = [(result or {}).get(m) for m, _ in self.objectives]
        diverged = (result or {}).get("stop_reason") == "diverged" or any(
            isinstance(v, float) and not math.isfinite(v) for v in values)
        if diverged and not error:
            # Optuna refuses NaN values, and a FAIL is ignored by TPE: the sampler would
            # never learn that this region blows up. PRUNED trials are ranked below every
            # completed one, so TPE steers away from the region.
            self._tell_pruned(trial_id)
            return
        if result is not None and not error:  # the trial's values are its best epoch's, as in the table
            if self.multi_objective:
                at_best = self.__dict__.get("_at_best", {}).get(trial_id)
                result = {**result, **at_best} if at_best else result
                if not all(_finite(result.get(m)) for m, _ in self.objectives):
                    missing = [m for m, _ in self.objectives if not _finite(result.get(m))]
                    log.warning("trial %s reported no %s: told FAIL (a multi-objective trial needs every objective)",
                                trial_id, ", ".join(missing))
                    return super().on_trial_complete(trial_id, None, True)
            elif (best := self.__dict__.get("_best", {}).get(trial_id)) is not None:
                result = {**result, self.metric: best}
            if _collapsed(result, self.objectives, self.__dict__.get("_best", {}).get(trial_id)):
                # Chance's values (no feature kept, or no better than the majority class): told
                # COMPLETE they would sit on the front and teach TPE that the region is fine.
                # PRUNED ranks below every completed trial (TPE) or is ignored (NSGA-II).
                self._ot_trials[trial_id].set_user_attr("cut_by", "collapsed")  # not ASHA's cut (the readers)
                self._tell_pruned(trial_id)
                return
        super().on_trial_complete(trial_id, result, error)

    def _tell_pruned(self, trial_id: str) -> None:
        import optuna

        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def rung_values(self) -> dict[str, dict[int, float]]:
        """Tune trial id -> ASHA's metric by epoch, as reported: what ASHA's rungs recorded."""
        recorded = self.__dict__.get("_rung_values")
        if recorded is None or not self.__dict__.get("_rung_metric"):
            return self.intermediate_values()  # saved before the searcher kept them, or no ASHA: the study's values
        return {trial_id: dict(values) for trial_id, values in recorded.items()}

    def rung_points(self) -> dict[str, dict[int, dict[str, float]]]:
        """Tune trial id -> epoch -> MO-ASHA's objectives at that epoch, as reported (those with all finite)."""
        return {trial_id: {epoch: dict(point) for epoch, point in by_epoch.items()}
                for trial_id, by_epoch in self.__dict__.get("_rung_points", {}).items()}

    def intermediate_values(self) -> dict[str, dict[int, float]]:
        """Tune trial id -> the study's intermediate values of that trial, by epoch."""
        by_number = {t.number: t for t in self._ot_study.get_trials(deepcopy=False)}
        out = {}
        for trial_id, ot_trial in self._ot_trials.items():
            frozen = by_number.get(ot_trial.number)
            if frozen is not None and frozen.intermediate_values:
                out[trial_id] = dict(frozen.intermediate_values)
        return out

    def save(self, checkpoint_path: str) -> None:
        """Tune's save (the searcher's ``__dict__``, pickled), then the finished trials into Optuna's journal."""
        state = {k: v for k, v in self.__dict__.items() if k != "_journal"}  # an open file: not part of the state
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(state, fh)
        try:
            self._write_journal(Path(checkpoint_path).parent / OPTUNA_JOURNAL)
        except Exception as exc:  # noqa: BLE001 - the journal is a view; the run and its state go on
            if not self.__dict__.get("_journal_warned"):
                log.warning("could not write Optuna's journal %s: %s", OPTUNA_JOURNAL, exc)
                self._journal_warned = True

    def _write_journal(self, path: Path) -> None:
        """Bring the journal up to the in-memory study: new trials (running ones too), new intermediate values, ends.

        Trials are matched by their Tune id (the ``trial_id`` user attribute), so a restored
        searcher, or one whose journal is older than its pickle, writes nothing twice.
        """
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        cached = self.__dict__.get("_journal")
        if cached is None or cached[0] != str(path):
            # Locked within this process, no lock file in the folder: Tune copies the staging folder into storage on a
            # thread while the journal is written, and Optuna's default lock (a symlink beside the journal during each
            # write) was copied as a plain file, which made the next writer with Optuna's defaults wait 30 s. One
            # process writes a journal of ours at a time (the driver its staging copy; resume, refused while that
            # driver lives, the stored one). A lock file in a shared temporary folder would let another user stall us.
            backend = JournalFileBackend(str(path), lock_obj=threading.Lock())
            study = optuna.create_study(storage=JournalStorage(backend),
                                        study_name=self._ot_study.study_name, load_if_exists=True,
                                        directions=self._ot_study.directions)
            if not study.metric_names:  # the dashboard and load_study users see val_accuracy, not 0 and 1
                with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use through 5.1
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names([m for m, _ in self.objectives])
            known = {t.user_attrs.get("trial_id"): t for t in study.get_trials(deepcopy=False)}
            cached = self._journal = (str(path), study, known)
        _, study, known = cached
        storage, study_id = storage_of(study)  # Optuna's storage API (BaseStorage) is public; the handles are not
        tune_ids = {ot_trial.number: trial_id for trial_id, ot_trial in self._ot_trials.items()}
        for frozen in self._ot_study.get_trials(deepcopy=False):
            if frozen.state is optuna.trial.TrialState.WAITING:  # enqueued (points_to_evaluate), not yet asked
                continue
            key = tune_ids.get(frozen.number, f"earlier-{frozen.number}")  # a warm start's trial has no Tune id
            written = known.get(key)
            if written is not None and written.state.is_finished():
                continue
            # A PRUNED trial's value is its last intermediate value (Optuna's tell sets it).
            valued = frozen.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            if written is None:
                template = optuna.trial.create_trial(
                    state=frozen.state, values=frozen.values if valued else None, params=frozen.params,
                    distributions=frozen.distributions, intermediate_values=dict(frozen.intermediate_values),
                    user_attrs={**frozen.user_attrs, "trial_id": key})
                number = storage.create_new_trial(study_id, template_trial=template)
            else:
                number = frozen_trial_id(written)
                for step, value in frozen.intermediate_values.items():
                    if step not in written.intermediate_values:
                        storage.set_trial_intermediate_value(number, step, value)
                if frozen.state.is_finished():
                    for attr, value in frozen.user_attrs.items():  # set at its end: values_at_cut, cut_by
                        if attr not in written.user_attrs:
                            storage.set_trial_user_attr(number, attr, value)
                    storage.set_trial_state_values(number, frozen.state, frozen.values if valued else None)
            known[key] = storage.get_trial(number)

    def untold(self, trial_ids: Any) -> list[str]:
        """Those of ``trial_ids`` the study holds as still running."""
        return [t for t in trial_ids if t in self._ot_trials and t not in self._completed_trials]

    def tell_stopped(self, trial_id: str) -> None:
        """A trial Tune stopped without telling the searcher (the time budget ran out): PRUNED."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._ot_trials[trial_id].set_user_attr("cut_by", "time_budget")
        self._tell_pruned(trial_id)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(result: dict[str, Any] | None, key: str) -> float | None:
    value = (result or {}).get(key)
    return float(value) if _finite(value) else None


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
            state=trial.state, values=trial.values if trial.state is optuna.trial.TrialState.COMPLETE else None,
            params=params, distributions={k: distributions[k] for k in params},
            intermediate_values=dict(trial.intermediate_values)))
        added += 1
    return added, skipped


def _fits(distribution: Any, value: Any) -> bool:
    if distribution is None:
        return False
    try:
        return in_distribution(distribution, value)
    except (ValueError, TypeError):  # a categorical value that is no longer a choice
        return False


def _collapsed(result: dict[str, Any], objectives: tuple[tuple[str, str], ...], best: float | None) -> bool:
    """A trial that learned nothing: no feature kept, or a validation accuracy no better than the majority class.

    ``result``: its values at its best epoch (several objectives) or its last result;
    ``best``: its best value of the first objective. ``majority_rate`` is what the built-in
    trainable reports (a trainable without it is judged on ``num_selected`` alone).
    """
    kept = result.get("num_selected")
    if _finite(kept) and kept <= 0:
        return True
    majority = result.get("majority_rate")
    accuracy = best if objectives[0] == ("val_accuracy", "max") and best is not None else result.get("val_accuracy")
    return _finite(majority) and _finite(accuracy) and accuracy <= majority + 1e-9
