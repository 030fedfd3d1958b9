"""The report's figures (plotly), one function per figure, each from an :class:`ExperimentResults`.

A figure that cannot be drawn raises :class:`NoPlot` with the reason, which the report
shows in the figure's place.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from search.results.features import selection_matrix
from search.results.folder import ResultsError
from search.results.outcomes import WORDS, Outcome, is_finite_number, pareto_front
from search.results.table import ExperimentResults, best_column, param_column
from search.spec.models import CategoricalParam

__all__ = ["NoPlot", "learning_curves", "schedules", "parallel_coordinates", "importance", "pareto", "stability"]

_STYLE = {  # outcome -> line dash, marker at the last epoch, colour (None: the trace's own)
    Outcome.PRUNED.value: ("dash", "x", None),
    Outcome.FAILED.value: ("dot", "circle-open", "#d62728"),
    Outcome.UNFINISHED.value: ("dot", "triangle-right", None),
    Outcome.DIVERGED.value: ("dot", "star", "#d62728"),
    Outcome.COLLAPSED.value: ("dot", "square-open", "#7f7f7f"),
}
MAX_FEATURES_SHOWN = 60


class NoPlot(Exception):
    """Why a figure is not in the report."""


def _layout(fig: go.Figure, title: str, height: int = 460, **kw: Any) -> go.Figure:
    kw.setdefault("margin", {"l": 60, "r": 30, "t": 60, "b": 50})
    fig.update_layout(title=title, height=height, template="plotly_white", **kw)
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)  # long parameter and feature names get the room they need
    return fig


def learning_curves(results: ExperimentResults) -> go.Figure:
    """Validation metric by epoch, one line per trial; ASHA's cuts marked with an x and its rungs."""
    info, fig = results.info, go.Figure()
    for row in results.table.itertuples(index=False):
        history = results.record(row.trial_id).history
        if info.metric not in history or "epoch" not in history:
            continue
        dash, symbol, colour = _STYLE.get(row.outcome, ("solid", "circle", None))
        sizes = [0] * (len(history) - 1) + [11 if symbol != "circle" else 0]
        fig.add_trace(go.Scatter(
            x=history["epoch"], y=pd.to_numeric(history[info.metric], errors="coerce"), mode="lines+markers",
            name=f"{row.trial_id} ({row.status})"[:60], line={"dash": dash, "color": colour, "width": 1.6},
            marker={"symbol": symbol, "size": sizes, "line": {"width": 2}},
            hovertemplate=f"trial {row.trial_id}<br>epoch %{{x}}<br>{info.metric} %{{y:.4g}}<extra>{row.status}</extra>"))
    if not fig.data:
        raise NoPlot(f"no trial reported {info.metric!r} by epoch yet")
    for rung in info.rungs:
        fig.add_vline(x=rung, line={"dash": "dot", "color": "#999", "width": 1}, annotation_text=f"ASHA rung {rung}",
                      annotation_position="top", annotation_font_size=10)
    return _layout(fig, f"{info.metric} by epoch (dashed with x: {WORDS[Outcome.PRUNED]})", 520,
                   xaxis_title="epoch", yaxis_title=info.metric, legend={"font": {"size": 10}})


