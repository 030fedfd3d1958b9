"""Which features the trials selected: the gate probabilities saved beside each best checkpoint.

By default the picked trial's selected features, and how stable each is over the *live* trials:
with several objectives the Pareto front (never a collapsed trial: every gate closed, or no
better than the majority class), with one objective the top K trials that did not collapse.
Collapsed and all-open trials would otherwise make every feature look selected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from search.experiment import ExperimentLike
from search.results.folder import ResultsError, TrialRecord, best_checkpoint
from search.results.outcomes import Outcome
from search.results.table import ExperimentResults, model_checkpoint, open_results
from trainables.files import SELECTION_FILE

__all__ = ["feature_table", "selection_matrix", "stability_trials"]


def _selection(results: ExperimentResults, record: TrialRecord, checkpoint: Path | None = None) -> dict[str, Any] | None:
    checkpoint = checkpoint or best_checkpoint(record, results.info)
    file = checkpoint / SELECTION_FILE if checkpoint else None
    if file is None or not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
        return {"probabilities": dict(zip(data["feature_names"], map(float, data["gate_probabilities"]))),
                "selected": set(data["selected"])}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        results.notes.append(f"trial {record.trial_id}: {file} is damaged; skipped")
        return None


def stability_trials(results: ExperimentResults, top_k: int = 10) -> list[TrialRecord]:
    """The trials selection stability is measured over, best first: the live front, or the top K live trials.

    Several objectives: the Pareto front (collapsed trials are never on it), ordered as the table
    is, at most ``top_k``. One objective: the ``top_k`` best trials that did not collapse.
    """
    from search.results.pareto import PARETO_COLUMN

    table = results.table
    live = table[table["outcome"] != Outcome.COLLAPSED.value]
    if results.info.multi_objective and PARETO_COLUMN in live:
        live = live[live[PARETO_COLUMN]]
    ranked = {r.trial_id for r in results.ranked()}
    return [results.record(t) for t in live["trial_id"] if t in ranked][:top_k]


def selection_matrix(experiment: ExperimentLike, top_k: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gate probabilities and selections (0/1) of the live trials (:func:`stability_trials`), best first.

    Rows are trials, columns features.
    """
    results = open_results(experiment)
    if top_k < 1:
        raise ResultsError(f"--top-k must be >= 1, got {top_k}")
    picked: dict[str, dict[str, Any]] = {}
    for record in stability_trials(results, top_k):
        selection = _selection(results, record)
        if selection is not None:
            picked[record.trial_id] = selection
    if not picked:
        raise ResultsError(f"no live trial of {results.path} has a {SELECTION_FILE} in its best checkpoint: the "
                           "trainable does not select features, the checkpoints are missing, or every trial collapsed")
    probs = pd.DataFrame({tid: s["probabilities"] for tid, s in picked.items()}).T
    selected = pd.DataFrame({tid: {f: float(f in s["selected"]) for f in s["probabilities"]} for tid, s in picked.items()}).T
    return probs, selected[probs.columns]


def feature_table(experiment: ExperimentLike, top_k: int = 10, *, all_features: bool = False) -> pd.DataFrame:
    """The picked trial's selected features: gate probability, and how often the live trials select each.

    The picked trial's gates are those of the model refitted on train + validation when the run
    made one (``attrs["refit"]``), else of its best checkpoint.

    Columns: ``feature``, ``gate_probability``, ``selected`` (in the picked trial),
    ``selection_frequency`` (fraction of the live trials: the front, or the top K that did not
    collapse), ``times_selected``. Only the picked trial's selected features unless
    ``all_features`` (every feature, sorted by gate probability). ``attrs``: ``best_trial``,
    ``top_trials`` (the trials the frequency is over), ``top_k``, ``all_features``, ``hidden``
    (features left out).

    Raises:
        ResultsError: the best trial's checkpoint (or its selection) is missing.
    """
    results = open_results(experiment)
    picked, checkpoint, refit = model_checkpoint(results)  # the refit model's gates when the run made one
    own = _selection(results, results.record(picked), checkpoint)
    if own is None:
        trainable = results.info.spec.trainable if results.info.spec is not None else "its trainable"
        raise ResultsError(f"`features` needs a model with feature gates (the built-in feature_selection "
                           f"trainable); {trainable} selects no features (trial {picked}'s checkpoint {checkpoint} "
                           f"has no {SELECTION_FILE}). Its results: best, export, report")
    _, selected = selection_matrix(results, top_k)
    names = list(own["probabilities"])
    df = pd.DataFrame({
        "feature": names,
        "gate_probability": [own["probabilities"][n] for n in names],
        "selected": [n in own["selected"] for n in names],
        "selection_frequency": [float(selected[n].mean()) if n in selected else 0.0 for n in names],
        "times_selected": [int(selected[n].sum()) if n in selected else 0 for n in names],
    })
    df = df.sort_values(["gate_probability", "selection_frequency"], ascending=False, kind="stable").reset_index(drop=True)
    shown = df if all_features else df[df["selected"]].reset_index(drop=True)
    shown.attrs = {"best_trial": picked, "refit": refit, "top_trials": list(selected.index), "top_k": top_k,
                   "all_features": all_features, "hidden": len(df) - len(shown)}
    return shown
