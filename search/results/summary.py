"""The end-of-run summary: the best trial and the top trials, from the same table as ``export``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from search.results.folder import ResultsError
from search.results.outcomes import Outcome, is_finite_number
from search.results.table import ExperimentResults, best_column, best_trial, front_text, open_results, param_column

__all__ = ["render_summary", "heldout_line"]


def render_summary(spec: Any, outcome: Any, top: int = 5, results: ExperimentResults | None = None) -> tuple[str, bool]:
    """Text for stdout, and whether the run succeeded (some trial produced the metric).

    ``outcome`` is the run's :class:`~search.engine.run.ExperimentOutcome`; the numbers come
    from the experiment folder's results table (:func:`~search.results.open_results`), so
    they are the ones ``export`` and ``best`` show; pass ``results`` when the folder is
    already read. A folder this process cannot read (remote storage) gets the counts Tune returned.
    """
    try:
        results = open_results(results if results is not None else outcome.experiment, spec)
    except ResultsError as exc:
        return _from_tune(spec, outcome, exc)
    table, info = results.table, results.info
    counts = table["outcome"].value_counts()
    lines = [f"experiment {info.name}: {len(table)} trials, {counts.get(Outcome.FAILED.value, 0)} failed, "
             f"{counts.get(Outcome.PRUNED.value, 0)} stopped by ASHA -> {outcome.path}"]
    if not table[best_column(info)].map(is_finite_number).any():
        lines.append(f"no trial reported {info.metric!r}: the run failed")
        failed = table[table["outcome"] == Outcome.FAILED.value]
        lines += [f"  trial {tid}: {status}" for tid, status in zip(failed["trial_id"][:5], failed["status"][:5])]
        lines += [f"  {_error_line(err)}" for err in outcome.results.errors[:5]] if failed.empty else []
        lines.append(f"full tracebacks: error.txt in each trial folder under {outcome.path}")
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
        lines += ["", f"picked trial {best.trial_id}: {shown}{at}"]
    else:
        lines += ["", f"best trial {best.trial_id}: {info.metric} = {best.value:.4g}{at}"]
    lines += [f"  {key}: {value}" for key, value in best.params.items()]
    row = table.loc[table["trial_id"] == best.trial_id].iloc[0]
    if not pd.isna(row["num_selected"]):
        lines.append(f"  selected features: {int(row['num_selected'])}")
    if heldout := heldout_line(row):
        lines.append(f"  {heldout}")
    lines.append(f"  checkpoint: {best.checkpoint or '(none)'}")
    lines += ["", f"top {min(top, len(table))} trials:", _top_table(results, top)]
    return "\n".join(lines), True


def heldout_line(row: pd.Series) -> str | None:
    """``held-out test (120 samples): accuracy=0.87, task_loss=0.41`` for a table row, if it was tested."""
    shown = {k.removeprefix("test_"): row[k] for k in row.index
             if k.startswith("test_") and k != "test_n" and not pd.isna(row[k])}
    if not shown:
        return None
    n = row.get("test_n")
    size = f" ({int(n)} samples)" if n is not None and not pd.isna(n) else ""
    return f"held-out test{size}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items())


def _top_table(results: ExperimentResults, top: int) -> str:
    table, info = results.table, results.info
    columns = ["trial_id", best_column(info), *(f"best_{m}" for m, _ in info.all_objectives[1:]),
               *(["pareto"] if info.multi_objective else []), "best_epoch", "status"]
    columns += [c for c in ("num_selected",) if table[c].notna().any()]
    columns += [param_column(p) for p in info.params]
    shown = table[columns].head(top).rename(columns={best_column(info): info.metric})
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


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


