"""The results table (one row per trial, the columns of ``export``) and the best trial.

Reading the folder is :mod:`search.results.folder`; how a trial ended is
:mod:`search.results.outcomes`; writing tables is :mod:`search.results.export`.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from search.results.folder import (
    ExperimentFiles,
    ExperimentInfo,
    ResultsError,
    TrialRecord,
    best_checkpoint,
    best_checkpoint_row,
    metric_values,
    read_experiment,
    reported_checkpoints,
    value_at,
)
from search.results.schedule import SCHEDULE_COLUMN, describe_schedule, read_schedule
from search.results.outcomes import JUDGED, Outcome, TrialFacts, classify, is_finite_number
from search.experiment import HELDOUT_FILE, TRAIN_RUNS_DIR, Experiment, ExperimentLike
from search.spec.models import Spec

__all__ = ["ExperimentResults", "open_results", "load_results", "BestTrial", "best_trial", "best_column",
           "param_column", "require_checkpoint", "write_default_exports", "DEFAULT_EXPORTS", "front_text",
           "REFIT_DIR", "REFIT_RECORD", "REFIT_CHECKPOINT", "read_refit", "model_checkpoint"]

log = logging.getLogger(__name__)

#: Files ``run`` writes into the experiment folder at the end.
DEFAULT_EXPORTS = ("results.csv", "results.md")
#: The refit (engine.refit): the picked trial's configuration trained again on train + validation.
REFIT_DIR = "refit"
#: What was refitted: ``trial_id``, ``epochs``, ``rows``, ``checkpoint`` (relative to the experiment folder).
REFIT_RECORD = f"{REFIT_DIR}/refit.json"
#: The refitted model's checkpoint folder, laid out as a trial's.
REFIT_CHECKPOINT = f"{REFIT_DIR}/checkpoint"
#: Outcomes of trials that trained to a judged end (the others failed, diverged or are unfinished).


# ---------------------------------------------------------------- the table
@dataclass
class ExperimentResults:
    """An experiment's files and its results table (see :func:`open_results`)."""

    files: ExperimentFiles
    table: pd.DataFrame

    @property
    def path(self) -> Path:
        return self.files.path

    @property
    def experiment(self) -> Experiment:
        """Where the experiment lives (a URI's results are read from :attr:`path`, its mirror)."""
        return self.files.experiment or Experiment(str(self.files.path))

    @property
    def info(self) -> ExperimentInfo:
        return self.files.info

    @property
    def notes(self) -> list[str]:
        return self.files.warnings

    def record(self, trial_id: str) -> TrialRecord:
        for record in self.files.trials:
            if record.trial_id == trial_id:
                return record
        raise ResultsError(f"no trial {trial_id!r} in {self.path}; trials: {', '.join(self.table['trial_id'])}")

    def ranked(self) -> list[TrialRecord]:
        """Trials with a finite metric, best first (the table's order)."""
        best = self.table[best_column(self.info)]
        return [self.record(tid) for tid, value in zip(self.table["trial_id"], best) if is_finite_number(value)]


def best_column(info: ExperimentInfo) -> str:
    """The table's column of each trial's best metric value."""
    return f"best_{info.metric}"


def open_results(experiment: ExperimentLike, spec: Spec | None = None) -> ExperimentResults:
    """Read an experiment folder (a path, or a name under ``./results``) and build its table."""
    if isinstance(experiment, ExperimentResults):
        return experiment
    files = read_experiment(experiment, spec)
    rows = [_row(record, files) for record in files.trials]
    table = _with_heldout(_frame(rows, files), files.path)
    if (refit := read_refit(files.path)) is not None:
        table.attrs["refit"] = {**refit, "checkpoint": str(refit["checkpoint"])}
    for note in files.warnings:
        log.info("%s", note)
    return ExperimentResults(files, table)


def load_results(experiment: ExperimentLike) -> pd.DataFrame:
    """One row per trial, sorted by the metric (best first): the columns of ``export``.

    ``trial_id``, ``status`` (in words), ``outcome`` (:class:`Outcome` value), one column per
    searched parameter, ``best_<metric>``, ``last_<metric>``, ``best_epoch``, ``epochs_run``,
    ``num_selected`` (at the best epoch; only for a model with feature gates), ``train_time_s``,
    ``checkpoint`` (the trial's best).
    ``df.attrs`` holds ``experiment``, ``metric``, ``mode``, ``params`` and ``notes``.
    """
    return open_results(experiment).table


