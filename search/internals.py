"""Every private name of Ray and Optuna the engine relies on, in one place, with the version it was checked on.

Ray's Tune/Train API has changed three times in three years; a Ray upgrade should mean reading this
module, not hunting. Each accessor below names the private attribute it uses and what breaks without
it. :func:`check_versions` is called once per run: on a Ray or Optuna version other than the ones
these were checked on, it says so in one line (the run goes on; what fails then fails with a message
that names the accessor). The facts behind them are in ``docs/ray_optuna_notes.md``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CHECKED_ON", "USES", "InternalsError", "check_versions", "verify", "ray_session_dir", "Bracket",
           "bracket_rungs", "newest_experiment_state", "load_experiment_state", "training_run_metadata",
           "set_checkpoint_results", "raise_next_checkpoint_index", "driver_staging_folders", "checkpoint_score_key",
           "training_result", "storage_of", "frozen_trial_id",
           "in_distribution", "tune_session", "train_fn_utils", "local_tune_session", "local_train_worker",
           "search_generator_counts", "grow_search_generator", "restart_stopper", "restored_tuner_configs",
           "result_loggers"]

log = logging.getLogger(__name__)

#: The versions every private use below was read against.
CHECKED_ON = {"ray": "2.60", "optuna": "5.1"}

#: Each private use: (library, name, where, what it is for).
USES: tuple[tuple[str, str, str, str], ...] = (
    ("ray", "ray._private.worker._global_node.get_session_dir_path()", "engine.session",
     "the embedded cluster's session folder, recorded so a killed run's leftovers can be stopped"),
    ("ray", "ray.tune.schedulers.async_hyperband._Bracket and its _rungs", "engine.scheduler",
     "MO-ASHA's brackets subclass Ray's; rungs are refilled after a resume (Tune never saves the scheduler)"),
    ("ray", "AsyncHyperBandScheduler._brackets, _trial_info, _max_t, _metric_op, _reduction_factor, "
            "_stop_last_trials", "engine.scheduler", "PruningASHA's own state, inherited from Ray's ASHA"),
    ("ray", "ray.tune.execution.experiment_state._find_newest_experiment_checkpoint", "engine.recovery",
     "the state file Tune.restore will read"),
    ("ray", "ray.tune.utils.serialization._loads_with_cloudpickle", "engine.recovery", "reading that state file"),
    ("ray", "ray.tune.trainable.metadata._TrainingRunMetadata", "engine.recovery", "a trial's saved checkpoints"),
    ("ray", "_CheckpointManager._checkpoint_results, _latest_checkpoint_result, _get_checkpoint_score",
     "engine.recovery, engine.callbacks", "pointing a trial at a checkpoint that exists; keeping a cut trial's best"),
    ("ray", "ray.train._internal.session._TrainingResult", "engine.recovery", "a checkpoint with its metrics"),
    ("ray", "StorageContext.current_checkpoint_index in a trial's saved state (trial_data)", "engine.recovery",
     "a trial moved forward to a newer checkpoint names its next ones past every checkpoint folder already there"),
    ("ray", "the driver's staging folder <session>/artifacts/<timestamp>/<experiment>/driver_artifacts",
     "engine.recovery", "the result rows a killed driver wrote there but never synced to storage"),
    ("ray", "OptunaSearch._ot_study, _ot_trials, _completed_trials, _space, _mode", "engine.searcher",
     "PruningAwareOptunaSearch's own state, inherited from Ray's OptunaSearch"),
    ("optuna", "Study._storage, Study._study_id, FrozenTrial._trial_id", "engine.searcher",
     "writing the study's trials into the journal through the storage API"),
    ("optuna", "BaseDistribution._contains", "engine.searcher", "a warm start keeps the earlier trials that fit"),
    ("ray", "ray.tune.trainable.trainable_fn_utils.get_session (its report)", "trials.setup",
     "a Ray-style trainable's ray.tune.report goes through our checks (tune.report calls session.report)"),
    ("ray", "ray.train.v2.api.train_fn_utils.get_train_fn_utils (its report, get_checkpoint)",
     "trials.setup, trials.torch_trainer", "a Ray-style trainable's ray.train.report on a Train worker"),
    ("ray", "ray.train._internal.session._session", "engine.probe",
     "validate --probe: a stand-in Tune session in this process (no Ray), so ray.tune.report reaches the probe"),
    ("ray", "ray.train.v2._internal.execution.train_fn_utils.LocalTrainFnUtils, set_train_fn_utils, _train_fn_utils",
     "engine.probe", "validate --probe: Ray Train's own local mode in this process, so ray.train.report works"),
    ("ray", "SearchGenerator's saved state search_gen_state-*.json (cloudpickle: counter, total_samples, finished), "
            "written back with ray.tune.utils.util._atomic_save",
     "engine.grow", "resume --num-samples: the trial count Tuner.restore would otherwise keep"),
    ("ray", "TuneController runner_data _stopper, _should_stop_experiment in experiment_state-*.json; "
            "ConcurrencyLimiter state live_trials, num_unfinished_live_trials", "engine.grow",
     "resume --time-budget / --num-samples: Tune restores its saved stopper (the budget it had left) and a limiter "
     "that still counts budget-stopped trials live"),
    ("ray", "Tuner._local_tuner._tune_config, _run_config", "engine.grow",
     "resume --num-samples / --time-budget: the restored Tuner's count, budget and callbacks"),
    ("ray", "LoggerCallback._restore_from_remote (JsonLoggerCallback, CSVLoggerCallback)", "engine.tuner",
     "a trial restarted in the same driver (a retry, PBT's pause or exploit) keeps the result.json and progress.csv "
     "this driver wrote, instead of Tune's copy of the last synced ones over them (which loses the rows since)"),
)


class InternalsError(RuntimeError):
    """A private Ray/Optuna name this version does not have."""


def _version(module: Any) -> str:
    return ".".join(str(getattr(module, "__version__", "0")).split(".")[:2])


def check_versions() -> list[str]:
    """One line per library whose installed version differs from :data:`CHECKED_ON` (``[]``: all checked)."""
    import optuna
    import ray

    lines = []
    for name, module in (("ray", ray), ("optuna", optuna)):
        if _version(module) != CHECKED_ON[name]:
            uses = [u[1] for u in USES if u[0] == name]
            lines.append(f"{name} {module.__version__} is installed; search's uses of its private names were "
                         f"checked on {CHECKED_ON[name]} ({len(uses)} of them, listed in search.internals)")
    return lines


def unavailable(name: str, exc: BaseException) -> InternalsError:
    """The error for a private name this version lacks, naming it and the versions it was checked on."""
    return InternalsError(f"{name} is not available in this Ray/Optuna ({type(exc).__name__}: {exc}); search "
                          f"relies on it (checked on Ray {CHECKED_ON['ray']}, Optuna {CHECKED_ON['optuna']}): "
                          "install those versions or report this")


def ray_session_dir() -> str | None:
    """The running embedded cluster's session folder; None on a Ray without the accessor (nothing recorded)."""
    try:
        import ray

        return str(ray._private.worker._global_node.get_session_dir_path())  # no public accessor in Ray 2.60
    except Exception as exc:  # noqa: BLE001 - another Ray: no record, nothing to clean up later
        log.warning("%s", unavailable("ray._private.worker._global_node.get_session_dir_path", exc))
        return None


