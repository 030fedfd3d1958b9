"""One self-contained HTML report of an experiment: opens offline, plotly.js embedded.

Sections: summary, results table, learning curves, parameters against the metric,
parameter importance, accuracy against selected features (Pareto front), feature
selection stability. A figure that cannot be drawn (too few trials, no feature
selection) becomes a note in its section instead of failing the report.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from search.results.export import write_output
from search.results.folder import ResultsError
from search.results.summary import counts_line, heldout_line
from search.results.table import ExperimentResults, best_column, open_results
from search.experiment import ExperimentLike

__all__ = ["SECTIONS", "render_report", "write_report", "REPORT_FILE"]

REPORT_FILE = "report.html"

#: Section id -> (title, figure builder name in search.results.report_plots; None for the table).
SECTIONS: dict[str, tuple[str, str | None]] = {
    "results": ("Results table", None),
    "learning-curves": ("Learning curves", "learning_curves"),
    "schedules": ("Configurations over epochs (PBT)", "schedules"),
    "parameters": ("Parameters against the metric", "parallel_coordinates"),
    "importance": ("Parameter importance", "importance"),
    "pareto": ("Accuracy against selected features", "pareto"),
    "stability": ("Feature selection stability", "stability"),
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1320px;color:#222}
h1{font-size:24px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:14px} .note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;font-size:14px}
.scroll{overflow-x:auto;max-width:100%}
table.results{border-collapse:separate;border-spacing:0;font-size:12px;white-space:nowrap}
table.results th,table.results td{padding:3px 8px;border-bottom:1px solid #e5e5e5;text-align:right;background:#fff}
table.results th{background:#f5f5f5} table.results td.words,table.results th.words{text-align:left}
table.results th:first-child,table.results td:first-child{position:sticky;left:0;z-index:1;text-align:left;
  border-right:1px solid #ccc} table.results tr.chosen td{font-weight:600;background:#fffbe6}
"""


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _figure_html(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       default_height=f"{fig.layout.height or 460}px",
                       config={"displaylogo": False, "responsive": True})


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _table_columns(results: ExperimentResults) -> list[str]:
    """The table's columns in the order a reader looks for them: the trial, how it ended, its
    objectives and test figures, its parameters; the bookkeeping (last value, time, checkpoint) last."""
    from search.results.table import param_column

    table, info = results.table, results.info
    first = ["trial_id", "status", *(f"best_{m}" for m, _ in info.all_objectives),
             *(["pareto"] if info.multi_objective else []), "best_epoch",
             *(c for c in table.columns if c.startswith("test_")),
             *(["num_selected"] if "num_selected" not in dict(info.all_objectives) else []),
             *(param_column(p) for p in info.params)]
    first = [c for c in dict.fromkeys(first) if c in table.columns]
    # The table's own num_selected is at the best epoch too: beside best_num_selected it would say it twice.
    hidden = {"outcome", *(["num_selected"] if "num_selected" in dict(info.all_objectives) else [])}
    return first + [c for c in table.columns if c not in first and c not in hidden]


