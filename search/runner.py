"""Run an experiment: Ray up, resources planned, data loaded once, Tune + Optuna + ASHA."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.checks import resolve_data_path, spec_search_paths
from search.registry import build_sampler, trainable_ref
from search.resources import DRIVER_RESOURCE, TrialPlan, plan_trials
from search.spec import Spec

__all__ = ["RunOptions", "ExperimentOutcome", "ExperimentError", "run_experiment", "resume_experiment", "ray_session",
           "build_tuner", "experiment_path"]


#: Ray Train V2 paces ``report`` by its health-check interval (2 s by default); with
#: epochs of milliseconds that interval, not training, would set the pace.
REPORT_INTERVAL_S = "0.1"
SPEC_COPY = "spec.yaml"


@dataclass
class RunOptions:
    address: str | None = None
    spec_path: Path | None = None  # copied into the experiment folder for resume/export
    include_dashboard: bool | None = None
    num_cpus: int | None = None


@dataclass
class ExperimentOutcome:
    path: Path | str  # a URI string for remote storage
    results: Any  # ray.tune.ResultGrid
    plan: TrialPlan
    pruned: dict[str, int] = field(default_factory=dict)
    searcher: Any = None
    unfinished: int = 0  # trials an interrupt left running, pending or not yet started

    @property
    def num_errors(self) -> int:
        return len(self.results.errors)


def is_uri(storage: str) -> bool:
    return "://" in storage


def storage_root(spec: Spec) -> str:
    """The storage as Tune takes it: a URI untouched, a local path made absolute."""
    return spec.storage.rstrip("/") if is_uri(spec.storage) else str(Path(spec.storage).expanduser().resolve())


def experiment_path(spec: Spec) -> Path | str:
    """The experiment folder: a local :class:`Path`, or the URI string for remote storage."""
    root = f"{storage_root(spec)}/{spec.name}"
    return root if is_uri(spec.storage) else Path(root)


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                include_dashboard: bool | None = None, extra_paths: tuple[Path, ...] = ()) -> Iterator[None]:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start an embedded cluster and stop it after.

    A cluster this process started has the :data:`DRIVER_RESOURCE`; one it joined has not.
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_INTERVAL_S)
    # One process fewer per TorchTrainer trial (~1.5 CPU-s); it watches for node drains,
    # which an embedded or small cluster does not have. Tune forwards it to the trials.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Checkpointing every epoch with num_to_keep forces frequent state snapshots; they are
    # cheap here (milliseconds), so Tune's warning about them is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():  # tests and notebooks bring their own cluster
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    env_vars = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]}
    pythonpath = os.pathsep.join(dict.fromkeys([*(str(p) for p in extra_paths), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if pythonpath:
        env_vars["PYTHONPATH"] = pythonpath  # so trial processes import a user's module next to the spec
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=include_dashboard, runtime_env={"env_vars": env_vars},
                 resources={DRIVER_RESOURCE: 10_000})
    try:
        yield
    finally:
        ray.shutdown()


def _cluster_view() -> tuple[dict[str, float], list[dict[str, float]], dict[str, float]]:
    """Total resources, each alive node's resources, and what is free now."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return dict(ray.cluster_resources()), nodes, dict(ray.available_resources())


def build_tuner(spec: Spec, plan: TrialPlan, setup: Any, pruned_sink: dict[str, int] | None = None) -> tuple[Any, Any, Any]:
    """The Tuner, its searcher and its scheduler for a validated spec."""
    from ray import tune

    from search.bridge import PruningASHA, PruningAwareOptunaSearch
    from search.progress import ProgressLines
    from search.space import DefineByRun

    searcher = PruningAwareOptunaSearch(
        space=DefineByRun(spec.space),
        metric=spec.metric,
        mode=spec.mode,
        points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
        sampler=build_sampler(spec.search.sampler.value, spec.search.seed, spec.search.sampler_options),
        study_name=spec.name,
    )
    scheduler = None
    if spec.scheduler.type == "asha":
        scheduler = PruningASHA(searcher, metric=spec.metric, mode=spec.mode, max_t=spec.max_epochs,
                                grace_period=spec.scheduler.grace_period,
                                reduction_factor=spec.scheduler.reduction_factor, brackets=spec.scheduler.brackets)
    trainable = trial_trainable(plan, setup)
    from search.cleanup import PrunedCheckpointCleanup

    pruned = scheduler.pruned if scheduler else {}
    callbacks = [ProgressLines(spec.metric, spec.mode, pruned=pruned), PrunedCheckpointCleanup(pruned)]
    tuner = tune.Tuner(
        trainable,
        param_space=dict(spec.fixed),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=spec.search.num_samples,
            max_concurrent_trials=plan.max_concurrent,
            time_budget_s=spec.search.time_budget_s,
            trial_dirname_creator=trial_dirname,
            # A new trial process per trial costs seconds (start-up, importing torch and
            # ray); our trial functions keep no state between trials (each seeds itself and
            # reads its inputs anew), so trials run in reused processes: ~0.1 s per trial.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=storage_root(spec),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.checkpoint.num_to_keep,
                checkpoint_score_attribute=spec.checkpoint_score,
                checkpoint_score_order=spec.checkpoint_mode,
            ),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
            callbacks=callbacks,
            verbose=0,
        ),
    )
    return tuner, searcher, scheduler


