"""Which features the trials selected: the gate probabilities saved beside each best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from search.experiment import ExperimentLike
from search.results.folder import ResultsError, TrialRecord, best_checkpoint
from search.results.table import ExperimentResults, best_trial, open_results, require_checkpoint
from trainables.files import SELECTION_FILE

__all__ = ["feature_table", "selection_matrix"]


def _selection(results: ExperimentResults, record: TrialRecord) -> dict[str, Any] | None:
    checkpoint = best_checkpoint(record, results.info)
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


def selection_matrix(experiment: ExperimentLike, top_k: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gate probabilities and selections (0/1) of the top-K trials: rows are trials (best first), columns features."""
    results = open_results(experiment)
    if top_k < 1:
        raise ResultsError(f"--top-k must be >= 1, got {top_k}")
    picked: dict[str, dict[str, Any]] = {}
    for record in results.ranked():
        if len(picked) == top_k:
            break
        selection = _selection(results, record)
        if selection is not None:
            picked[record.trial_id] = selection
    if not picked:
        raise ResultsError(f"no trial of {results.path} has a {SELECTION_FILE} in its best checkpoint: the trainable "
                           "does not select features, or the checkpoints are missing")
    probs = pd.DataFrame({tid: s["probabilities"] for tid, s in picked.items()}).T
    selected = pd.DataFrame({tid: {f: float(f in s["selected"]) for f in s["probabilities"]} for tid, s in picked.items()}).T
    return probs, selected[probs.columns]


def feature_table(experiment: ExperimentLike, top_k: int = 10) -> pd.DataFrame:
    """Each feature's gate probability in the best trial, and how often the top-K trials select it.

    Columns: ``feature``, ``gate_probability``, ``selected`` (in the best trial),
    ``selection_frequency`` (fraction of the top-K trials), ``times_selected``. Sorted by
    gate probability. ``attrs``: ``best_trial``, ``top_trials``.

    Raises:
        ResultsError: the best trial's checkpoint (or its selection) is missing.
    """
    results = open_results(experiment)
    best = best_trial(results)
    require_checkpoint(results, results.record(best.trial_id))
    own = _selection(results, results.record(best.trial_id))
    if own is None:
        raise ResultsError(f"the best trial {best.trial_id}'s checkpoint {best.checkpoint} has no {SELECTION_FILE}: "
                           "its trainable does not select features")
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
    df.attrs = {"best_trial": best.trial_id, "top_trials": list(selected.index), "top_k": top_k}
    return df