def schedules(results: ExperimentResults) -> go.Figure:
    """PBT: each searched parameter by epoch, one step line per trial (the configurations its model trained under)."""
    info = results.info
    if info.spec is None or info.spec.scheduler.type != "pbt":
        raise NoPlot("configurations change over epochs only under PBT (scheduler type pbt)")
    params = [p for p in info.params if not isinstance(info.spec.space[p], CategoricalParam)] or list(info.params)
    fig = make_subplots(rows=len(params), cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=params)
    for i, row in enumerate(results.table.itertuples(index=False)):
        record = results.record(row.trial_id)
        if pd.isna(row.epochs_run) or int(row.epochs_run) < 1:
            continue
        epochs = int(row.epochs_run)
        schedule = [(first, c) for first, c in record.schedule or [(1, record.config)] if first <= epochs]
        steps = [first for first, _ in schedule] + [epochs]
        for j, name in enumerate(params, start=1):
            values = [record.config_at(first).get(name) for first in steps[:-1]]
            fig.add_trace(go.Scatter(
                x=steps, y=values + values[-1:], mode="lines", line={"shape": "hv", "width": 1.6},
                legendgroup=row.trial_id, showlegend=j == 1, name=f"{row.trial_id} ({row.status})"[:60],
                marker={"color": _COLOURS[i % len(_COLOURS)]}, line_color=_COLOURS[i % len(_COLOURS)],
                hovertemplate=f"trial {row.trial_id}<br>from epoch %{{x}}<br>{name} %{{y:.4g}}<extra></extra>"), row=j, col=1)
            if _is_log(results, name):
                fig.update_yaxes(type="log", row=j, col=1)
    if not fig.data:
        raise NoPlot("no trial has run an epoch yet")
    fig.update_xaxes(title_text="epoch", row=len(params), col=1)
    return _layout(fig, "Each trial's configuration by epoch (PBT: a step where it went on from a better trial's "
                        "checkpoint, mutated)", 220 * len(params) + 120, legend={"font": {"size": 10}})


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _finite_rows(results: ExperimentResults) -> pd.DataFrame:
    table = results.table
    return table[table[best_column(results.info)].map(is_finite_number)]


def _dimension(name: str, column: pd.Series, log: bool) -> dict[str, Any]:
    values = column.tolist()
    if all(is_finite_number(v) for v in values):
        if log and all(v > 0 for v in values):
            return {"label": f"log10({name})", "values": [math.log10(v) for v in values]}
        return {"label": name, "values": values}
    labels = sorted({str(v) for v in values})
    return {"label": name, "values": [labels.index(str(v)) for v in values], "tickvals": list(range(len(labels))),
            "ticktext": labels}


def _is_log(results: ExperimentResults, name: str) -> bool:
    spec = results.info.spec
    param = spec.space.get(name) if spec is not None else None
    return bool(getattr(param, "log", False))


def parallel_coordinates(results: ExperimentResults) -> go.Figure:
    """Each trial a line through its parameter values, coloured by its best metric."""
    rows, info = _finite_rows(results), results.info
    if rows.empty or not info.params:
        raise NoPlot("needs at least one trial with a finite metric and a searched parameter")
    dims = [_dimension(p, rows[param_column(p)], _is_log(results, p)) for p in info.params]
    metric = rows[best_column(info)].tolist()
    dims.append({"label": f"best {info.metric}", "values": metric})
    scale = "Viridis" if info.mode == "max" else "Viridis_r"
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": metric, "colorscale": scale, "showscale": True,
                                                        "colorbar": {"title": {"text": info.metric}}}))
    return _layout(fig, f"parameters against best {info.metric} ({len(rows)} trials)", 480,
                   margin={"l": 80, "r": 80, "t": 90, "b": 40})


def _study(results: ExperimentResults) -> Any:
    """The searcher's Optuna study, or one rebuilt from the table."""
    if results.files.study is not None:
        return results.files.study
    import optuna

    info = results.info
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory" is not the report's news
    study = optuna.create_study(direction="maximize" if info.mode == "max" else "minimize")
    done = {Outcome.COMPLETED.value, Outcome.EARLY_STOPPED.value, Outcome.THRESHOLD.value}
    for row in results.table.to_dict("records"):
        value = row[best_column(info)]  # the searcher's definition of a trial's value (its best epoch)
        params = {p: results.record(row["trial_id"]).config.get(p) for p in info.params}
        if row["outcome"] not in done or not is_finite_number(value) or None in params.values():
            continue
        study.add_trial(optuna.trial.create_trial(params=params, distributions=_distributions(results, params),
                                                  value=float(value)))
    return study


def _distributions(results: ExperimentResults, params: dict[str, Any]) -> dict[str, Any]:
    import optuna

    from search.spec.space import to_distribution

    spec, table = results.info.spec, results.table
    out = {}
    for name, value in params.items():
        if spec is not None and name in spec.space:
            out[name] = to_distribution(spec.space[name])
            continue
        seen = table[param_column(name)].dropna().tolist()  # no spec: the range the trials covered
        if all(is_finite_number(v) for v in seen) and seen:
            out[name] = optuna.distributions.FloatDistribution(min(seen), max(seen) + (max(seen) == min(seen)))
        else:
            out[name] = optuna.distributions.CategoricalDistribution(sorted({str(v) for v in seen}))
            params[name] = str(value)
    return out