def trial_trainable(plan: TrialPlan, setup: Any) -> Any:
    """The Tune trainable for the plan's executor, with ``setup`` bound and its resources."""
    from ray import tune

    from search.trial import run_direct_trial, run_torch_trial

    if plan.executor.value == "torch_trainer" and plan.reuse_workers:
        from search.pool import pooled_trainable

        trainable = pooled_trainable(setup)
    else:
        fn = run_direct_trial if plan.executor.value == "direct" else run_torch_trial
        trainable = tune.with_parameters(fn, setup=setup)
    return tune.with_resources(trainable, plan.trial_resources)


def trial_dirname(trial: Any) -> str:
    """Short, stable trial folder names: ``trial_<id>``."""
    return f"trial_{trial.trial_id}"


def load_data_once(spec: Spec, source: Path | None) -> Any:
    """Load the spec's data set in the driver (once); ``spec.data.name`` is an absolute path or a built-in."""
    if spec.data is None:
        return None
    from trainables.data import load_data

    return load_data(dict(spec.data))


def resolved_spec(spec: Spec, source: Path | None) -> Spec:
    """The spec with a relative data file made absolute, so the saved copy resumes from anywhere."""
    if spec.data is None or Path(str(spec.data["name"])).is_absolute():
        return spec
    path = resolve_data_path(str(spec.data["name"]), source)
    if path is None:
        return spec
    return spec.model_copy(update={"data": {**spec.data, "name": str(path)}})


@contextmanager
def _sigterm_as_sigint() -> Iterator[None]:
    """Make SIGTERM stop a run the way Ctrl-C does: Tune saves state and returns."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def unfinished_trials(path: Path | str, num_samples: int, budget_spent: bool = False) -> int:
    """Trials an interrupt left to do, from the state Tune saved on disk.

    Trials saved as RUNNING, PENDING or PAUSED, plus the trials never created (unless
    the time budget, not an interrupt, ended the run).
    """
    import glob
    import json

    if is_uri(str(path)):
        return 0  # remote storage: Tune's own resume message is the guide
    states = sorted(glob.glob(f"{path}/experiment_state-*.json"))
    if not states:
        return num_samples
    trials = [json.loads(t[0] if isinstance(t, list) else t) for t in json.loads(Path(states[-1]).read_text())["trial_data"]]
    open_trials = sum(t.get("status") not in ("TERMINATED", "ERROR") for t in trials)
    return open_trials + (0 if budget_spent else max(0, num_samples - len(trials)))


def _fit(tuner: Any, spec: Spec, path: Path | str) -> tuple[Any, int]:
    """Run the tuner; returns its results and how many trials remain unfinished."""
    started = time.monotonic()
    # stdout is for results: Tune's banners and tables go to stderr with the progress.
    with contextlib.redirect_stdout(sys.stderr), _sigterm_as_sigint():
        results = tuner.fit()
    budget = spec.search.time_budget_s
    return results, unfinished_trials(path, spec.search.num_samples, bool(budget and time.monotonic() - started >= budget))


@contextmanager
def _prepared(spec: Spec, options: RunOptions, path: Path | str) -> Iterator[tuple[TrialPlan, Any]]:
    """Data loaded, Ray up, resources planned: yields the plan and the trials' shared setup."""
    import ray

    from search.trial import TrialSetup

    search_paths = spec_search_paths(options.spec_path)
    data = load_data_once(spec, options.spec_path)  # before Ray: a bad file fails fast and cheaply
    with ray_session(options.address, num_cpus=options.num_cpus, include_dashboard=options.include_dashboard,
                     extra_paths=search_paths):
        cluster, nodes, available = _cluster_view()
        from search.jobs import storage_warning

        if warning := storage_warning(spec.storage, nodes):
            print(f"warning: {warning}", file=sys.stderr)
        plan = plan_trials(spec, cluster, nodes, driver_resource=DRIVER_RESOURCE in cluster, available=available)
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
        yield plan, TrialSetup(
            trainable_ref=trainable_ref(spec.trainable),
            search_paths=tuple(str(p) for p in search_paths),
            data_ref=ray.put(data) if data is not None else None,
            plan=plan,
            experiment_path=str(path),
            checkpoint_num_to_keep=spec.checkpoint.num_to_keep,
            checkpoint_score=spec.checkpoint_score,
            checkpoint_mode=spec.checkpoint_mode,
            required_metrics=tuple(dict.fromkeys([spec.metric, spec.checkpoint_score]
                                                 + (["epoch"] if spec.scheduler.type == "asha" else []))),
        )