def verify() -> None:
    """Check that every private name in :data:`USES` exists in the installed Ray and Optuna.

    Raises:
        InternalsError: one that does not, named, with the versions the uses were checked on.
    """
    import importlib

    checks = {
        "ray.tune.schedulers.async_hyperband": ("_Bracket",),
        "ray.tune.execution.experiment_state": ("_find_newest_experiment_checkpoint",),
        "ray.tune.utils.serialization": ("_loads_with_cloudpickle", "TuneFunctionEncoder"),
        "ray.tune.trainable.metadata": ("_TrainingRunMetadata",),
        "ray.tune.trainable.trainable_fn_utils": ("get_session",),
        "ray.train.v2.api.train_fn_utils": ("get_train_fn_utils",),
        "ray.train._internal.session": ("_TrainingResult", "_session", "get_session"),
        "ray.tune.utils.util": ("_atomic_save",),
        "ray.train.v2._internal.execution.train_fn_utils": ("LocalTrainFnUtils", "set_train_fn_utils",
                                                            "_train_fn_utils"),
    }
    for module, names in checks.items():
        try:
            loaded = importlib.import_module(module)
            for name in names:
                getattr(loaded, name)
        except (ImportError, AttributeError) as exc:
            raise unavailable(f"{module}.{'/'.join(names)}", exc) from None
    from ray.tune.schedulers import AsyncHyperBandScheduler

    scheduler = AsyncHyperBandScheduler(metric="m", mode="max", max_t=4)
    for name in ("_brackets", "_trial_info", "_max_t", "_metric_op", "_reduction_factor", "_stop_last_trials"):
        if not hasattr(scheduler, name):
            raise unavailable(f"AsyncHyperBandScheduler.{name}", AttributeError(name))
    if not hasattr(scheduler._brackets[0], "_rungs"):
        raise unavailable("_Bracket._rungs", AttributeError("_rungs"))


# ---------------------------------------------------------------- ASHA (engine.scheduler)
def _bracket_class() -> type:
    try:
        from ray.tune.schedulers.async_hyperband import _Bracket
    except ImportError as exc:  # pragma: no cover - another Ray
        raise unavailable("ray.tune.schedulers.async_hyperband._Bracket", exc) from None
    return _Bracket


#: Ray's ASHA bracket (private in Ray 2.60): MO-ASHA's brackets subclass it.
Bracket: type = _bracket_class()


def bracket_rungs(bracket: Any) -> list[tuple[float, dict[str, Any]]]:
    """A bracket's rungs: ``[(milestone, {trial id: recorded value}), ...]``, top rung first (Ray's order)."""
    return bracket._rungs


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


