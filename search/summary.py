"""The end-of-run summary: best trial and the top trials as a table."""

from __future__ import annotations

from typing import Any

from search.spec import Spec

__all__ = ["render_summary"]


def render_summary(spec: Spec, outcome: Any, top: int = 5) -> tuple[str, bool]:
    """Text for stdout, and whether the run succeeded (some trial produced the metric)."""
    results = outcome.results
    df = results.get_dataframe(filter_metric=spec.metric, filter_mode=spec.mode) if len(results) else None
    errors = len(results.errors)
    lines = [f"experiment {spec.name}: {len(results)} trials, {errors} failed, "
             f"{len(outcome.pruned)} stopped by ASHA -> {outcome.path}"]
    if df is None or spec.metric not in df or df[spec.metric].dropna().empty:
        lines.append(f"no trial reported {spec.metric!r}: the run failed")
        lines += [f"  {_error_line(err)}" for err in results.errors[:5]]
        lines.append(f"full tracebacks: error.txt in each trial folder under {outcome.path}")
        return "\n".join(lines), False
    best = results.get_best_result(metric=spec.metric, mode=spec.mode, scope="all")
    best_row = df.loc[df["trial_id"] == _trial_id(best)].iloc[0] if _trial_id(best) in set(df["trial_id"]) else None
    lines.append("")
    lines.append(f"best trial {_trial_id(best)}: {spec.metric} = {_best_value(best, spec):.4g}")
    for key in spec.space:
        if key in best.config:
            lines.append(f"  {key}: {best.config[key]}")
    if best_row is not None and "num_selected" in best_row:
        lines.append(f"  selected features: {int(best_row['num_selected'])}")
    lines.append(f"  checkpoint: {_best_checkpoint(best, spec)}")
    columns = ["trial_id", spec.metric, "epoch", *(c for c in ("num_selected",) if c in df)]
    columns += [f"config/{k}" for k in spec.space if f"config/{k}" in df]
    table = df[columns].sort_values(spec.metric, ascending=spec.mode == "min").head(top)
    table.columns = [c.removeprefix("config/") for c in table.columns]
    lines.append("")
    lines.append(f"top {min(top, len(table))} trials:")
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines), True


def _error_line(error: BaseException) -> str:
    """The last line of a trial's error: the message, not Ray's wrapper."""
    text = str(error).strip().splitlines()
    return text[-1][:300] if text else type(error).__name__


def _trial_id(result: Any) -> str:
    """The trial id from its metrics, else from its folder name (``trial_<id>``)."""
    if result.metrics and "trial_id" in result.metrics:
        return str(result.metrics["trial_id"])
    return str(result.path).rstrip("/").rsplit("/", 1)[-1].removeprefix("trial_")


def _best_value(result: Any, spec: Spec) -> float:
    df = result.metrics_dataframe
    series = df[spec.metric].dropna()
    return float(series.max() if spec.mode == "max" else series.min())


def _best_checkpoint(result: Any, spec: Spec) -> str:
    if result.best_checkpoints:
        ordered = sorted(result.best_checkpoints, key=lambda cm: cm[1].get(spec.metric, float("nan")),
                         reverse=spec.mode == "max")
        return ordered[0][0].path
    path = (result.metrics or {}).get("checkpoint_path")  # TorchTrainer path: Train owns the checkpoint
    return path or "(none)"