def run_experiment(spec: Spec, options: RunOptions | None = None, *, warm_start_from: Path | None = None) -> ExperimentOutcome:
    """Run the spec's search to the end (or until interrupted) and return its results.

    Raises:
        ResourcePlanError: a trial asks for more than the cluster has (nothing started).
        DataError: the data set cannot be loaded (nothing started).
    """
    options = options or RunOptions()
    spec = resolved_spec(spec, options.spec_path)
    path = experiment_path(spec)
    earlier = _earlier_study(spec, warm_start_from) if warm_start_from else None
    with _prepared(spec, options, path) as (plan, setup):
        tuner, searcher, scheduler = build_tuner(spec, plan, setup)
        if earlier is not None:
            from search.bridge import warm_start
            from search.space import DefineByRun

            added, skipped = warm_start(searcher, earlier, DefineByRun(spec.space).distributions())
            print(f"warm start: told the searcher {added} earlier trial(s) of {warm_start_from}"
                  + (f"; {skipped} skipped (outside the new space)" if skipped else ""), file=sys.stderr)
        _save_spec(spec, path, options.spec_path)  # first: an interrupted run must be resumable
        results, unfinished = _fit(tuner, spec, path)
        return ExperimentOutcome(path, results, plan, dict(scheduler.pruned) if scheduler else {}, searcher,
                                 unfinished=unfinished)


def resume_experiment(path: Path, options: RunOptions | None = None) -> ExperimentOutcome:
    """Continue an interrupted experiment from its folder.

    Finished trials are not rerun; interrupted and errored trials continue from their
    last checkpoint; the Optuna study keeps its history and trial numbering.
    """
    from ray import tune

    from search.spec import load_spec

    options = options or RunOptions()
    path = Path(path).resolve()
    if not tune.Tuner.can_restore(str(path)):
        raise ExperimentError(f"{path} is not a resumable experiment (no tuner.pkl): pass the experiment folder, "
                              "<storage>/<name>, of a run that started")
    spec = load_spec(path / SPEC_COPY)
    with _prepared(spec, options, path) as (plan, setup):
        trainable = trial_trainable(plan, setup)
        # resume_errored, not restart_errored: restarting with OptunaSearch crashes (RAY_NOTES.md),
        # and continuing from the last checkpoint is what a user wants anyway.
        tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=dict(spec.fixed))
        results, unfinished = _fit(tuner, spec, path)
        config = tuner._local_tuner._tune_config  # the restored searcher and scheduler (no public accessor)
        scheduler, searcher = config.scheduler, config.search_alg
        pruned = dict(getattr(scheduler, "pruned", {}) or {})
        return ExperimentOutcome(path, results, plan, pruned, searcher, unfinished=unfinished)


class ExperimentError(ValueError):
    """An experiment folder that cannot be used for what was asked."""


def _earlier_study(spec: Spec, folder: Path) -> Any:
    from search.bridge import load_study

    try:
        study = load_study(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise ExperimentError(f"--warm-start: {exc}") from None
    direction = "MAXIMIZE" if spec.mode == "max" else "MINIMIZE"
    if study.direction.name != direction:
        raise ExperimentError(f"--warm-start: {folder} optimised in direction {study.direction.name.lower()}, "
                              f"this spec wants {spec.mode} {spec.metric}")
    return study


def _save_spec(spec: Spec, path: Path | str, source: Path | None) -> None:
    """Keep the spec beside the results, so the folder alone explains (and resumes) the experiment."""
    import yaml

    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    files = {SPEC_COPY: text}
    if source is not None and source.exists():
        files["spec.source.yaml"] = source.read_text()
    if is_uri(str(path)):
        import pyarrow.fs

        fs, root = pyarrow.fs.FileSystem.from_uri(str(path))
        fs.create_dir(root, recursive=True)
        for name, content in files.items():
            with fs.open_output_stream(f"{root}/{name}") as out:
                out.write(content.encode())
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (Path(path) / name).write_text(content)
