"""Read an experiment folder, offline: no cluster, possibly copied from another machine.

What comes from where, and why:

* the trial list and Tune's status per trial (TERMINATED, ERROR, RUNNING, ...) come from
  Tune's newest ``experiment_state-*.json``, read as plain JSON (Ray's own reader,
  ``ExperimentAnalysis``, unpickles what Tune cloudpickled into it); each trial's folder is
  taken relative to the folder read, wherever it was moved. When the state file is missing
  or unreadable, the ``trial_*`` folders are scanned instead (status unknown);
* each trial's epochs come from its ``result.json`` (one JSON line per report), read line
  by line: Ray's reader drops a trial's whole history over one half-written last line,
  which is exactly what an interrupted run leaves;
* what the search was (metric, mode, parameters, planned epochs) comes from our
  ``spec.yaml``, else from Optuna's journal (``optuna.journal``), which also holds the
  study and marks the trials ASHA cut.

Reading is not running: nothing here unpickles. Tune's ``tuner.pkl`` and the searcher's
``searcher-state-*.pkl`` are left to ``resume``, which must restore them and trusts the folder;
a folder copied from another machine or a shared bucket is read from JSON, CSV and the journal.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from search.spec.models import Spec
from search.spec.load import read_spec_structure

from search.experiment import DEFAULT_STORAGE, SPEC_COPY, TRAIN_RUNS_DIR, Experiment, ExperimentError, ExperimentLike
from search.results.outcomes import is_finite_number
from search.results.tune_state import STATE_PATTERN, SavedTrial, TuneStateError, saved_trials
from search.results.schedule import forget_overwritten_checkpoints
from search.results.searcher_state import load_journal_study
from trainables.files import CHECKPOINT_FILE, SELECTION_FILE

__all__ = ["ResultsError", "ExperimentInfo", "TrialRecord", "ExperimentFiles", "resolve_experiment",
           "read_experiment", "read_history", "read_error", "find_checkpoints", "best_checkpoint", "best_checkpoint_row", "metric_values",
           "value_at", "reported_checkpoints", "is_finite_number", "DEFAULT_STORAGE",
           "SELECTION_FILE", "CHECKPOINT_FILE"]


class ResultsError(ValueError):
    """The experiment folder (or what was asked of it) cannot give the requested results."""


@dataclass(frozen=True)
class ExperimentInfo:
    """What the search was: its metric and direction, parameters, epochs and ASHA rungs."""

    name: str
    metric: str
    mode: str
    params: tuple[str, ...]
    max_epochs: int | None = None
    checkpoint_score: str | None = None
    checkpoint_mode: str | None = None
    rungs: tuple[int, ...] = ()
    spec: Spec | None = None  # when spec.yaml was readable
    objectives: tuple[tuple[str, str], ...] = ()  # ((metric, mode), ...); () reads as ((metric, mode),)

    @classmethod
    def of(cls, spec: Spec) -> ExperimentInfo:
        """What a spec says the search is: every field from the spec's own rules."""
        return cls(spec.name, spec.primary_metric, spec.primary_mode, tuple(spec.space), spec.max_epochs,
                   spec.checkpoint_score, spec.checkpoint_mode, spec.scheduler.rungs(spec.max_epochs), spec,
                   spec.objectives)

    @property
    def all_objectives(self) -> tuple[tuple[str, str], ...]:
        return self.objectives or ((self.metric, self.mode),)

    @property
    def multi_objective(self) -> bool:
        return len(self.all_objectives) > 1

    @property
    def score(self) -> str:
        return self.checkpoint_score or self.metric

    @property
    def score_mode(self) -> str:
        return self.checkpoint_mode or self.mode


@dataclass
class TrialRecord:
    """One trial as found on disk."""

    trial_id: str
    path: Path | None
    config: dict[str, Any]
    history: pd.DataFrame  # one row per epoch, deduplicated (a retry re-reports epochs)
    tune_status: str | None = None  # None: not in Tune's state file (or no state file)
    tune_last_epoch: int | None = None
    error: str | None = None
    checkpoints: dict[str, Path] = field(default_factory=dict)  # checkpoint name -> folder that exists
    # PBT: the configurations its best checkpoint's model trained under, ``(first epoch, values)`` (read_schedule).
    schedule: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def config_at(self, epoch: Any) -> dict[str, Any]:
        """The configuration in effect at ``epoch`` (PBT changes it; otherwise :attr:`config`)."""
        current = dict(self.config)
        for first, config in self.schedule:
            if epoch is None or first > epoch:
                break
            current.update(config)
        return current

    @property
    def has_final_result(self) -> bool:
        """Tune recorded the trial as ended with all its results on disk, or marked its last result done.

        Tune's ``done`` flag alone is not enough: a TorchTrainer trial's results never carry it.
        """
        if self.history.empty:
            return False
        if self.tune_status == "TERMINATED":
            last = value_at(self.history, "epoch", self.history.index[-1])
            return self.tune_last_epoch is None or last is None or last >= self.tune_last_epoch
        done = value_at(self.history, "done", self.history.index[-1])
        return bool(done) if done is not None else False