def _table_html(results: ExperimentResults, chosen: str | None) -> str:
    table = results.table[_table_columns(results)].copy()
    root = str(results.path) + "/"
    table["checkpoint"] = table["checkpoint"].map(lambda p: p.removeprefix(root) if isinstance(p, str) else "")
    header = "".join(f'<th{_words_class(c)}>{html.escape(str(c))}</th>' for c in table.columns)
    rows = []
    for row in table.itertuples(index=False):
        cells = "".join(f"<td{_words_class(c)}>{html.escape(_cell(v))}</td>" for c, v in zip(table.columns, row))
        rows.append(f'<tr{" class=chosen" if row[0] == chosen else ""}>{cells}</tr>')
    what = "the picked trial" if results.info.multi_objective else "the best trial"
    return (f'<p class="meta">Best {results.info.metric} first; {what} highlighted; the trial column stays in view '
            f'while the table scrolls; checkpoints relative to {html.escape(root)}</p>'
            f'<div class="scroll"><table class="results"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _words_class(column: str) -> str:
    return ' class="words"' if column in ("status", "checkpoint") else ""


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _chosen(results: ExperimentResults) -> Any:
    """The best trial (several objectives: the picked one), or the reason there is none."""
    from search.results.table import best_trial

    try:
        return best_trial(results)
    except ResultsError as exc:
        return exc


def _summary_html(results: ExperimentResults, chosen: Any) -> str:
    info, table = results.info, results.table
    lines = [f"{counts_line(table)}.", f"Metric: {info.metric} ({info.mode}). Folder: {results.path}."]
    if info.multi_objective:
        lines[-1] = (f"Objectives: {', '.join(f'{m} ({mode})' for m, mode in info.all_objectives)}: a Pareto front. "
                     f"Folder: {results.path}.")
    if isinstance(chosen, ResultsError):
        if table[best_column(info)].notna().any():
            lines.append(f"No trial picked: {chosen}")
    else:
        what = "picked trial" if chosen.front is not None else "best trial"
        row = table.loc[table["trial_id"] == chosen.trial_id].iloc[0]
        if chosen.front is not None:
            shown = ", ".join(f"{k} = {v:.4g}" for k, v in chosen.values.items())
            lines.append(f"Pareto front: {len(chosen.front)} trial(s). Picked ({chosen.rule}): trial {chosen.trial_id}, "
                         f"{shown} at epoch {chosen.epoch} ({chosen.status}).")
            top = table.iloc[0]
            if top["trial_id"] != chosen.trial_id:
                lines.append(f"Highest {info.metric}: trial {top['trial_id']} ({top[best_column(info)]:.4g}), not picked.")
        else:
            lines.append(f"Best trial: {chosen.trial_id}, {info.metric} = {chosen.value:.4g} "
                         f"at epoch {chosen.epoch} ({chosen.status}).")
        if heldout := heldout_line(row, of=f"the {what} {chosen.trial_id}"):
            lines.append(f"{heldout[0].upper()}{heldout[1:]} (measured once, after the search, on data no trial "
                         "trained or was selected on).")
    notes = "".join(_note(n) for n in results.notes)
    return "".join(f'<p class="meta">{html.escape(line)}</p>' for line in lines) + notes


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}">\n<h2>{html.escape(title)}</h2>\n{body}\n</section>\n'


def _build(builder: Callable[..., Any], results: ExperimentResults, section_id: str, **kw: Any) -> str:
    from search.results.report_plots import NoPlot

    try:
        fig = builder(results, **kw)
    except NoPlot as exc:
        return _note(str(exc))
    return _figure_html(fig, f"plot-{section_id}")


def render_report(experiment: ExperimentLike, top_k: int = 10) -> str:
    """The report as one HTML string (plotly.js inline, no network access needed to view it)."""
    from search.results import report_plots

    results = open_results(experiment)
    chosen = _chosen(results)
    sections = [_section("summary", "Summary", _summary_html(results, chosen))]
    pbt = results.info.spec is not None and results.info.spec.scheduler.type == "pbt"
    for section_id, (title, builder_name) in SECTIONS.items():
        if builder_name == "schedules" and not pbt:
            continue  # a configuration changes over epochs only under PBT
        if builder_name is None:
            body = _table_html(results, None if isinstance(chosen, ResultsError) else chosen.trial_id)
        else:
            kw = {"top_k": top_k} if builder_name == "stability" else {}
            body = _build(getattr(report_plots, builder_name), results, section_id, **kw)
        sections.append(_section(section_id, title, body))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = html.escape(f"{results.info.name}: search report")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n'
            f"<style>{_CSS}</style>\n<script type=\"text/javascript\">{_plotly_js()}</script>\n</head>\n<body>\n"
            f'<h1>{title}</h1><p class="meta">Generated {stamp} by python -m search report</p>\n'
            + "".join(sections) + "</body></html>\n")


def write_report(experiment: ExperimentLike, output: Path | None = None,
                 top_k: int = 10) -> Path | str:
    """Write the report (default: ``report.html`` in the experiment folder) atomically; where it is.

    Into a URI experiment's folder (read through its local copy) the report is uploaded
    too, and its URI returned.
    """
    results = open_results(experiment)
    path = Path(output) if output is not None else results.path / REPORT_FILE
    if path.suffix.lower() not in (".html", ".htm"):
        raise ResultsError(f"the report is HTML: give -o a name ending in .html (got {str(path)!r})")
    written = write_output(path, render_report(results, top_k))
    if output is None and (uploaded := results.experiment.publish([REPORT_FILE])):
        return uploaded[0]
    return written