# ---------------------------------------------------------------- Optuna (engine.searcher)
def storage_of(study: Any) -> tuple[Any, int]:
    """A study's storage and its id in it (Optuna's BaseStorage API is public; these two handles are not)."""
    return study._storage, study._study_id


def frozen_trial_id(trial: Any) -> int:
    """A FrozenTrial's id in its storage (not its number)."""
    return trial._trial_id


def in_distribution(distribution: Any, value: Any) -> bool:
    """Whether ``value`` lies in an Optuna distribution (its own check, used by Optuna's add_trial)."""
    return bool(distribution._contains(distribution.to_internal_repr(value)))


# ---------------------------------------------------------------- Ray-style trainables (trials.setup)
def tune_session() -> Any:
    """The Tune trial's session object whose ``report`` ``ray.tune.report`` calls (Ray 2.60)."""
    from ray.tune.trainable.trainable_fn_utils import get_session

    return get_session()


def train_fn_utils() -> Any:
    """The Train worker's object behind ``ray.train.report`` / ``get_checkpoint`` (Ray Train V2, Ray 2.60)."""
    from ray.train.v2.api.train_fn_utils import get_train_fn_utils

    return get_train_fn_utils()


# ---------------------------------------------------------------- validate --probe (engine.probe)
@contextlib.contextmanager
def local_tune_session(session: Any) -> Iterator[None]:
    """``session`` is the Tune trial session of this process while inside (no Ray started).

    ``ray.tune.report`` calls ``get_session().report(metrics, checkpoint=...)`` and
    ``ray.tune.get_checkpoint`` reads ``get_session().loaded_checkpoint``; a session whose
    ``world_rank`` is None is a Tune trial's, not a Train worker's (Ray 2.60,
    ``ray/tune/trainable/trainable_fn_utils.py``). Tune sets the same module global in a trial.
    """
    from ray.train._internal import session as train_session

    previous = train_session._session
    train_session._session = session
    try:
        yield
    finally:
        train_session._session = previous


@contextlib.contextmanager
def local_train_worker(name: str) -> Iterator[None]:
    """This process is a one-worker Ray Train run while inside, in Ray Train's own local mode (no Ray started).

    ``ray.train.report``, ``get_checkpoint`` and ``get_context`` answer through the object
    ``set_train_fn_utils`` installs; Ray's local mode installs a ``LocalTrainFnUtils`` (Ray 2.60,
    ``ray/train/v2/_internal/execution/local_mode/torch.py``).
    """
    from ray.train.v2._internal.execution import train_fn_utils as fn_utils

    previous = fn_utils._train_fn_utils
    fn_utils.set_train_fn_utils(fn_utils.LocalTrainFnUtils(experiment_name=name))
    try:
        yield
    finally:
        fn_utils.set_train_fn_utils(previous)



# ---------------------------------------------------------------- result logs (engine.tuner)
def _restore_only_when_missing(restore: Any) -> Any:
    def _restore_from_remote(self: Any, file_name: str, trial: Any) -> None:
        from pathlib import Path

        if Path(trial.local_path, file_name).exists():  # written by this driver: newer than the storage's copy
            return
        restore(self, file_name, trial)
    return _restore_from_remote


def _logger_class(name: str) -> type:
    import ray.tune.logger

    base = getattr(ray.tune.logger, name)
    restore = getattr(base, "_restore_from_remote", None)
    if restore is None:  # pragma: no cover - another Ray
        raise unavailable(f"{name}._restore_from_remote", AttributeError("_restore_from_remote"))
    return type(f"KeepLocal{name}", (base,), {"_restore_from_remote": _restore_only_when_missing(restore),
                                               "__module__": __name__})


#: Tune's JSON and CSV result loggers, keeping this driver's own files when a trial restarts (:func:`result_loggers`).
KeepLocalJsonLoggerCallback: type = _logger_class("JsonLoggerCallback")
KeepLocalCSVLoggerCallback: type = _logger_class("CSVLoggerCallback")


def result_loggers() -> list[Any]:
    """Tune's JSON and CSV result loggers, which keep this driver's own files when a trial restarts.

    Tune's loggers copy the storage's ``result.json`` / ``progress.csv`` over the driver's staging
    copy whenever a trial with a checkpoint starts (``LoggerCallback._restore_from_remote``). The
    storage copy is synced from the staging one only now and then, so a trial restarted in the same
    driver (a retry; PBT pausing and resuming it, or restarting it from another's checkpoint) lost
    the rows reported since the last sync. A staging file that exists was written by this driver and
    is the newest; only a driver that has none (``resume``) copies the storage's. Given in the run's
    callbacks, these replace Tune's defaults (``_create_default_callbacks`` adds a logger type only
    when none of that type is given).
    """
    return [KeepLocalJsonLoggerCallback(), KeepLocalCSVLoggerCallback()]