@dataclass
class ExperimentFiles:
    """Everything read from one experiment folder."""

    path: Path  # on this machine (a URI experiment's: its mirror)
    info: ExperimentInfo
    trials: list[TrialRecord]
    pruned: set[str] | None  # Tune ids of the trials ASHA cut; None: no study, so unknown
    study: Any = None  # the optuna Study from the journal, if any
    state_known: bool = False  # Tune's experiment_state was read
    warnings: list[str] = field(default_factory=list)
    experiment: Experiment | None = None  # where it lives (publish writes back there)


def resolve_experiment(experiment: ExperimentLike) -> Path:
    """The experiment's folder on this machine: a path, a bare name under ``./results``, or a URI's mirror.

    A URI (``s3://bucket/runs/exp``) is read through its local mirror, brought up to date first.

    Raises:
        ResultsError: nothing there, or the folder is not an experiment.
    """
    where = Experiment.at(experiment)
    if where.is_remote:
        try:
            folder = where.sync()
        except ExperimentError as exc:
            raise ResultsError(str(exc)) from None
        if not where.is_experiment(sorted(p.name for p in folder.iterdir())):
            raise ResultsError(f"{where} is not an experiment folder: no experiment_state-*.json, searcher state or "
                               "trial_* folders written by `python -m search run`")
        return folder
    folder = Path(where.location)
    if not folder.is_dir():
        given = Path(str(experiment))
        looked = [f"'{given}'"] + ([f"'{DEFAULT_STORAGE / given}'"] if len(given.parts) == 1 and not given.is_absolute() else [])
        bare = (f" (a bare name is looked up under the default storage ./{DEFAULT_STORAGE}/, relative to the "
                "current folder)") if len(looked) > 1 else ""
        raise ResultsError(f"no experiment folder {str(experiment)!r}: looked for {' and '.join(looked)}{bare}")
    folder = folder.resolve()
    if not Experiment(str(folder)).is_experiment():
        inside = sorted(p.name for p in folder.iterdir() if p.is_dir() and Experiment(str(p)).is_experiment())
        hint = f"; it holds the experiments {', '.join(inside)}: pass one of them" if inside else ""
        raise ResultsError(f"{folder} is not an experiment folder: no experiment_state-*.json, searcher state or "
                           f"trial_* folders written by `python -m search run`{hint}")
    return folder


def _trial_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "params.json").exists() or (path / "result.json").exists())


def read_experiment(experiment: ExperimentLike, spec: Spec | None = None) -> ExperimentFiles:
    """Read an experiment folder: its spec, Optuna's journal, the trials and their epochs.

    ``spec`` stands in for the folder's ``spec.yaml``.
    """
    path = resolve_experiment(experiment)
    notes: list[str] = []
    spec = spec if spec is not None else _load_spec(path, notes)
    pbt = spec is not None and spec.scheduler.type == "pbt"  # PBT has no Optuna searcher, so no journal, no cuts
    study = None if pbt else _load_study(path, notes)
    info = _experiment_info(path, study, notes, spec)
    tune_trials = _tune_trials(path, notes)
    trials = _collect_trials(path, tune_trials or {}, notes, pbt)
    info = _with_planned_epochs(info, trials)
    where = Experiment.at(experiment)
    where = where if where.is_remote else Experiment(str(path))
    cut = set() if pbt else _cut_by_asha(study)
    return ExperimentFiles(path, info, trials, cut, study, tune_trials is not None, notes, where)


