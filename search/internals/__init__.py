"""Every private name of Ray and Optuna the engine relies on, in one place, with the version it was checked on.

Ray's Tune/Train API has changed three times in three years; a Ray upgrade should mean reading
this package (this module's ``USES`` lists every use; Tune's saved state is read and rewritten
in :mod:`search.internals.saved_state`), not hunting. Each accessor names the private attribute it
uses and what breaks without it. :func:`check_versions` is called once per run: on a Ray or Optuna
version other than the ones these were checked on, it says so in one line (the run goes on; what
fails then fails with a message that names the accessor). The facts behind them are in ``docs/ray_optuna_notes.md``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

from search.internals.accelerators import node_gpus
from search.internals.api_server import api_server_left_out
from search.internals.errors import CHECKED_ON, InternalsError, unavailable
from search.internals.monitor import monitor_left_out
from search.internals.node_registration import node_registration_polled
from search.internals.saved_state import (checkpoint_results, checkpoint_score_key, driver_staging_folders,
                                          grow_search_generator, load_experiment_state, newest_experiment_state,
                                          raise_next_checkpoint_index, restart_stopper, restored_tuner_configs,
                                          search_generator_counts, set_checkpoint_results, training_result,
                                          training_run_metadata)
from search.internals.usage_tag import INTEGRATION_CALLBACKS, callbacks_tagged_lightly, count_callbacks
from search.internals.worker_setup import lean_worker_setup

__all__ = ["CHECKED_ON", "USES", "InternalsError", "check_versions", "verify", "ray_session_dir", "Bracket",
           "bracket_rungs", "newest_experiment_state", "load_experiment_state", "training_run_metadata",
           "set_checkpoint_results", "raise_next_checkpoint_index", "stop_autoscaler_monitor", "api_server_left_out",
           "monitor_left_out", "node_registration_polled", "lean_worker_setup", "node_gpus", "driver_staging_folders",
           "checkpoint_score_key",
           "training_result", "storage_of", "frozen_trial_id",
           "in_distribution", "tune_session", "train_fn_utils", "local_tune_session", "local_train_worker",
           "search_generator_counts", "grow_search_generator", "restart_stopper", "restored_tuner_configs",
           "result_loggers", "spaced_forced_snapshots", "checkpoints_registered_from_results",
           "FORCED_SNAPSHOT_MIN_S", "callbacks_tagged_lightly",
           "count_callbacks", "INTEGRATION_CALLBACKS"]

log = logging.getLogger(__name__)

#: Each private use: (library, name, where, what it is for).
USES: tuple[tuple[str, str, str, str], ...] = (
    ("ray", "ray._private.worker._global_node.get_session_dir_path()", "engine.session",
     "the embedded cluster's session folder, recorded so a killed run's leftovers can be stopped"),
    ("ray", "ray._private.worker._global_node.kill_monitor(check_alive=False)", "engine.session",
     "an embedded cluster's autoscaler monitor (with the dashboard) stopped before ray.shutdown: Ray's shutdown sends "
     "it SIGTERM after stopping the GCS, and its handler, which reports to the GCS, holds it the full second Ray "
     "waits before SIGKILL"),
    ("ray", "ray._private.node.Node.start_api_server, left out while an embedded ray.init starts a node without "
            "the dashboard; read: ray._private.services.start_api_server's source, "
            "ray._common.usage.usage_lib._usage_stats_enabledness", "engine.session (internals.api_server)",
     "no API server where it would run Ray's usage stats alone (not explicitly enabled): ray.init no longer waits "
     "for its address, about 0.55 s of an embedded start"),
    ("ray", "ray._private.node.Node.start_monitor, left out while an embedded ray.init starts a node without the "
            "dashboard", "engine.session (internals.monitor)",
     "no autoscaler monitor on a single node with nothing to scale: about 0.2 s of an embedded start"),
    ("ray", "ray._private.services.get_node, called once ray._raylet.GcsClient.get_all_node_info lists the new node "
            "as alive, while an embedded ray.init starts it", "engine.session (internals.node_registration)",
     "the GCS asked every 20 ms instead of GetNode's one-second sleep: ray.init took a second more at random"),
    ("ray", "ray._private.node.Node.__init__ (RayParams.setup_worker_path, filled in when absent); the raylet's "
            "--serialized-runtime-env-context/--language arguments and RuntimeEnvContext's fields",
     "engine.session (internals.worker_setup, internals.lean_setup_worker)",
     "Python workers started without Ray's setup_worker.py importing Ray first: 0.3 s of each worker's start"),
    ("ray", "ray._private.accelerators.get_accelerator_manager_for_resource('GPU') "
            "(get_current_node_num_accelerators, get_current_process_visible_accelerator_ids)",
     "trials.resources (internals.accelerators)",
     "validate counts the GPUs as an embedded ray.init would, without importing torch (a second of validate)"),
    ("ray", "RayConfig prestart_worker_first_driver, raylet_client_connect_timeout_milliseconds and "
            "raylet_client_num_connect_attempts, read as RAY_<name> from the environment the embedded cluster's "
            "processes start in (a Ray without a setting ignores it)", "engine.session",
     "an embedded cluster starts no worker processes ahead for the driver (which runs no task), and its raylet "
     "retries its object store's socket every 50 ms instead of every second: about a second of start-up here"),
    ("ray", "ray.tune.schedulers.async_hyperband._Bracket and its _rungs", "engine.scheduler",
     "MO-ASHA's brackets subclass Ray's; rungs are refilled after a resume (Tune never saves the scheduler)"),
    ("ray", "AsyncHyperBandScheduler._brackets, _trial_info, _max_t, _metric_op, _reduction_factor, "
            "_stop_last_trials", "engine.scheduler", "PruningASHA's own state, inherited from Ray's ASHA"),
    ("ray", "ray.tune.execution.experiment_state._find_newest_experiment_checkpoint", "engine.recovery",
     "the state file Tune.restore will read"),
    ("ray", "experiment_state-*.json read as plain JSON, no Ray name used: the newest by name; trial_data, each "
            "trial's JSON state (trial_id, status, relative_logdir, config) and run metadata (last_result)",
     "results.tune_state (for results.folder, engine.run)",
     "the trials and statuses of a folder read offline, and how many trials an interrupted run left: nothing "
     "unpickled (a folder from elsewhere runs none of its code), no trial's results read"),
    ("ray", "ray.tune.utils.serialization._loads_with_cloudpickle", "engine.recovery", "reading that state file"),
    ("ray", "ray.tune.trainable.metadata._TrainingRunMetadata", "engine.recovery", "a trial's saved checkpoints"),
    ("ray", "_CheckpointManager._checkpoint_results, _latest_checkpoint_result, _get_checkpoint_score",
     "engine.recovery, engine.callbacks", "pointing a trial at a checkpoint that exists; keeping a cut trial's best"),
    ("ray", "ray.train._internal.session._TrainingResult", "engine.recovery, engine.run", "a checkpoint with its metrics"),
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
    ("ray", "ray.tune.execution.experiment_state._ExperimentCheckpointManager.on_trial_checkpoint, "
            "_should_force_sync_up, _last_sync_time", "engine.run",
     "Tune's snapshot forced after every num_to_keep checkpoints of a trial: at most one per FORCED_SNAPSHOT_MIN_S"),
    ("ray", "TuneController._checkpoint_trial_if_needed, _process_trial_save, _callbacks, _iteration, _trials; "
            "Trial.temporary_state.ray_actor, is_saving, should_checkpoint, storage.trial_fs_path, "
            "storage.storage_filesystem; the result's checkpoint_dir_name", "engine.run",
     "a reported checkpoint registered from its result, without the save() round trip to the trial's actor"),
    ("ray", "TBXLoggerCallback._summary_writer_cls, _trial_writer, _trial_result (set by ours: Tune's __init__ "
            "imports tensorboardX; log_trial_start restated without init_local_path); tensorboardX's FileWriter.event_writer, EventsWriter, SummaryWriter._get_file_writer",
     "engine.callbacks, engine.tensorboard_writer",
     "TensorBoard events written on our logger's thread without tensorboardX's per-trial queue, thread and atexit "
     "hook (another tensorboardX: its own writer, the same files); the trial's folder made on the driver's thread, "
     "where Tune's snapshot reads the trial's cached JSON state that init_local_path drops"),
    ("tensorboardX", "EventsWriter._py_recordio_writer._writer (the event file)", "engine.tensorboard_writer",
     "a flush after every result hands the events to the OS without RecordWriter.flush's os.fsync"),
    ("tensorboardX", "tensorboardX.writer's import-time `try: import torch` (numpy_compatible)",
     "engine.tensorboard_writer",
     "tensorboardX imported with torch hidden from its thread (a meta-path finder), so a run's driver imports no "
     "torch; a "
     "tensorboardX that fails so is imported again with torch"),
    ("ray", "LoggerCallback._restore_from_remote (JsonLoggerCallback, CSVLoggerCallback)", "engine.tuner",
     "a trial restarted in the same driver (a retry, PBT's pause or exploit) keeps the result.json and progress.csv "
     "this driver wrote, instead of Tune's copy of the last synced ones over them (which loses the rows since)"),
    ("ray", "ray.air._internal.usage._count_callbacks (looked up by its tag_callbacks, which ray.tune.run calls)",
     "internals.usage_tag, engine.run",
     "Tune's usage tag of the run's callbacks counted by class name, without importing the MLflow, W&B, Comet and "
     "Aim integrations (and so mlflow, wandb) before the first trial: about 1 s of start-up with MLflow installed"),
)


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


def ray_session_dir() -> str | None:
    """The running embedded cluster's session folder; None on a Ray without the accessor (nothing recorded)."""
    try:
        import ray

        return str(ray._private.worker._global_node.get_session_dir_path())  # no public accessor in Ray 2.60
    except Exception as exc:  # noqa: BLE001 - another Ray: no record, nothing to clean up later
        log.warning("%s", unavailable("ray._private.worker._global_node.get_session_dir_path", exc))
        return None


