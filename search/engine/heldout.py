"""A held-out test, used once: after the search, the chosen trial's model on data no trial trained or was selected on.

The trials train on the train split and are ranked (by Optuna, ASHA, the table) on the
validation split; the test split is touched only here, by the trainable's own evaluation
function (its ``evaluate`` attribute, ``evaluate(config, checkpoint_dir, data) -> {metric:
number}``; the built-in one is :func:`trainables.tasks.evaluate_feature_selection`), on the
best checkpoint of the best trial. The figures go to :data:`~search.experiment.HELDOUT_FILE` in
the experiment folder, which the results table turns into ``test_<metric>`` columns. With
several objectives, every trial of the Pareto front is evaluated (the picked one first), so
the front can be compared on the test split too; the pick itself never looks at it. A
trainable without an evaluation function gets no file and no columns: nothing is faked.

When the run refitted the picked trial's configuration on train + validation
(:mod:`search.engine.refit`), that model is the one tested for the picked trial; the file's
``refit`` entry says so (trial, epochs, rows) and keeps the search's own checkpoint's figures
beside it (``search_model``), for comparison.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from search.spec.models import Spec
from search.spec.registry import resolve_trainable
from search.experiment import HELDOUT_FILE, Experiment

__all__ = ["evaluate_heldout"]


def evaluate_heldout(spec: Spec, experiment: Experiment, data: Any, search_paths: tuple[Path, ...] = (), *,
                     results: Any = None, refit: dict[str, Any] | None = None) -> dict[str, float] | None:
    """Evaluate the best trial on the held-out split and record it; its ``test_*`` metrics, or None (no evaluator).

    ``results``: the experiment's results already read (else they are read here). ``refit``:
    the refit's record (:func:`search.results.table.read_refit`); for the trial it names, its
    model is the one tested.

    Raises:
        ResultsError: no trial has a value or a checkpoint to evaluate.
    """
    from search.results import best_trial, open_results
    from search.results.table import require_checkpoint

    evaluator = getattr(resolve_trainable(spec.trainable, search_paths), "evaluate", None)
    if evaluator is None:
        return None
    results = results if results is not None else open_results(experiment, spec)
    best = best_trial(results)
    chosen = [best.trial_id]
    if best.front is not None:  # several objectives: every trial of the front, the picked one first
        chosen += [t for t in best.front["trial_id"] if t != best.trial_id]
    tested: dict[str, dict[str, float]] = {}
    for trial_id in chosen:
        record = results.record(trial_id)
        shown = _tested(evaluator(dict(record.config), require_checkpoint(results, record), data))
        if shown:
            tested[trial_id] = shown
    refitted = refit if refit is not None and str(refit.get("trial_id")) == best.trial_id else None
    if refitted is not None:
        own = tested.pop(best.trial_id, None)
        shown = _tested(evaluator(dict(results.record(best.trial_id).config), refitted["checkpoint"], data))
        if shown:
            tested = {best.trial_id: shown, **tested}
    if best.trial_id not in tested:
        return None
    chosen_by = (f"picked from the Pareto front on validation: {best.rule}" if best.rule
                 else f"best {spec.primary_metric} ({spec.primary_mode}) on validation")
    record_file: dict[str, Any] = {"split": "test", "chosen_by": chosen_by, "chosen": best.trial_id, "trials": tested}
    if refitted is not None:
        record_file["refit"] = {"trial_id": best.trial_id, "epochs": refitted.get("epochs"),
                                "data": refitted.get("data"), "rows": refitted.get("rows"),
                                "checkpoint": str(refitted["checkpoint"].relative_to(results.path)),
                                "search_model": own or {}}
    experiment.write_files({HELDOUT_FILE: json.dumps(record_file, indent=2) + "\n"})
    return tested[best.trial_id]


def _tested(metrics: Any) -> dict[str, float]:
    """An evaluation's finite numbers as ``test_<name>`` figures."""
    return {f"test_{k}": float(v) for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