def _best_index(values: pd.Series, mode: str) -> Any:
    """The best epoch's index; among tied epochs the latest (the one Ray's checkpoint manager keeps)."""
    finite = values[values.map(math.isfinite)][::-1]
    if finite.empty:
        return None
    return finite.idxmax() if mode == "max" else finite.idxmin()


def _epochs_run(history: pd.DataFrame) -> int | None:
    if history.empty:
        return None
    last = value_at(history, "epoch", history.index[-1])
    return int(last) if last is not None else len(history)


def _row(record: TrialRecord, files: ExperimentFiles) -> dict[str, Any]:
    info, history = files.info, record.history
    values = metric_values(history, info.metric)
    best = _best_index(values, info.mode)
    saved = best_checkpoint_row(record, info)
    if saved and saved[0] is not None and best is not None and values[saved[0]] == values[best]:
        best = saved[0]  # among tied epochs, the one whose checkpoint was kept
    checkpoint = saved[1] if saved else None
    last = history.index[-1] if not history.empty else None
    epochs = _epochs_run(history)
    outcome, words = classify(TrialFacts(
        epochs_run=epochs, final=record.has_final_result, tune_status=record.tune_status, error=record.error,
        stop_reason=str(value_at(history, "stop_reason", last) or ""),
        last_value=None if last is None else float(values[last]),
        pruned=None if files.pruned is None else record.trial_id in files.pruned,
        planned_epochs=_planned_epochs(record, info)))
    if outcome in JUDGED and (why := _collapse(history, best if best is not None else last)):
        outcome, words = Outcome.COLLAPSED, why
    if checkpoint is None and reported_checkpoints(history):
        files.warnings.append(f"trial {record.trial_id}: its checkpoints are missing from {record.path} "
                              "(deleted or not copied?)")
    row: dict[str, Any] = {"trial_id": record.trial_id, "status": words, "outcome": outcome.value}
    if info.spec is not None and info.spec.scheduler.type == "pbt":
        record.schedule = read_schedule(checkpoint) or [(1, record.config)]
        row[SCHEDULE_COLUMN] = describe_schedule(record.schedule, info.params)
    config = record.config_at(value_at(history, "epoch", best))  # PBT: the configuration that trained its best epoch
    row.update({param_column(name): config.get(name) for name in info.params})
    row.update({
        best_column(info): None if best is None else float(values[best]),
        # Several objectives: each at the same (best) epoch, as the searcher was told them.
        **{f"best_{metric}": _float_at(history, metric, best) for metric, _ in info.all_objectives[1:]},
        f"last_{info.metric}": None if last is None else float(values[last]),
        "best_epoch": value_at(history, "epoch", best),
        "epochs_run": epochs,
        "num_selected": value_at(history, "num_selected", best if best is not None else last),
        "train_time_s": value_at(history, "time_total_s", last),
        "checkpoint": str(checkpoint) if checkpoint else None,
    })
    return row


def _collapse(history: pd.DataFrame, at: Any) -> str | None:
    """Why a trial learned nothing (the ``collapsed`` outcome), or None.

    Collapsed: no feature kept at its best epoch (``num_selected`` 0), or a best validation
    accuracy no better than always answering the majority class (``majority_rate``, which the
    built-in trainable reports). Its values are chance's, so it is never on the front or picked.
    """
    kept = _float_at(history, "num_selected", at)
    if kept is not None and kept <= 0:
        return f"collapsed: no feature kept at epoch {value_at(history, 'epoch', at)}"
    if "val_accuracy" not in history or "majority_rate" not in history:
        return None
    accuracy = pd.to_numeric(history["val_accuracy"], errors="coerce").dropna()
    majority = pd.to_numeric(history["majority_rate"], errors="coerce").dropna()
    if accuracy.empty or majority.empty or accuracy.max() > majority.iloc[-1] + 1e-9:
        return None
    return (f"collapsed: best validation accuracy {accuracy.max():.3f}, no better than the majority class "
            f"({majority.iloc[-1]:.3f})")


