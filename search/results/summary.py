"""The end-of-run summary: the counts, the best trial (several objectives: the front and the picked
trial) and the top trials, from the same table as ``export``, in :data:`WIDTH` columns."""

from __future__ import annotations

from typing import Any

import pandas as pd

from search.results.folder import ResultsError
from search.results.outcomes import Outcome, count_words, is_finite_number
from search.results.table import ExperimentResults, best_column, best_trial, front_text, open_results, param_column

__all__ = ["render_summary", "summary_text", "counts_line", "heldout_line", "WIDTH"]


#: The summary's width: the top table keeps the columns that fit; every column is in results.md.
WIDTH = 100
_STATUS_WIDTH = 40


def render_summary(spec: Any, outcome: Any, top: int = 5, results: ExperimentResults | None = None) -> tuple[str, bool]:
    """Text for stdout, and whether the run succeeded (some trial produced the metric).

    ``outcome`` is the run's :class:`~search.engine.run.ExperimentOutcome` (None: the folder is
    only read, e.g. a finished experiment given to ``resume``); the numbers come from the
    experiment folder's results table (:func:`~search.results.open_results`), so they are the
    ones ``export`` and ``best`` show; pass ``results`` when the folder is already read. A
    folder this process cannot read (remote storage) gets the counts Tune returned.
    """
    try:
        results = open_results(results if results is not None else outcome.experiment, spec)
    except ResultsError as exc:
        if outcome is None:
            raise
        return _from_tune(spec, outcome, exc)
    errors = list(outcome.results.errors) if outcome is not None else []
    where = outcome.path if outcome is not None else str(results.experiment)
    return summary_text(results, top, where=where, errors=errors)


def summary_text(results: ExperimentResults, top: int = 5, *, where: str | None = None,
                 errors: list[BaseException] | None = None) -> tuple[str, bool]:
    """The summary of an experiment's results (see :func:`render_summary`), and whether some trial has the metric."""
    table, info = results.table, results.info
    lines = [f"experiment {info.name} -> {where or results.experiment}", counts_line(table)]
    if not table[best_column(info)].map(is_finite_number).any():
        lines.append(f"no trial reported {info.metric!r}: the run failed")
        failed = table[table["outcome"] == Outcome.FAILED.value]
        lines += [f"  trial {tid}: {status}" for tid, status in zip(failed["trial_id"][:5], failed["status"][:5])]
        lines += [f"  {_error_line(err)}" for err in (errors or [])[:5]] if failed.empty else []
        lines.append(f"full tracebacks: error.txt in each trial folder under {where or results.experiment}")
        return "\n".join(lines), False
    try:
        best = best_trial(results)
    except ResultsError as exc:  # several objectives: the spec's select left no trial of the front
        lines += ["", f"no trial picked: {exc}"]
        return "\n".join(lines), True
    at = f" at epoch {best.epoch}" if best.epoch is not None else ""
    if best.front is not None:
        lines += ["", f"Pareto front: {len(best.front)} trial(s) (* picked: {best.rule})",
                  front_text(best.front, list(best.values), best.trial_id)]
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in best.values.items())
        lines += ["", f"picked trial {best.trial_id}: {shown}{at} ({best.status})"]
        if (top_row := table.iloc[0])["trial_id"] != best.trial_id and is_finite_number(top_row[best_column(info)]):
            lines.append(f"  (highest {info.metric}: trial {top_row['trial_id']}, {top_row[best_column(info)]:.4g}; "
                         "not picked: see the rule above)")
    else:
        lines += ["", f"best trial {best.trial_id}: {info.metric} = {best.value:.4g}{at} ({best.status})"]
    lines += [f"  {key}: {value}" for key, value in best.params.items()]
    row = table.loc[table["trial_id"] == best.trial_id].iloc[0]
    if not pd.isna(row.get("num_selected")) and "num_selected" not in best.values:
        lines.append(f"  selected features: {int(row['num_selected'])}")
    refit = table.attrs.get("refit")
    refitted = refit is not None and str(refit.get("trial_id")) == str(best.trial_id)
    if heldout := heldout_line(row, "its refit model" if refitted else None):
        lines.append(f"  {heldout}")
    if refitted:  # the model load_model, predict and the held-out test use
        lines.append(f"  model: refit on train + validation for {refit.get('epochs')} epochs: {refit['checkpoint']} "
                     "(the search's own: --trial)")
    lines.append(f"  checkpoint: {best.checkpoint or '(none)'}")
    lines += ["", f"top {min(top, len(table))} trials:", _top_table(results, top)]
    return "\n".join(lines), True


