"""Tune's saved experiment state, read and rewritten with Ray's own serialisers (Ray 2.60): what ``resume``
repairs (``engine.recovery``) and what growing a search changes (``engine.grow``). Part of
:mod:`search.internals`, whose ``USES`` lists every private name used here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.internals.errors import InternalsError, unavailable

__all__ = ["newest_experiment_state", "load_experiment_state", "training_run_metadata", "raise_next_checkpoint_index",
           "driver_staging_folders", "set_checkpoint_results", "checkpoint_results", "checkpoint_score_key",
           "training_result", "search_generator_counts", "grow_search_generator", "restart_stopper",
           "restored_tuner_configs"]


# ---------------------------------------------------------------- Tune's saved state (engine.recovery)
def newest_experiment_state(folder: str) -> str | None:
    """The newest ``experiment_state-*.json`` in an experiment folder, as Tune.restore picks it."""
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    return _find_newest_experiment_checkpoint(folder)


def load_experiment_state(text: str) -> dict[str, Any]:
    """Tune's experiment state file, parsed with Tune's own deserialiser."""
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    return _loads_with_cloudpickle(text)


def training_run_metadata(json_state: str) -> Any:
    """A trial's run metadata (its checkpoint manager) from the state file's entry."""
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    return _TrainingRunMetadata.from_json_state(json_state)


def raise_next_checkpoint_index(trial_json: str, at_least: int) -> str | None:
    """A trial's saved JSON state whose next checkpoint is ``checkpoint_<at_least>`` or later; None: it already is.

    Tune names a trial's checkpoints from its storage context's ``current_checkpoint_index``, restored
    with the trial: the index of its last checkpoint, incremented before each new one (Ray 2.60).
    """
    import json

    from ray.tune.utils.serialization import TuneFunctionEncoder, _loads_with_cloudpickle

    state = _loads_with_cloudpickle(trial_json)
    index = getattr(state.get("storage"), "current_checkpoint_index", None)
    if not isinstance(index, int) or index + 1 >= at_least:
        return None
    state["storage"].current_checkpoint_index = at_least - 1
    return json.dumps(state, indent=2, cls=TuneFunctionEncoder)


def driver_staging_folders(session_dir: Path, experiment_dir_name: str) -> list[Path]:
    """A driver's staging copies of an experiment folder in its Ray session folder, newest first (Ray 2.60:
    ``<session>/artifacts/<run timestamp>/<experiment>/driver_artifacts``; Tune writes results and its state
    there and syncs them to storage every few seconds)."""
    import glob

    pattern = f"artifacts/*/{glob.escape(experiment_dir_name)}/driver_artifacts"
    found = [p for p in session_dir.glob(pattern) if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def set_checkpoint_results(manager: Any, results: list[Any], latest: Any) -> None:
    """Set a trial's checkpoint manager's kept results and latest one (Tune reads both on restore)."""
    manager._checkpoint_results = results
    manager._latest_checkpoint_result = latest


def checkpoint_results(manager: Any) -> list[Any]:
    return list(manager._checkpoint_results)


def checkpoint_score_key(manager: Any) -> Any:
    """The sort key Tune's checkpoint manager keeps its results in."""
    return manager._get_checkpoint_score


def training_result(checkpoint: Any, metrics: dict[str, Any]) -> Any:
    """A checkpoint with the metrics reported with it, as the checkpoint manager keeps them."""
    from ray.train._internal.session import _TrainingResult

    return _TrainingResult(checkpoint=checkpoint, metrics=metrics)


# ---------------------------------------------------------------- growing a search (engine.grow)
_SEARCH_GEN_STATE = "search_gen_state-*.json"  # SearchGenerator.CKPT_FILE_TMPL, with its session timestamp


def _newest_search_generator_state(folder: Any) -> Any:
    from pathlib import Path

    states = sorted(Path(folder).glob(_SEARCH_GEN_STATE))  # names end in a sortable timestamp, as Tune picks
    if not states:
        raise InternalsError(f"{folder}: no {_SEARCH_GEN_STATE} (Tune's saved search state); not a Tune experiment "
                             "that ran with a searcher")
    return states[-1]