# ---------------------------------------------------------------- what the search was
def _load_study(path: Path, notes: list[str]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_journal_study(path)
    except FileNotFoundError:
        notes.append(f"no Optuna journal in {path}: trials cut by ASHA are inferred from their epochs")
    except Exception as exc:  # noqa: BLE001 - a damaged journal: the trials' own files still tell most
        notes.append(f"cannot read the Optuna journal ({type(exc).__name__}: {exc}); ASHA cuts are inferred")
    return None


def _cut_by_asha(study: Any) -> set[str] | None:
    """Tune ids of the trials ASHA cut, as the study marks them; None without a study (unknown)."""
    if study is None:
        return None
    trials = study.get_trials(deepcopy=False)
    marked = {t.user_attrs.get("trial_id") for t in trials if t.user_attrs.get("cut_by") == "asha"}
    if marked or any("cut_by" in t.user_attrs for t in trials):
        return marked - {None}
    # A journal from before the mark: every PRUNED trial that did not diverge (the table tells those apart).
    return {t.user_attrs.get("trial_id") for t in trials if t.state.name == "PRUNED"} - {None}


def _experiment_info(path: Path, study: Any, notes: list[str], spec: Spec | None) -> ExperimentInfo:
    if spec is not None:
        return ExperimentInfo.of(spec)
    metrics = list(getattr(study, "metric_names", None) or []) if study is not None else []
    if study is not None and metrics and len(metrics) == len(study.directions):
        modes = ["max" if d.name == "MAXIMIZE" else "min" for d in study.directions]
        params = tuple(dict.fromkeys(p for t in study.get_trials(deepcopy=False) for p in t.params))
        return ExperimentInfo(path.name, metrics[0], modes[0], params, objectives=tuple(zip(metrics, modes)))
    raise ResultsError(f"cannot tell which metric {path} optimised: spec.yaml is missing or unreadable and the Optuna "
                       "journal names no metric (both are written by `python -m search run`)")


def _load_spec(path: Path, notes: list[str]) -> Spec | None:
    from pydantic import ValidationError

    file = path / SPEC_COPY
    if not file.is_file():
        notes.append(f"no spec.yaml in {path} (the run did not finish?): using the Optuna journal")
        return None
    try:
        # Structure only: the semantic checks (data file, trainable import) belong to the
        # machine that ran it, not to one reading a copied folder.
        return read_spec_structure(file)
    except (yaml.YAMLError, ValidationError, OSError) as exc:
        notes.append(f"cannot read {file} ({type(exc).__name__}); using the Optuna journal")
        return None


def _with_planned_epochs(info: ExperimentInfo, trials: list[TrialRecord]) -> ExperimentInfo:
    if info.max_epochs is not None:
        return info
    epochs = {t.config.get("epochs") for t in trials} - {None}
    if len(epochs) == 1 and isinstance(next(iter(epochs)), int):
        return ExperimentInfo(**{**info.__dict__, "max_epochs": next(iter(epochs))})
    return info


# ---------------------------------------------------------------- the trials
def _tune_trials(path: Path, notes: list[str]) -> dict[str, _StateTrial] | None:
    """Trial id -> the trial as Tune's newest experiment state saved it (status, folder, config, last result),
    read as plain JSON (:mod:`search.results.tune_state`: nothing unpickled); None without a readable state."""
    try:
        trials = saved_trials(str(path))
    except (TuneStateError, OSError) as exc:  # being rewritten now, damaged, from another Ray
        notes.append(f"cannot read Tune's experiment state ({exc}); trial statuses come from their folders")
        return None
    if trials is None:
        notes.append(f"no {STATE_PATTERN} in {path}: trial statuses come from their folders")
        return None
    return {t.trial_id: _StateTrial(t, path / t.relative_logdir if t.relative_logdir else None) for t in trials}


@dataclass(frozen=True)
class _StateTrial:
    """A saved trial with its folder in this copy of the experiment (wherever the folder was moved to)."""

    saved: SavedTrial
    path: Path | None  # None: the state names no folder for it (a trial never started)

    @property
    def status(self) -> str:
        return self.saved.status

    @property
    def config(self) -> dict[str, Any]:
        return self.saved.config

    @property
    def last_result(self) -> dict[str, Any]:
        return self.saved.last_result


def _collect_trials(path: Path, tune_trials: dict[str, Any], notes: list[str], pbt: bool = False) -> list[TrialRecord]:
    folders = {p.name.removeprefix("trial_"): p for p in sorted(path.glob("trial_*")) if _trial_folder(p)}
    for trial_id, trial in tune_trials.items():
        folder = Path(str(trial.path)) if getattr(trial, "path", None) else None
        if folder is not None and folder.is_dir():
            folders[trial_id] = folder
    records = []
    for trial_id in dict.fromkeys([*tune_trials, *folders]):
        records.append(_read_trial(path, trial_id, folders.get(trial_id), tune_trials.get(trial_id), notes, pbt))
    return records


def _read_trial(root: Path, trial_id: str, folder: Path | None, tune_trial: Any, notes: list[str],
                pbt: bool = False) -> TrialRecord:
    history = read_history(folder, notes) if folder else pd.DataFrame()
    config = _read_config(folder, tune_trial)
    last = getattr(tune_trial, "last_result", None) or {}
    record = TrialRecord(
        trial_id=trial_id, path=folder, config=config, history=history,
        tune_status=getattr(tune_trial, "status", None),
        tune_last_epoch=int(last["epoch"]) if isinstance(last.get("epoch"), (int, float)) else None,
        error=read_error(folder) if folder else None,
    )
    record.checkpoints = find_checkpoints(root, record)
    if pbt:
        forget_overwritten_checkpoints(record.history, record.checkpoints)
    return record


def _read_config(folder: Path | None, tune_trial: Any) -> dict[str, Any]:
    if folder and (folder / "params.json").is_file():
        try:
            return dict(json.loads((folder / "params.json").read_text()))
        except (json.JSONDecodeError, OSError, TypeError):
            pass
    return dict(getattr(tune_trial, "config", None) or {})


def read_history(folder: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """A trial's reports, one row per epoch; a half-written last line is skipped."""
    file = folder / "result.json"
    if not file.is_file():
        if (folder / "progress.csv").is_file():
            return _dedupe_epochs(pd.read_csv(folder / "progress.csv", dtype={"trial_id": str}))
        return pd.DataFrame()
    rows, bad = [], 0
    for line in file.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        row.pop("config", None)
        rows.append(row)
    if bad and notes is not None:
        notes.append(f"{file}: skipped {bad} unreadable line(s) (the run was interrupted while writing?)")
    return _dedupe_epochs(pd.DataFrame(rows))


def _dedupe_epochs(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "epoch" not in df:
        return df.reset_index(drop=True)
    return df.drop_duplicates("epoch", keep="last").sort_values("epoch", kind="stable").reset_index(drop=True)


def read_error(folder: Path) -> str | None:
    """The last line of a trial's error.txt: the exception and its message."""
    file = folder / "error.txt"
    if not file.is_file():
        return None
    lines = [ln.strip() for ln in file.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "unknown error (error.txt is empty)"


def find_checkpoints(root: Path, record: TrialRecord) -> dict[str, Path]:
    """Reported checkpoint -> its folder, for those still on disk.

    Tune-owned checkpoints are ``checkpoint_NNNNNN`` folders in the trial folder; a
    TorchTrainer trial reports ``checkpoint_path`` under ``train_runs/<trial id>/``,
    re-rooted here when the folder was copied from elsewhere.
    """
    found: dict[str, Path] = {}
    if record.path is not None:
        found.update({p.name: p for p in sorted(record.path.glob("checkpoint_*")) if p.is_dir()})
    history = record.history
    if "checkpoint_path" in history:
        for value in history["checkpoint_path"].dropna():
            original = Path(str(value))
            moved = root / TRAIN_RUNS_DIR / record.trial_id / original.name
            for candidate in (original, moved):
                if candidate.is_dir():
                    found[original.name] = candidate
                    break
    return found


# ---------------------------------------------------------------- values and checkpoints
def metric_values(history: pd.DataFrame, metric: str) -> pd.Series:
    if metric not in history:
        return pd.Series([math.nan] * len(history), index=history.index, dtype=float)
    return pd.to_numeric(history[metric], errors="coerce").astype(float)


def value_at(history: pd.DataFrame, column: str, index: Any) -> Any:
    if column not in history or index is None:
        return None
    value = history.at[index, column]
    return None if pd.isna(value) else value


def _checkpoint_name(history: pd.DataFrame, index: Any) -> str | None:
    name = value_at(history, "checkpoint_dir_name", index)
    if name is None and value_at(history, "checkpoint_path", index) is not None:
        name = Path(str(value_at(history, "checkpoint_path", index))).name
    return str(name) if name else None


def reported_checkpoints(history: pd.DataFrame) -> bool:
    return any(c in history and history[c].notna().any() for c in ("checkpoint_dir_name", "checkpoint_path"))


def best_checkpoint(record: TrialRecord, info: ExperimentInfo) -> Path | None:
    """The trial's checkpoint with the best checkpoint score among those still on disk."""
    found = best_checkpoint_row(record, info)
    return found[1] if found else None


def best_checkpoint_row(record: TrialRecord, info: ExperimentInfo) -> tuple[Any, Path] | None:
    """(history index of the epoch it was saved at, or None if unknown; folder) of the best checkpoint."""
    if not record.checkpoints:
        return None
    history = record.history
    scores = metric_values(history, info.score)
    scored = [(float(scores[i]), i, record.checkpoints[name]) for i in history.index
              if (name := _checkpoint_name(history, i)) in record.checkpoints and math.isfinite(scores[i])]
    if not scored:
        return None, record.checkpoints[sorted(record.checkpoints)[-1]]  # unscored: the newest
    # Among tied scores the latest epoch, as Ray's checkpoint manager ranks them (later is better on a tie).
    sign = 1.0 if info.score_mode == "max" else -1.0
    _, index, path = max(enumerate(scored), key=lambda item: (sign * item[1][0], item[0]))[1]
    return index, path