def _float_at(history: pd.DataFrame, column: str, index: Any) -> float | None:
    value = pd.to_numeric(pd.Series([value_at(history, column, index)]), errors="coerce").iloc[0]
    return None if pd.isna(value) else float(value)


_FIXED_COLUMNS = {"trial_id", "status", "outcome", "pareto", "best_epoch", "epochs_run", "num_selected", "train_time_s",
                  "checkpoint", SCHEDULE_COLUMN}


def param_column(name: str) -> str:
    """A parameter's column: its own name, unless that clashes with a fixed column."""
    return f"param_{name}" if name in _FIXED_COLUMNS or name.startswith(("best_", "last_")) else name


def _planned_epochs(record: TrialRecord, info: ExperimentInfo) -> int | None:
    own = record.config.get("epochs")
    candidates = [e for e in (own, info.max_epochs) if isinstance(e, int) and not isinstance(e, bool)]
    return min(candidates) if candidates else None


def _frame(rows: list[dict[str, Any]], files: ExperimentFiles) -> pd.DataFrame:
    info = files.info
    others = [f"best_{metric}" for metric, _ in info.all_objectives[1:]]
    columns = ["trial_id", "status", "outcome", *(param_column(p) for p in info.params), best_column(info), *others,
               f"last_{info.metric}", "best_epoch", "epochs_run", "num_selected", "train_time_s", "checkpoint"]
    if any(SCHEDULE_COLUMN in row for row in rows):
        columns.insert(columns.index("best_epoch") + 2, SCHEDULE_COLUMN)
    df = pd.DataFrame(rows, columns=columns)
    for col in ("best_epoch", "epochs_run", "num_selected"):
        df[col] = df[col].astype("Int64")
    for col in (best_column(info), *others, f"last_{info.metric}", "train_time_s"):
        df[col] = df[col].astype(float)
    if info.multi_objective:
        from search.results.pareto import PARETO_COLUMN, pareto_mask

        df.insert(3, PARETO_COLUMN, pareto_mask(df, info.all_objectives))
    for name in info.params:  # from the rows as read: a DataFrame makes [None, 16, 100] floats before we look
        column = param_column(name)
        df[column] = _tidy_param(pd.Series([row.get(column) for row in rows], index=df.index, dtype=object))
    # Ties by trial id (as the front's pick breaks them): the order, and so the pick, must not depend on the
    # order the folder lists trials in, which a resume changes (and with it the refit's trial).
    df = df.sort_values([best_column(info), "trial_id"], ascending=[info.mode == "min", True], na_position="last",
                        kind="stable")
    df = df.reset_index(drop=True)
    if df["num_selected"].isna().all():  # a model without feature gates: no column of blanks
        df = df.drop(columns="num_selected")
    df.attrs = {"experiment": str(files.path), "name": info.name, "metric": info.metric, "mode": info.mode,
                "objectives": [list(o) for o in info.all_objectives], "params": list(info.params),
                "notes": list(files.warnings)}
    return df