def counts_line(table: pd.DataFrame) -> str:
    """``12 trials: 2 completed, 8 stopped early by patience, 2 cut by ASHA``: counts that add up to the trials."""
    return f"{len(table)} trials: {count_words(table['outcome'].value_counts().to_dict()) or 'none'}"


def heldout_line(row: pd.Series, of: str | None = None) -> str | None:
    """``held-out test (120 samples): accuracy=0.87, task_loss=0.41`` for a table row, if it was tested.

    ``of``: which trial, in words, when the line stands on its own: ``held-out test (120 samples) of
    the picked trial 3f2a: ...``.
    """
    shown = {k.removeprefix("test_"): row[k] for k in row.index
             if k.startswith("test_") and k != "test_n" and not pd.isna(row[k])}
    if not shown:
        return None
    n = row.get("test_n")
    size = f" ({int(n)} samples)" if n is not None and not pd.isna(n) else ""
    which = f" of {of}" if of else ""
    return f"held-out test{size}{which}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items())


def _top_table(results: ExperimentResults, top: int) -> str:
    """The top trials in the columns that fit :data:`WIDTH`: the objectives side by side, then parameters."""
    table, info = results.table, results.info
    rows = table.head(top)
    objectives = {f"best_{m}": m for m, _ in info.all_objectives}
    frame = rows[list(objectives)].rename(columns=objectives)
    frame.insert(0, "trial_id", rows["trial_id"])
    if info.multi_objective:
        frame["front"] = rows["pareto"].map(lambda on: "*" if on is True else "")
    elif "num_selected" in table and table["num_selected"].notna().any():
        frame["num_selected"] = rows["num_selected"]
    frame["best_epoch"] = rows["best_epoch"]
    frame["status"] = [s if len(s) <= _STATUS_WIDTH else s[:_STATUS_WIDTH - 1] + "…" for s in rows["status"].astype(str)]
    text = _render(frame)
    for name in info.params:
        wider = frame.assign(**{param_column(name): rows[param_column(name)]})
        if _width(rendered := _render(wider)) <= WIDTH:
            frame, text = wider, rendered
    left = len(table.columns) - len(frame.columns) + (0 if info.multi_objective else 1)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return text + (f"\n({left} more columns and every trial in results.md)" if left > 0 else "")


def _render(frame: pd.DataFrame) -> str:
    frame = frame.copy()
    width = max([len("status"), *map(len, frame["status"])])
    frame["status"] = frame["status"].map(lambda s: s.ljust(width))  # words read from the left
    frame = frame.rename(columns={"status": "status".ljust(width)})
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def _width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def _from_tune(spec: Any, outcome: Any, why: Exception) -> tuple[str, bool]:
    """Counts from Tune's ResultGrid, for a folder that cannot be read here."""
    grid = outcome.results
    df = grid.get_dataframe() if len(grid) else None
    ok = df is not None and spec.primary_metric in df and df[spec.primary_metric].notna().any()
    lines = [f"experiment {spec.name}: {len(grid)} trials, {len(grid.errors)} failed -> {outcome.path}",
             f"(no results table here: {why})"]
    if not ok:
        lines.append(f"no trial reported {spec.primary_metric!r}: the run failed")
        lines += [f"  {_error_line(err)}" for err in grid.errors[:5]]
    return "\n".join(lines), bool(ok)


def _error_line(error: BaseException) -> str:
    """The last line of a trial's error: the message, not Ray's wrapper."""
    text = str(error).strip().splitlines()
    return text[-1][:300] if text else type(error).__name__