def stop_autoscaler_monitor() -> None:
    """Stop the embedded cluster's autoscaler monitor now (SIGKILL, reaped), before ``ray.shutdown`` stops the rest.

    Ray 2.60's shutdown stops the GCS first and then sends the monitor SIGTERM; the monitor's handler reports its
    "failure" to the GCS that is gone and does not exit within the second Ray gives it before SIGKILL: a second
    at the end of every run. A single-node cluster has nothing for the monitor to scale. On a Ray without the
    accessor it is left to ``ray.shutdown``, as before.
    """
    try:
        import ray

        ray._private.worker._global_node.kill_monitor(check_alive=False)  # no public accessor in Ray 2.60
    except Exception as exc:  # noqa: BLE001 - another Ray: ray.shutdown stops it, a second later
        log.debug("%s", unavailable("ray._private.worker._global_node.kill_monitor", exc))


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
        "ray.air._internal.usage": ("tag_callbacks", "_count_callbacks"),
        "ray._private.node": ("Node.kill_monitor", "Node.start_api_server", "Node.start_monitor", "Node.__init__"),
        "ray._private.services": ("get_node",),
        "ray._private.accelerators": ("get_accelerator_manager_for_resource",),
        "ray.train.v2._internal.execution.train_fn_utils": ("LocalTrainFnUtils", "set_train_fn_utils",
                                                            "_train_fn_utils"),
    }
    for module, names in checks.items():
        try:
            loaded = importlib.import_module(module)
            for name in names:  # a dotted name: an attribute of an attribute (a class's method)
                functools.reduce(getattr, name.split("."), loaded)
        except (ImportError, AttributeError) as exc:
            raise unavailable(f"{module}.{'/'.join(names)}", exc) from None
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    manager = _ExperimentCheckpointManager(storage=None, checkpoint_period=10, sync_every_n_trial_checkpoints=1)
    for name in ("on_trial_checkpoint", "_should_force_sync_up", "_last_sync_time"):
        if not hasattr(manager, name):
            raise unavailable(f"_ExperimentCheckpointManager.{name}", AttributeError(name))
    from ray.tune.execution.tune_controller import TuneController

    for name in ("_checkpoint_trial_if_needed", "_process_trial_save"):
        if not hasattr(TuneController, name):
            raise unavailable(f"TuneController.{name}", AttributeError(name))
    from ray.tune.schedulers import AsyncHyperBandScheduler

    scheduler = AsyncHyperBandScheduler(metric="m", mode="max", max_t=4)
    for name in ("_brackets", "_trial_info", "_max_t", "_metric_op", "_reduction_factor", "_stop_last_trials"):
        if not hasattr(scheduler, name):
            raise unavailable(f"AsyncHyperBandScheduler.{name}", AttributeError(name))
    if not hasattr(scheduler._brackets[0], "_rungs"):
        raise unavailable("_Bracket._rungs", AttributeError("_rungs"))


