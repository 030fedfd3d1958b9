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

The study lives in memory (Tune pickles it into ``searcher-state-*.pkl`` with the rest of
the searcher, which is what ``resume`` restores). Each time Tune saves the searcher, the
trials finished since are appended to Optuna's journal file beside it
(:data:`~search.storage.OPTUNA_JOURNAL`), which ``optuna-dashboard`` and
``optuna.load_study`` open, live and afterwards. A journal rather than SQLite: it is
append-only (a killed driver leaves at worst a cut last line, which Optuna skips), needs
no database driver, and travels with the folder when Ray syncs it to S3 or a copy is moved.
"""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from search.storage import OPTUNA_JOURNAL

__all__ = ["PruningAwareOptunaSearch", "EPOCH", "warm_start"]

log = logging.getLogger(__name__)

#: The time attribute of the search: each trial reports its own epoch (Tune's
#: ``training_iteration`` restarts counting after a restore).
EPOCH = "epoch"


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records intermediate values by epoch and tells pruned trials as PRUNED."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pruned: set[str] = set()
        self._reported_steps: dict[str, set[int]] = {}
        self._best: dict[str, float] = {}  # trial id -> best finite value of the metric so far

    def mark_pruned(self, trial_id: str) -> None:
        self._pruned.add(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict[str, Any] | None) -> None:
        if not result or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value, step = result.get(self.metric), result.get(EPOCH, result.get("training_iteration"))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            best = self.__dict__.setdefault("_best", {})  # absent from searcher states saved before it existed
            if trial_id not in best or (value > best[trial_id] if self._mode == "max" else value < best[trial_id]):
                best[trial_id] = float(value)
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
        best = self.__dict__.get("_best", {}).get(trial_id)
        if result is not None and best is not None and not error:
            result = {**result, self.metric: best}  # the trial's value is its best epoch's, as in the table
        super().on_trial_complete(trial_id, result, error)

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
            study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))),
                                        study_name=self._ot_study.study_name, load_if_exists=True,
                                        directions=self._ot_study.directions)
            known = {t.user_attrs.get("trial_id"): t for t in study.get_trials(deepcopy=False)}
            cached = self._journal = (str(path), study, known)
        _, study, known = cached
        storage, study_id = study._storage, study._study_id  # Optuna's storage API (BaseStorage): public
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
                number = written._trial_id
                for step, value in frozen.intermediate_values.items():
                    if step not in written.intermediate_values:
                        storage.set_trial_intermediate_value(number, step, value)
                if frozen.state.is_finished():
                    storage.set_trial_state_values(number, frozen.state, frozen.values if valued else None)
            known[key] = storage.get_trial(number)

    def untold(self, trial_ids: Any) -> list[str]:
        """Those of ``trial_ids`` the study holds as still running."""
        return [t for t in trial_ids if t in self._ot_trials and t not in self._completed_trials]

    def tell_stopped(self, trial_id: str) -> None:
        """A trial Tune stopped without telling the searcher (the time budget ran out): PRUNED."""
        import optuna

        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


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