def search_generator_counts(folder: Any) -> tuple[int, int]:
    """(trials created, trials asked for) in the experiment's saved search state. Unpickles: resume trusts the folder."""
    import ray.cloudpickle as cloudpickle

    with open(_newest_search_generator_state(folder), "rb") as fh:
        state = cloudpickle.load(fh)  # noqa: S301 - the experiment's own state, which Tune.restore unpickles too
    return int(state["counter"]), int(state["total_samples"])


def grow_search_generator(folder: Any, total: int | None, ended: set[str]) -> str:
    """Let Tune's saved search create trials again; the file's name (rewritten atomically).

    Clears "finished" (set when a time budget ended the search), raises the trial count to ``total``
    (None: as it was), and drops the ``ended`` trials from the concurrency limiter's live set: Tune
    stops budget-ended trials without telling the searcher, and a limiter that still counts them
    live suggests nothing, ever (a resumed run would wait forever).
    """
    import ray.cloudpickle as cloudpickle
    from ray.tune.utils.util import _atomic_save

    path = _newest_search_generator_state(folder)
    with open(path, "rb") as fh:
        state = cloudpickle.load(fh)  # noqa: S301 - as above
    try:
        state["total_samples"] = int(total if total is not None else state["total_samples"])
        state["finished"] = False
        limiter = state.get("name:ConcurrencyLimiter")
        if limiter is not None:
            limiter["live_trials"] = set(limiter["live_trials"]) - set(ended)
            limiter["num_unfinished_live_trials"] = len(limiter["live_trials"])
    except (TypeError, KeyError) as exc:
        raise unavailable("SearchGenerator state total_samples/finished/ConcurrencyLimiter.live_trials", exc) from None
    _atomic_save(state=state, checkpoint_dir=str(path.parent), file_name=path.name, tmp_file_name=f"tmp-{path.name}")
    return path.name


def restart_stopper(folder: Any, budget_s: float | None) -> tuple[set[str], str | None]:
    """The trials Tune ended (TERMINATED, ERROR) in the newest experiment state and, given ``budget_s``, its
    saved stopper replaced by a fresh ``TimeoutStopper(budget_s)``: Tune restores the stopper it saved (in
    ``runner_data``, with the budget it had left), not the one ``TuneConfig.time_budget_s`` would make.

    Returns (ended trial ids, the state file's name if rewritten, else None).
    """
    import json
    from pathlib import Path

    from ray.tune.stopper import TimeoutStopper
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from trainables.files import atomic_write

    newest = newest_experiment_state(str(folder))
    if newest is None:  # killed before Tune's first save: nothing restored, nothing to restart
        return set(), None
    state_file = Path(newest)
    state = load_experiment_state(state_file.read_text())
    try:
        trials = [json.loads(trial) for trial, _ in state["trial_data"]]
        ended = {t["trial_id"] for t in trials if t.get("status") in ("TERMINATED", "ERROR")}
        if budget_s is None:
            return ended, None
        runner = state["runner_data"]
        runner["_stopper"] = TimeoutStopper(budget_s)
        runner["_should_stop_experiment"] = False
    except (TypeError, KeyError, ValueError) as exc:
        raise unavailable("experiment state trial_data / runner_data._stopper", exc) from None
    atomic_write(state_file, json.dumps(state, indent=2, cls=TuneFunctionEncoder))  # as engine.recovery rewrites it
    return ended, state_file.name


def restored_tuner_configs(tuner: Any) -> tuple[Any, Any]:
    """The ``TuneConfig`` and ``RunConfig`` a restored ``Tuner`` will run with (its pickled ones)."""
    try:
        local = tuner._local_tuner
        return local._tune_config, local._run_config
    except AttributeError as exc:
        raise unavailable("Tuner._local_tuner._tune_config/_run_config", exc) from None
