"""One self-contained HTML report of an experiment: opens offline, plotly.js embedded.

Sections: summary, results table, learning curves, parameters against the metric,
parameter importance, accuracy against selected features (Pareto front), feature
selection stability. A figure that cannot be drawn (too few trials, no feature
selection) becomes a note in its section instead of failing the report.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from search.results.export import write_output
from search.results.folder import ResultsError
from search.results.summary import heldout_line
from search.results.table import ExperimentResults, best_column, open_results
from search.experiment import ExperimentLike

__all__ = ["SECTIONS", "render_report", "write_report", "REPORT_FILE"]

REPORT_FILE = "report.html"

#: Section id -> (title, figure builder name in search.results.report_plots; None for the table).
SECTIONS: dict[str, tuple[str, str | None]] = {
    "results": ("Results table", None),
    "learning-curves": ("Learning curves", "learning_curves"),
    "parameters": ("Parameters against the metric", "parallel_coordinates"),
    "importance": ("Parameter importance", "importance"),
    "pareto": ("Accuracy against selected features", "pareto"),
    "stability": ("Feature selection stability", "stability"),
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1320px;color:#222}
h1{font-size:24px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:14px} .note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;font-size:14px}
.scroll{overflow-x:auto} table.results{border-collapse:collapse;font-size:12px;white-space:nowrap}
table.results th,table.results td{padding:3px 8px;border-bottom:1px solid #e5e5e5;text-align:right}
table.results th{background:#f5f5f5} table.results tr:first-child td{font-weight:600}
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


def _table_html(results: ExperimentResults) -> str:
    table = results.table.copy()
    root = str(results.path) + "/"
    table["checkpoint"] = table["checkpoint"].map(lambda p: p.removeprefix(root) if isinstance(p, str) else "")
    body = table.to_html(index=False, na_rep="", border=0, classes="results",
                         float_format=lambda v: f"{v:.4g}")
    return f'<p class="meta">Best first; checkpoints relative to {html.escape(root)}</p><div class="scroll">{body}</div>'


_OUTCOME_WORDS = {"pruned": "stopped by ASHA", "early_stopped": "stopped early by patience",
                  "threshold": "reached their target", "stopped": "stopped before their last epoch"}


def _summary_html(results: ExperimentResults) -> str:
    info, table = results.info, results.table
    counts = Counter(table["outcome"])
    parts = [f"{n} {_OUTCOME_WORDS.get(outcome, outcome)}" for outcome, n in counts.most_common()]
    lines = [f"{len(table)} trials: {', '.join(parts) or 'none'}.",
             f"Metric: {info.metric} ({info.mode}). Folder: {results.path}."]
    best = table[best_column(info)].dropna()
    if info.multi_objective:
        lines[-1] = (f"Objectives: {', '.join(f'{m} ({mode})' for m, mode in info.all_objectives)}: a Pareto front. "
                     f"Folder: {results.path}.")
        from search.results.table import best_trial

        try:
            picked = best_trial(results)
        except ResultsError as exc:
            lines.append(f"No trial picked: {exc}")
        else:
            shown = ", ".join(f"{k} = {v:.4g}" for k, v in picked.values.items())
            lines.append(f"Pareto front: {len(picked.front)} trial(s). Picked ({picked.rule}): trial {picked.trial_id}, "
                         f"{shown} at epoch {picked.epoch} ({picked.status}).")
            row = table.loc[table["trial_id"] == picked.trial_id].iloc[0]
            if heldout := heldout_line(row):
                lines.append(f"{heldout[0].upper()}{heldout[1:]} (measured once, after the search, on data no trial "
                             "trained or was selected on).")
    elif not best.empty:
        row = table.loc[best.index[0]]
        lines.append(f"Best: trial {row['trial_id']}, {info.metric} = {row[best_column(info)]:.4g} "
                     f"at epoch {row['best_epoch']} ({row['status']}).")
        if heldout := heldout_line(row):
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
    sections = [_section("summary", "Summary", _summary_html(results))]
    for section_id, (title, builder_name) in SECTIONS.items():
        if builder_name is None:
            body = _table_html(results)
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