# ---------------------------------------------------------------- ASHA (engine.scheduler)
#: Ray's ASHA bracket (private in Ray 2.60): MO-ASHA's brackets subclass it. Made at first use (see __getattr__).
Bracket: type


def bracket_rungs(bracket: Any) -> list[tuple[float, dict[str, Any]]]:
    """A bracket's rungs: ``[(milestone, {trial id: recorded value}), ...]``, top rung first (Ray's order)."""
    return bracket._rungs


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
#: Tune's JSON and CSV result loggers, keeping this driver's own files when a trial restarts (:func:`result_loggers`).
#: Made at first use, as is ``Bracket`` (:mod:`search.internals.tune_classes`): importing this package imports no
#: ray.tune (``validate`` reads the GPUs here).
KeepLocalJsonLoggerCallback: type
KeepLocalCSVLoggerCallback: type


def __getattr__(name: str) -> Any:
    from search.internals.tune_classes import MADE_AT_FIRST_USE

    if name not in MADE_AT_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = globals()[name] = MADE_AT_FIRST_USE[name]()
    return made


@contextlib.contextmanager
def _swapped(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner.name`` is ``replacement`` while inside, and what it was again after."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


#: The least time between two experiment snapshots that checkpoints force (:func:`spaced_forced_snapshots`).
FORCED_SNAPSHOT_MIN_S = 2.0


@contextlib.contextmanager
def spaced_forced_snapshots(min_s: float | None = None) -> Iterator[None]:
    """While inside, a trial's checkpoints force Tune's experiment snapshot at most once per ``min_s`` seconds
    (default :data:`FORCED_SNAPSHOT_MIN_S`; 0: as often as Tune forces them).

    Besides its periodic snapshot (every 10 s or more), Tune forces one whenever a trial has
    checkpointed ``num_to_keep`` times since the last, so that its saved state rarely names a
    checkpoint retention has deleted (Ray calls it "a non-performant workaround"). Each forced one
    pickles the searcher, writes the state, waits for the previous upload and copies the driver's
    whole staging folder to storage: with two trials checkpointing every 0.1 s epoch and
    ``num_to_keep: 2``, ten a second, on the driver's loop. ``resume`` repairs a state that names a
    deleted checkpoint (:mod:`search.engine.recovery`), and takes the rows the killed driver never
    synced from its staging folder, so a forced snapshot is still taken once ``num_to_keep``
    checkpoints have come, but not sooner than ``min_s`` after the last one: the rows a crash can
    leave unsynced are bounded by ``min_s`` seconds as well as by ``num_to_keep`` checkpoints.
    """
    import time

    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    original = _ExperimentCheckpointManager.on_trial_checkpoint
    min_s = FORCED_SNAPSHOT_MIN_S if min_s is None else min_s

    def on_trial_checkpoint(self: Any, trial: Any) -> None:
        original(self, trial)
        last = self._last_sync_time
        if self._should_force_sync_up and last is not None and time.monotonic() - last < min_s:
            self._should_force_sync_up = False  # the count goes on: forced at the first checkpoint after min_s

    with _swapped(_ExperimentCheckpointManager, "on_trial_checkpoint", on_trial_checkpoint):
        yield


@contextlib.contextmanager
def checkpoints_registered_from_results() -> Iterator[None]:
    """While inside, a checkpoint a function trainable reported is registered from its result, in the step that
    handles the result, without Tune's second round trip to the trial's actor.

    ``FunctionTrainable.step`` marks a result that carries a checkpoint ``should_checkpoint``; the controller
    then sends the actor a ``save()`` task, which only hands back the checkpoint already persisted (the
    trial's storage folder, ``checkpoint_dir_name`` of the result) with the result's metrics, and holds the
    trial's next ``train()`` until that reply is handled. Here the same checkpoint (the same path and
    filesystem ``save()`` would send) and the result as the driver holds it (the same keys, plus its
    ``experiment_tag``, and ``done`` as the driver decided) are handed to the controller's own
    ``_process_trial_save`` and the callbacks' ``on_trial_save`` at once. Saves Tune asks for otherwise (PBT's
    at a perturbation, a pause's) go to the actor as before. Function trainables only (the only kind search
    runs): a class trainable's ``checkpoint_dir_name`` is not Tune's.
    """
    from ray.tune import Checkpoint
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController._checkpoint_trial_if_needed

    def checkpoint_trial_if_needed(self: Any, trial: Any, force: bool = False) -> None:
        result = (trial.last_result or {}) if force else {}
        name, storage = result.get("checkpoint_dir_name"), getattr(trial, "storage", None)
        if not (name and storage is not None and not trial.should_checkpoint()
                and trial.temporary_state.ray_actor and not trial.is_saving):
            original(self, trial, force)
            return
        checkpoint = Checkpoint(path=f"{storage.trial_fs_path}/{name}", filesystem=storage.storage_filesystem)
        self._process_trial_save(trial, training_result(checkpoint, dict(result)))
        self._callbacks.on_trial_save(iteration=self._iteration, trials=self._trials, trial=trial)

    with _swapped(TuneController, "_checkpoint_trial_if_needed", checkpoint_trial_if_needed):
        yield


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
    from search.internals import KeepLocalCSVLoggerCallback, KeepLocalJsonLoggerCallback  # made once, at first use

    return [KeepLocalJsonLoggerCallback(), KeepLocalCSVLoggerCallback()]
