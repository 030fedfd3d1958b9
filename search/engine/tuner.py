"""The Tuner of a spec: the Optuna searcher and ASHA (or PBT's random draw and PBT), the trial trainable, the callbacks."""

from __future__ import annotations

from typing import Any

from search.spec.models import KEEP_EVERY_CHECKPOINT, Spec
from search.spec.registry import build_sampler
from search.experiment import Experiment, storage_root
from search.trials.resources import TrialPlan

#: Seconds between Tune's syncs of the driver's files to the storage when no checkpoint count forces them.
SYNC_PERIOD_S = 10

__all__ = ["build_tuner", "param_space_of", "sync_config_of", "trial_trainable", "trial_dirname"]


def build_tuner(spec: Spec, plan: TrialPlan, setup: Any, *, epoch_lines: bool = False) -> tuple[Any, Any, Any]:
    """The Tuner, its searcher and its scheduler for a validated spec (``epoch_lines``: a progress line per epoch)."""
    from search.engine.scheduler import PruningASHA
    from search.engine.searcher import PruningAwareOptunaSearch
    from search.spec.space import DefineByRun

    param_space = param_space_of(spec)
    if spec.scheduler.type == "pbt":
        from search.engine.pbt import build_pbt
        from search.spec.registry import resolve_trainable

        searcher, scheduler = build_pbt(spec, resolve_trainable(setup.trainable_ref, setup.search_paths))
        return _tuner(spec, plan, setup, searcher, scheduler, param_space, epoch_lines), searcher, scheduler
    searcher = PruningAwareOptunaSearch(
        space=DefineByRun(spec.space),
        metric=[m for m, _ in spec.objectives] if spec.multi_objective else spec.primary_metric,
        mode=[m for _, m in spec.objectives] if spec.multi_objective else spec.primary_mode,
        points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
        sampler=build_sampler(spec.search.sampler.value, spec.search.seed, spec.search.sampler_options),
        study_name=spec.name,
    )
    scheduler = None
    if spec.scheduler.type == "asha":
        ranked = spec.scheduler_objectives  # several: MO-ASHA ranks every rung on all of them
        cut_on = {"objectives": ranked} if len(ranked) > 1 else {"metric": ranked[0][0], "mode": ranked[0][1]}
        scheduler = PruningASHA(searcher, **cut_on, max_t=spec.max_epochs, grace_period=spec.scheduler.grace_period,
                                reduction_factor=spec.scheduler.reduction_factor, brackets=spec.scheduler.brackets)
    return _tuner(spec, plan, setup, searcher, scheduler, param_space, epoch_lines), searcher, scheduler


def _tuner(spec: Spec, plan: TrialPlan, setup: Any, searcher: Any, scheduler: Any, param_space: dict[str, Any],
           epoch_lines: bool) -> Any:
    from ray import tune

    from search.engine.callbacks import ProgressLines, PrunedCheckpointCleanup, TellBudgetStops, tensorboard_logger

    trainable = trial_trainable(plan, setup)
    pruned = getattr(scheduler, "pruned", {})
    select = (spec.select.tolerance, dict(spec.select.limits)) if spec.multi_objective else None
    callbacks = [ProgressLines(spec.primary_metric, spec.primary_mode, pruned=pruned, num_samples=spec.search.num_samples,
                               epoch_lines=epoch_lines, objectives=list(spec.objectives), select=select),
                 PrunedCheckpointCleanup(pruned)]
    if spec.search.time_budget_s and spec.scheduler.type != "pbt":  # PBT's searcher is no Optuna study
        callbacks.append(TellBudgetStops(searcher, spec.search.time_budget_s))
    if spec.tracking.mlflow is not None:
        from search.engine.tracking import MLflowTracking

        # A URI experiment's default MLflow store: its local mirror, on this machine (which never deletes it).
        callbacks.append(MLflowTracking(spec.tracking.mlflow, Experiment(setup.experiment_path).local, spec.name))
    from search.internals import result_loggers

    callbacks += result_loggers()  # a trial restarted by a retry or by PBT keeps every row it reported
    callbacks += tensorboard_logger()  # off the driver's loop: a trial's report waits for it no more
    from search.engine.warmup import refit_warmup

    callbacks += refit_warmup(spec, setup.search_paths)  # the refit's imports while the last trials run
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
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
            storage_path=storage_root(spec.storage),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.checkpoints_to_keep,
                checkpoint_score_attribute=spec.checkpoint_score,
                checkpoint_score_order=spec.checkpoint_mode,
            ),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
            sync_config=sync_config_of(spec),
            callbacks=callbacks,
            verbose=0,
        ),
    )
    return tuner


def sync_config_of(spec: Spec) -> Any:
    """How often Tune syncs the driver's files (every trial's ``result.json``) to the storage.

    Tune does so every ``num_to_keep`` checkpoints of a trial, else every ``sync_period`` (5
    minutes by default), and a killed driver loses what was not synced. A run that keeps every
    checkpoint (PBT, or ``num_to_keep: null``) syncs every :data:`SYNC_PERIOD_S` seconds instead.
    """
    from ray import tune

    if spec.checkpoints_to_keep in (None, KEEP_EVERY_CHECKPOINT):
        return tune.SyncConfig(sync_period=SYNC_PERIOD_S)
    return tune.SyncConfig()


def param_space_of(spec: Spec) -> dict[str, Any]:
    """Tune's ``param_space``: the fixed values (Optuna samples the space), with PBT a Tune domain per parameter.

    ``Tuner.restore`` wants the same one (it refuses other keys).
    """
    if spec.scheduler.type == "pbt":
        from search.engine.pbt import pbt_param_space

        return pbt_param_space(spec)
    return dict(spec.fixed)


def trial_trainable(plan: TrialPlan, setup: Any) -> Any:
    """The Tune trainable for the plan's executor, with ``setup`` bound and its resources."""
    from ray import tune

    from search.trials.direct import run_direct_trial
    from search.trials.torch_trainer import run_torch_trial

    if plan.executor.value == "torch_trainer" and plan.reuse_workers:
        from search.trials.pool import pooled_trainable

        trainable = pooled_trainable(setup)
    else:
        fn = run_direct_trial if plan.executor.value == "direct" else run_torch_trial
        trainable = tune.with_parameters(fn, setup=setup)
    return tune.with_resources(trainable, plan.trial_resources)


def trial_dirname(trial: Any) -> str:
    """Short, stable trial folder names: ``trial_<id>``."""
    return f"trial_{trial.trial_id}"