def importance(results: ExperimentResults) -> go.Figure:
    """Optuna's parameter importances (fANOVA) on the trials Optuna saw complete."""
    import optuna

    study = _study(results)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        raise NoPlot(f"parameter importance needs at least 2 completed trials; Optuna saw {len(complete)} "
                     f"(trials {WORDS[Outcome.PRUNED]} count as pruned, failed ones not at all)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = (lambda t: t.values[0]) if len(study.directions) > 1 else None  # several: the first objective
            scores = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=target)
    except (RuntimeError, ValueError) as exc:
        raise NoPlot(f"Optuna could not compute importances: {exc}") from exc
    if not scores:
        raise NoPlot("Optuna found no parameter shared by the completed trials")
    names = list(scores)[::-1]
    fig = go.Figure(go.Bar(x=[scores[n] for n in names], y=names, orientation="h", marker_color="#4c78a8",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    return _layout(fig, f"parameter importance (fANOVA, {len(complete)} completed trials)", 140 + 40 * len(names),
                   xaxis_title="importance (sums to 1)")


def _accuracy_points(results: ExperimentResults) -> tuple[str, str, list[dict[str, Any]]]:
    """The accuracy-like metric, its mode, and per trial (its value, features) at its best epoch."""
    info = results.info
    use_accuracy = info.metric != "val_accuracy" and any("val_accuracy" in r.history for r in results.files.trials)
    metric, mode = ("val_accuracy", "max") if use_accuracy else (info.metric, info.mode)
    points = []
    for row in _finite_rows(results).itertuples(index=False):
        history = results.record(row.trial_id).history
        at = history[history["epoch"] == row.best_epoch] if "epoch" in history else history.iloc[0:0]
        if at.empty or "num_selected" not in at or metric not in at:
            continue
        value, count = at.iloc[-1][metric], at.iloc[-1]["num_selected"]
        if is_finite_number(value) and is_finite_number(count):
            points.append({"trial": row.trial_id, "value": float(value), "count": float(count), "status": row.status})
    return metric, mode, points


def _objective_front(results: ExperimentResults) -> go.Figure:
    """Several objectives: the first against the second, every trial at its best epoch; the study's front, the pick."""
    from search.results.pareto import FRONT_OUTCOMES, PARETO_COLUMN
    from search.results.table import best_trial

    info, table = results.info, results.table
    (first, _), (second, second_mode) = info.all_objectives[:2]
    x, y = f"best_{second}", f"best_{first}"
    shown = table[table[x].map(is_finite_number) & table[y].map(is_finite_number)]
    if shown.empty:
        raise NoPlot(f"no trial reported both {first} and {second} yet")
    try:
        picked = best_trial(results)
    except ResultsError:
        picked = None
    fig = go.Figure()
    groups = (("finished, dominated", ~shown[PARETO_COLUMN] & shown["outcome"].isin(FRONT_OUTCOMES),
               {"size": 9, "color": "#9ecae1"}, "markers"),
              (f"{WORDS[Outcome.PRUNED]}, stopped, collapsed or failed (not on the front)",
               ~shown["outcome"].isin(FRONT_OUTCOMES),
               {"size": 8, "color": "#bbbbbb", "symbol": "x"}, "markers"),
              ("Pareto front", shown[PARETO_COLUMN], {"size": 12, "color": "#d62728", "symbol": "diamond"},
               "lines+markers"))
    for name, mask, style, mode in groups:
        rows = shown[mask.astype(bool)].sort_values(x, ascending=second_mode == "min")
        fig.add_trace(go.Scatter(
            x=rows[x], y=rows[y], name=name, marker=style, mode=mode, line={"shape": "hv", "color": "#d62728"},
            text=[f"trial {t} ({s})" for t, s in zip(rows["trial_id"], rows["status"])],
            hovertemplate=f"%{{text}}<br>{second} %{{x:.4g}}<br>{first} %{{y:.4g}}<extra></extra>"))
    if picked is not None:
        fig.add_trace(go.Scatter(x=[picked.values[second]], y=[picked.values[first]], name=f"picked: {picked.rule}",
                                 mode="markers", marker={"size": 20, "color": "#f0b400", "symbol": "star",
                                                         "line": {"width": 1, "color": "#333"}},
                                 hovertemplate=f"trial {picked.trial_id} (picked)<extra></extra>"))
    more = f" (of {len(info.all_objectives)} objectives)" if len(info.all_objectives) > 2 else ""
    return _layout(fig, f"{first} against {second}{more}: the front the study found, at each trial's best epoch", 480,
                   xaxis_title=second, yaxis_title=first)


def pareto(results: ExperimentResults) -> go.Figure:
    """Accuracy against the number of selected features, at each trial's best epoch; the front marked.

    Several objectives: the first two objectives instead, with the table's front and the picked trial.
    """
    if results.info.multi_objective:
        return _objective_front(results)
    metric, mode, points = _accuracy_points(results)
    if not points:
        raise NoPlot("no trial reported num_selected with its metric: the trainable does not select features")
    front = pareto_front([p["value"] for p in points], [p["count"] for p in points], mode)
    fig = go.Figure()
    for on_front, name, style in ((False, "trial", {"size": 9, "color": "#9ecae1"}),
                                  (True, "Pareto front", {"size": 12, "color": "#d62728", "symbol": "diamond"})):
        chosen = sorted((p for p, f in zip(points, front) if f == on_front), key=lambda p: p["count"])
        fig.add_trace(go.Scatter(
            x=[p["count"] for p in chosen], y=[p["value"] for p in chosen], name=name, marker=style,
            mode="lines+markers" if on_front else "markers", line={"shape": "hv", "color": "#d62728"},
            text=[f"trial {p['trial']} ({p['status']})" for p in chosen],
            hovertemplate=f"%{{text}}<br>features %{{x}}<br>{metric} %{{y:.4g}}<extra></extra>"))
    return _layout(fig, f"{metric} against the number of selected features (at each trial's best epoch)", 460,
                   xaxis_title="selected features", yaxis_title=metric)


def stability(results: ExperimentResults, top_k: int = 10) -> go.Figure:
    """Gate probabilities of the top-K trials (heat map) and how often each feature is selected."""
    try:
        probs, selected = selection_matrix(results, top_k)
    except ResultsError as exc:
        raise NoPlot(str(exc)) from exc
    frequency = selected.mean().sort_values(ascending=False, kind="stable")
    order = [f for f in frequency.index if frequency[f] > 0 or probs[f].max() > 0.05][:MAX_FEATURES_SHOWN]
    order = order or list(frequency.index[:MAX_FEATURES_SHOWN])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.3, 0.7], vertical_spacing=0.04)
    fig.add_trace(go.Bar(x=order, y=[frequency[f] for f in order], marker_color="#4c78a8", name="selected by the live trials",
                         hovertemplate="%{x}: selected by %{y:.0%} of the live trials shown<extra></extra>"), row=1, col=1)
    labels = [f"#{i + 1} {tid}" for i, tid in enumerate(probs.index)]
    fig.add_trace(go.Heatmap(z=probs[order].to_numpy(), x=order, y=labels, zmin=0, zmax=1, colorscale="Blues",
                             colorbar={"title": {"text": "P(gate open)"}, "y": 0.35, "len": 0.7},
                             hovertemplate="trial %{y}<br>%{x}: %{z:.3f}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title_text="frequency", range=[0, 1], row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=2, col=1)
    # What is hidden, counted for what it is: features no trial selected, and selected ones past the display cap.
    hidden = len(frequency) - len(order)
    never = min(int(((frequency == 0) & (probs.max() <= 0.05)).sum()), hidden)
    parts = ([f"{never} never selected"] if never else []) + (
        [f"{hidden - never} past the first {MAX_FEATURES_SHOWN} shown"] if hidden > never else [])
    note = f" ({hidden} features hidden: {', '.join(parts)})" if hidden > 0 else ""
    return _layout(fig, f"feature selection across the {len(probs)} live trials shown{note}", 260 + 28 * len(probs),
                   showlegend=False)
