"""The refit: after the search, the picked trial's configuration trained once more on train + validation.

The trials learn from the train split and are ranked on the validation split; once one is picked
(:func:`search.results.best_trial`: the best trial, or the one the ``select`` rule picks from the
front), those validation rows have done their job and can train the final model too
(scikit-learn's ``refit``). The trainable's own ``refit`` attribute does it, beside its training
function as ``evaluate`` is::

    refit(config, data, epochs, out_dir[, checkpoint=...]) -> Mapping | None

It trains the trial's config (with its seed) on ``data`` with the validation rows joined to the
train rows, for ``epochs`` epochs (no validation, so no early stopping), and writes a checkpoint
folder laid out as a trial's into ``out_dir``. ``epochs`` is as long as the trial trained: the
epochs it ran (its best epoch plus the patience that confirmed it, or every epoch when early
stopping is off), never fewer than its best epoch. Not the best epoch alone: that is the maximum
of a noisy validation curve (on Madelon's 400 validation rows, 0.86 at epoch 160, 0.8975 at 161,
0.875 at 170), and refitting to it left test accuracy behind. Measured on the same three searches,
15 refits each way (``docs/benchmarks.md``, the refit study): +0.005 on the mean, paired sd 0.007,
with the refit's test accuracy flat or rising from epoch 100 to 400. A refit function that declares
a ``checkpoint`` parameter (or ``**kwargs``) is also given the picked trial's best checkpoint
folder (a local path), so it can start from what the trial learned; one that does not is called
as before. What it returns, a mapping of JSON values, is added to the record (the keys below win
over its own). The built-in one, :func:`trainables.tasks.refit_feature_selection`, reads the
trial's gates from that checkpoint, freezes them and retrains only the classifier, so the refit
model keeps exactly the trial's selected features.

It runs in the driver after the search, before the held-out test, and writes
:data:`~search.results.table.REFIT_DIR` into the experiment folder (``refit.json`` and
``checkpoint/``; a URI experiment's are uploaded). ``load_model``, ``load_predictor``,
``predict`` and the held-out test then use that model; ``--trial ID`` still reaches a trial's
own checkpoint. ``refit: false`` in the spec, or a trainable without a ``refit`` function, keeps
the search's own model. A refit already made for the same trial is kept, so every ``resume``
end does it only when it is missing.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from search.experiment import Experiment
from search.results.table import REFIT_CHECKPOINT, REFIT_DIR, REFIT_RECORD, read_refit, require_checkpoint
from search.spec.models import Spec
from search.spec.registry import resolve_trainable

__all__ = ["refit_picked", "refit_function"]


def refit_picked(spec: Spec, experiment: Experiment, data: Any, search_paths: tuple[Path, ...] = (), *,
                 results: Any = None) -> dict[str, Any] | None:
    """Refit the picked trial's configuration and record it; the record, or None (off, or not supported).

    ``results``: the experiment's results already read (else they are read here). A refit
    of the same trial already in the folder is returned as it is.

    Raises:
        ResultsError: no trial to pick, or the picked trial has no best epoch.
        Exception: whatever the trainable's refit function raises (the caller reports it).
    """
    from search.results import ResultsError, best_trial, open_results

    refit = refit_function(spec, search_paths)
    if refit is None:
        return None
    results = results if results is not None else open_results(experiment, spec)
    best = best_trial(results)
    done = read_refit(results.path)
    if done is not None and str(done["trial_id"]) == best.trial_id:
        return done
    if best.epoch is None or best.epoch < 1:
        raise ResultsError(f"trial {best.trial_id} has no best epoch to refit for")
    epochs = _epochs_to_refit(results, best.trial_id, int(best.epoch))
    trial = results.record(best.trial_id)
    # The picked trial's best checkpoint, for a refit that starts from it (found before anything is written).
    given = {"checkpoint": require_checkpoint(results, trial)} if _accepts_checkpoint(refit) else {}
    local = experiment.local
    partial = local / f"{REFIT_DIR}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    said = refit(dict(trial.config), data, epochs, partial / Path(REFIT_CHECKPOINT).relative_to(REFIT_DIR),
                 **given)
    record = {**(dict(said) if isinstance(said, Mapping) else {}),
              "trial_id": best.trial_id, "epochs": epochs, "best_epoch": int(best.epoch), "data": "train + validation",
              "rows": _rows(data), "seed": trial.config.get("seed"),
              "checkpoint": REFIT_CHECKPOINT, "chosen_by": best.rule or f"best {best.metric} ({best.mode}) on validation",
              "time_s": round(time.perf_counter() - started, 3)}
    if given:  # which checkpoint it started from, relative to the experiment folder when inside it
        source, root = given["checkpoint"].resolve(), local.resolve()
        record["from_checkpoint"] = str(source.relative_to(root) if source.is_relative_to(root) else source)
    (partial / Path(REFIT_RECORD).relative_to(REFIT_DIR)).write_text(json.dumps(record, indent=2) + "\n")
    # Swap in whole: a refit cut short leaves refit.partial/, never a refit/ that looks complete.
    shutil.rmtree(local / REFIT_DIR, ignore_errors=True)
    partial.rename(local / REFIT_DIR)
    if experiment.is_remote:
        experiment.publish(sorted(str(p.relative_to(local)) for p in (local / REFIT_DIR).rglob("*") if p.is_file()))
    return read_refit(local)


def refit_function(spec: Spec, search_paths: tuple[str | Path, ...] = ()) -> Callable[..., Any] | None:
    """The trainable's ``refit`` function when the spec refits (``spec.refits``), else None."""
    if not spec.refits:
        return None
    return getattr(resolve_trainable(spec.trainable, tuple(search_paths)), "refit", None)


def _epochs_to_refit(results: Any, trial_id: str, best_epoch: int) -> int:
    """The epochs the trial ran (the table's ``epochs_run``), at least its best epoch."""
    run = results.table.set_index("trial_id")["epochs_run"].get(trial_id)
    try:
        return max(best_epoch, int(run))
    except (TypeError, ValueError):  # no epochs_run (NaN, missing): the best epoch
        return best_epoch


def _accepts_checkpoint(refit: Callable[..., Any]) -> bool:
    """Whether the refit function takes ``checkpoint=`` (a parameter of that name, or ``**kwargs``)."""
    try:
        parameters = inspect.signature(refit).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature: call it as before
        return False
    return any(p.kind is p.VAR_KEYWORD or (p.name == "checkpoint" and p.kind is not p.POSITIONAL_ONLY)
               for p in parameters)


def _rows(data: Any) -> int | None:
    """Train + validation rows of the spec's splits (None when the trainable loads its own data)."""
    try:
        return int(len(data.y_train) + len(data.y_val))
    except (AttributeError, TypeError):
        return None