def _with_heldout(table: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``test_<metric>`` columns from the held-out test (engine.heldout), for the trials it evaluated.

    ``df.attrs["heldout"]`` says which split and how the trial was chosen. No file (a
    trainable without an evaluation function, an interrupted run): no columns.
    """
    import json

    file = folder / HELDOUT_FILE
    if not file.is_file():
        return table
    try:
        heldout = json.loads(file.read_text())
        by_trial = {str(t): dict(m) for t, m in heldout["trials"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        table.attrs["notes"].append(f"{HELDOUT_FILE} unreadable ({exc}); no test columns")
        return table
    for column in dict.fromkeys(k for metrics in by_trial.values() for k in metrics):
        table[column] = [float(by_trial.get(str(t), {}).get(column, math.nan)) for t in table["trial_id"]]
    table.attrs["heldout"] = {k: v for k, v in heldout.items() if k != "trials"}
    return table


def read_refit(folder: Path) -> dict[str, Any] | None:
    """The refit's record (:data:`REFIT_RECORD`) with ``checkpoint`` as a folder on disk, or None (no refit here)."""
    import json

    try:
        record = json.loads((folder / REFIT_RECORD).read_text())
        checkpoint, trial_id = folder / str(record["checkpoint"]), str(record["trial_id"])
    except (OSError, ValueError, KeyError, TypeError):  # none, or cut short: the trial's own model stands
        return None
    return {**record, "trial_id": trial_id, "checkpoint": checkpoint} if checkpoint.is_dir() else None


def model_checkpoint(results: ExperimentResults, trial_id: str | None = None) -> tuple[str, Path, bool]:
    """The checkpoint whose model the readers use: (trial id, folder, whether it is the refit).

    No ``trial_id``: the picked trial's refit model (:data:`REFIT_CHECKPOINT`) when the run made
    one for it, else its own best checkpoint. A ``trial_id``: that trial's own best checkpoint.
    """
    if trial_id is None:
        trial_id = best_trial(results).trial_id
        refit = read_refit(results.path)
        if refit is not None and str(refit["trial_id"]) == trial_id:
            return trial_id, refit["checkpoint"], True
    return trial_id, require_checkpoint(results, results.record(trial_id)), False


def _tidy_param(column: pd.Series) -> pd.Series:
    """Integers stay integers next to missing values (a conditional parameter that was inactive)."""
    present = column.dropna()
    if len(present) and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return column.astype("Int64")
    if len(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return column.astype(float)
    return column


def require_checkpoint(results: ExperimentResults, record: TrialRecord) -> Path:
    """The trial's best checkpoint folder on disk, or a :class:`ResultsError` that says where it looked."""
    path = best_checkpoint(record, results.info)
    if path is None:
        where = record.path or results.path
        raise ResultsError(f"trial {record.trial_id} has no checkpoint on disk (looked in {where} and "
                           f"{results.path / TRAIN_RUNS_DIR / record.trial_id}): it was deleted, not copied, or never written")
    return path


# ---------------------------------------------------------------- the best trial
@dataclass(frozen=True)
class BestTrial:
    """The best trial (several objectives: the one picked from the Pareto front): parameters, values, checkpoint."""

    experiment: Path
    trial_id: str
    metric: str
    mode: str
    value: float
    epoch: int | None
    status: str
    params: dict[str, Any]  # the searched parameters, ready for a spec's `fixed:`
    config: dict[str, Any]  # the trial's whole config
    checkpoint: Path | None
    values: dict[str, float] = field(default_factory=dict)  # every objective at that epoch
    rule: str | None = None  # several objectives: how it was picked from the front
    front: pd.DataFrame | None = None  # several objectives: the front's rows (the table's columns)

    def to_yaml(self) -> str:
        """The parameters as YAML; the values, checkpoint and (several objectives) the front as comments."""
        at = f" at epoch {self.epoch}" if self.epoch is not None else ""
        shown = ", ".join(f"{k} = {v:.6g}" for k, v in self.values.items()) or f"{self.metric} = {self.value:.6g} ({self.mode})"
        lines = []
        if self.front is not None:
            lines += [f"# Pareto front of {self.experiment}: {len(self.front)} trial(s)"]
            lines += [f"#   {line}" for line in front_text(self.front, list(self.values), self.trial_id).splitlines()]
            lines += [f"# picked: {self.rule}"]
        lines += [f"# {'picked' if self.front is not None else 'best'} trial {self.trial_id} of {self.experiment}",
                  f"# {shown}{at}; {self.status}",
                  f"# checkpoint: {self.checkpoint or '(missing)'}",
                  "# paste under `fixed:` in a spec:"]
        return "\n".join(lines) + "\n" + yaml.safe_dump(self.params, sort_keys=False, default_flow_style=False)


def front_text(front: pd.DataFrame, metrics: list[str], chosen: str | None = None) -> str:
    """The front as a small text table (trial, each objective, test metrics), the picked trial marked ``*``."""
    columns = ["trial_id", *(f"best_{m}" for m in metrics), "best_epoch",
               *(c for c in front.columns if c.startswith("test_") and c != "test_n")]
    shown = front[[c for c in columns if c in front]].rename(columns={f"best_{m}": m for m in metrics}).copy()
    shown.insert(0, " ", ["*" if t == chosen else "" for t in shown["trial_id"]])
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def best_trial(experiment: ExperimentLike, *, tolerance: float | None = None,
               limits: dict[str, float] | None = None) -> BestTrial:
    """The trial with the best metric (over its epochs), preferring trials that did not fail.

    Several objectives: the trial picked from the Pareto front by ``tolerance``/``limits``
    (see :mod:`search.results.pareto`), or when neither is given by the spec's ``select``.

    Raises:
        ResultsError: no trial reported the metric yet; no trial of the front meets the rule.
    """
    results = open_results(experiment)
    table, info = results.table, results.info
    finite = table[table[best_column(info)].map(is_finite_number)]
    if finite.empty:
        raise ResultsError(f"no trial of {results.path} reported {info.metric!r} yet: nothing to pick from")
    front = rule = None
    if info.multi_objective:
        from search.results.pareto import PARETO_COLUMN, PickError, describe_rule, pick

        select = getattr(info.spec, "select", None)
        if tolerance is None and limits is None and select is not None:
            tolerance, limits = select.tolerance, dict(select.limits)
        front = table[table[PARETO_COLUMN]]
        try:
            row = front.loc[pick(front, info.all_objectives, tolerance, limits)]
        except PickError as exc:
            raise ResultsError(f"{results.path}: {exc}{_collapsed_note(table, info, limits)}") from None
        rule = describe_rule(info.all_objectives, tolerance, limits or {})
    else:
        live = finite[finite["outcome"] != Outcome.COLLAPSED.value]
        if live.empty:
            raise ResultsError(f"every trial of {results.path} that reported {info.metric!r} collapsed (no feature "
                               "kept, or no better than the majority class): nothing to pick; see `export`")
        healthy = live[live["outcome"] != Outcome.FAILED.value]
        row = (healthy if not healthy.empty else live).iloc[0]
    record = results.record(row["trial_id"])
    config = record.config_at(None if pd.isna(row["best_epoch"]) else int(row["best_epoch"]))
    params = {name: config[name] for name in info.params if name in config}
    checkpoint = row["checkpoint"]
    values = {m: float(row[f"best_{m}"]) for m, _ in info.all_objectives} if info.multi_objective else {}
    return BestTrial(results.path, record.trial_id, info.metric, info.mode, float(row[best_column(info)]),
                     None if pd.isna(row["best_epoch"]) else int(row["best_epoch"]), row["status"], params,
                     config, Path(checkpoint) if isinstance(checkpoint, str) else None,
                     values, rule, front)


def _collapsed_note(table: pd.DataFrame, info: ExperimentInfo, limits: dict[str, float] | None) -> str:
    """Say so when collapsed trials, never picked, are the ones that meet the limits."""
    collapsed = table[table["outcome"] == Outcome.COLLAPSED.value]
    modes = dict(info.all_objectives)
    for metric, bound in (limits or {}).items():
        if metric in modes and f"best_{metric}" in collapsed:
            column = collapsed[f"best_{metric}"]
            collapsed = collapsed[column <= bound if modes[metric] == "min" else column >= bound]
    if collapsed.empty:
        return ""
    return (f"; {len(collapsed)} collapsed trial(s) ({', '.join(collapsed['trial_id'])}: no feature kept, or no "
            "better than the majority class) would meet it, but a collapsed trial is never on the front or picked")


# ---------------------------------------------------------------- after `run`
def write_default_exports(experiment: ExperimentLike, spec: Spec | None = None) -> list[str]:
    """Write ``results.csv`` and ``results.md`` into the experiment folder; the files written.

    ``experiment`` is the folder, or its results already read. Called at the end of ``run``:
    it never raises; a problem is one line on stderr. A URI experiment gets them uploaded
    (the URIs are returned).
    """
    from search.results.export import write_table

    written: list[str] = []
    try:
        results = open_results(experiment, spec)
        for name in DEFAULT_EXPORTS:
            written.append(str(write_table(results.table, results.path / name)))
        written = results.experiment.publish(DEFAULT_EXPORTS) or written
    except (ResultsError, OSError) as exc:
        print(f"warning: could not write the results table: {exc}", file=sys.stderr)
    return written
