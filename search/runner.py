"""Run an experiment: Ray up, resources planned, data loaded once, Tune + Optuna + ASHA."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.checks import resolve_data_path, spec_search_paths
from search.registry import build_sampler, trainable_ref
from search.resources import DRIVER_RESOURCE, TrialPlan, plan_trials
from search.spec import Spec

__all__ = ["RunOptions", "ExperimentOutcome", "run_experiment", "ray_session", "build_tuner", "experiment_path"]

log = logging.getLogger(__name__)

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
    path: Path
    results: Any  # ray.tune.ResultGrid
    plan: TrialPlan
    pruned: dict[str, int] = field(default_factory=dict)
    searcher: Any = None

    @property
    def num_errors(self) -> int:
        return len(self.results.errors)


def experiment_path(spec: Spec) -> Path:
    return Path(spec.storage).expanduser().resolve() / spec.name


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                include_dashboard: bool | None = None, extra_paths: tuple[Path, ...] = ()) -> Iterator[bool]:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start an embedded cluster and stop it after.

    Yields True when this process started the cluster (so it has the driver resource).
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_INTERVAL_S)
    # Checkpointing every epoch with num_to_keep forces frequent state snapshots; they are
    # cheap here (milliseconds), so Tune's warning about them is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():  # tests and notebooks bring their own cluster
        yield DRIVER_RESOURCE in ray.cluster_resources()
        return
    address = address or os.environ.get("RAY_ADDRESS")
    env_vars = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]}
    pythonpath = os.pathsep.join(dict.fromkeys([*(str(p) for p in extra_paths), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if pythonpath:
        env_vars["PYTHONPATH"] = pythonpath  # so trial processes import a user's module next to the spec
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
        started = False
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=include_dashboard, runtime_env={"env_vars": env_vars},
                 resources={DRIVER_RESOURCE: 10_000})
        started = True
    try:
        yield started
    finally:
        ray.shutdown()


def _cluster_view() -> tuple[dict[str, float], list[dict[str, float]]]:
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return dict(ray.cluster_resources()), nodes


def build_tuner(spec: Spec, plan: TrialPlan, setup: Any, pruned_sink: dict[str, int] | None = None) -> tuple[Any, Any, Any]:
    """The Tuner, its searcher and its scheduler for a validated spec."""
    from ray import tune

    from search.bridge import PruningASHA, PruningAwareOptunaSearch
    from search.progress import ProgressLines
    from search.space import DefineByRun
    from search.trial import run_direct_trial, run_torch_trial

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
    fn = run_direct_trial if plan.executor.value == "direct" else run_torch_trial
    trainable = tune.with_resources(tune.with_parameters(fn, setup=setup), plan.trial_resources)
    progress = ProgressLines(spec.metric, spec.mode, pruned=scheduler.pruned if scheduler else {})
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
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str(Path(spec.storage).expanduser().resolve()),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.checkpoint.num_to_keep,
                checkpoint_score_attribute=spec.checkpoint_score,
                checkpoint_score_order=spec.checkpoint_mode,
            ),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
            callbacks=[progress],
            verbose=0,
        ),
    )
    return tuner, searcher, scheduler


def trial_dirname(trial: Any) -> str:
    """Short, stable trial folder names: ``trial_<id>``."""
    return f"trial_{trial.trial_id}"


def load_data_once(spec: Spec, source: Path | None) -> Any:
    """Load the spec's data set in the driver (once), resolving a relative file path."""
    if spec.data is None:
        return None
    from trainables.data import load_data

    data = dict(spec.data)
    path = resolve_data_path(str(data["name"]), source)
    if path is not None and not Path(str(data["name"])).is_absolute():
        data["name"] = str(path)
    return load_data(data)


def run_experiment(spec: Spec, options: RunOptions | None = None) -> ExperimentOutcome:
    """Run the spec's search to the end and return its results.

    Raises:
        ResourcePlanError: a trial asks for more than the cluster has (nothing started).
        DataError: the data set cannot be loaded (nothing started).
    """
    import ray

    from search.trial import TrialSetup

    options = options or RunOptions()
    source = options.spec_path
    search_paths = spec_search_paths(source)
    data = load_data_once(spec, source)  # before Ray: a bad file fails fast and cheaply
    with ray_session(options.address, num_cpus=options.num_cpus, include_dashboard=options.include_dashboard,
                     extra_paths=search_paths) as started:
        cluster, nodes = _cluster_view()
        plan = plan_trials(spec, cluster, nodes, driver_resource=DRIVER_RESOURCE in cluster)
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
        path = experiment_path(spec)
        setup = TrialSetup(
            trainable_ref=trainable_ref(spec.trainable),
            search_paths=tuple(str(p) for p in search_paths),
            data_ref=ray.put(data) if data is not None else None,
            plan=plan,
            experiment_path=str(path),
            checkpoint_num_to_keep=spec.checkpoint.num_to_keep,
            checkpoint_score=spec.checkpoint_score,
            checkpoint_mode=spec.checkpoint_mode,
        )
        tuner, searcher, scheduler = build_tuner(spec, plan, setup)
        # stdout is for results: Tune's banners and tables go to stderr with the progress.
        with contextlib.redirect_stdout(sys.stderr):
            results = tuner.fit()
        _save_spec(spec, path, source)
        return ExperimentOutcome(path, results, plan, dict(scheduler.pruned) if scheduler else {}, searcher)


def _save_spec(spec: Spec, path: Path, source: Path | None) -> None:
    """Keep the spec beside the results, so the folder alone explains the experiment."""
    import yaml

    path.mkdir(parents=True, exist_ok=True)
    (path / SPEC_COPY).write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    if source is not None and source.exists():
        shutil.copyfile(source, path / "spec.source.yaml")
