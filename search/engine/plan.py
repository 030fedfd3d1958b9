"""The human-readable plan ``validate`` prints: parameters, rungs, concurrency."""

from __future__ import annotations

from search.spec.models import Spec
from search.spec.registry import TRAINABLES, trainable_ref
from search.spec.space import describe
from search.trials.resources import ResourcePlanError, TrialPlan, local_resources, plan_trials

__all__ = ["asha_rungs", "render_plan"]


def asha_rungs(spec: Spec) -> list[int]:
    """Epochs at which ASHA may cut trials (see :meth:`search.spec.models.SchedulerSpec.rungs`)."""
    return list(spec.scheduler.rungs(spec.max_epochs))


def render_plan(spec: Spec) -> tuple[str, TrialPlan | None]:
    pbt = spec.scheduler.type == "pbt"
    pick = ""
    if spec.multi_objective:  # search.results (pandas) for a Pareto front's rule only
        from search.results.pareto import describe_rule

        pick = f" (Pareto front; pick: {describe_rule(spec.objectives, spec.select.tolerance, spec.select.limits)})"
    lines = [f"experiment  {spec.name}", f"trainable   {spec.trainable}",
             "objective   " + ", ".join(f"{mode} {metric}" for metric, mode in spec.objectives) + pick,
             f"search      {'random population (PBT)' if pbt else spec.search.sampler.value}, "
             f"{spec.search.num_samples} trials, seed {spec.search.seed}"
             + (f", time budget {spec.search.time_budget_s:g}s" if spec.search.time_budget_s else "")]
    if spec.data:
        lines.append(f"data        {spec.data.get('name') or 'loaded by ' + str(spec.data.get('loader'))}")
    lines.append("parameters:")
    lines += [f"  {describe(name, param)}" for name, param in spec.space.items()] or ["  (none)"]
    if spec.fixed:
        lines.append("fixed:")
        lines += [f"  {k:<20} {v!r}" for k, v in spec.fixed.items()]
    if spec.scheduler.type == "asha":
        rungs = asha_rungs(spec)
        lines.append(f"scheduler   ASHA on epoch and {spec.scheduler_mode} {spec.scheduler_metric}, max_t {spec.max_epochs}, reduction factor {spec.scheduler.reduction_factor:g}; "
                     f"trials can be cut at epochs {', '.join(map(str, rungs)) or '(none)'}")
    elif pbt:
        sched = spec.scheduler
        mutated = ", ".join(sched.mutate) if sched.mutate else "every searched parameter the trainable can change"
        lines.append(f"scheduler   PBT on epoch and {spec.scheduler_mode} {spec.scheduler_metric}: every "
                     f"{sched.perturbation_interval} epochs (from epoch {sched.burn_in_period + sched.perturbation_interval})"
                     f" the bottom {sched.quantile_fraction:g} of the trials go on from a top trial's checkpoint with "
                     f"its configuration mutated ({mutated})")
    else:
        lines.append("scheduler   none (every trial runs to its end)")
    node, nodes = local_resources()
    try:
        plan = plan_trials(spec, node, nodes, driver_resource=True)
    except ResourcePlanError as exc:
        lines.append(f"resources   NOT RUNNABLE on this machine ({node['CPU']:g} CPU, {node['GPU']:g} GPU): {exc}")
        return "\n".join(lines), None
    worker = ", ".join(f"{v:g} {k}" for k, v in plan.worker_resources.items())
    kept = ""
    if plan.executor.value == "torch_trainer":
        kept = ", workers kept across trials" if plan.reuse_workers else ", a new TorchTrainer per trial"
    lines.append(f"resources   executor {plan.executor.value}{kept}, {plan.num_workers} worker(s) x ({worker}), "
                 f"GPU {'on' if plan.use_gpu else 'off'}")
    lines.append(f"concurrency {plan.max_concurrent} trial(s) at once on this machine ({node['CPU']:g} CPU, {node['GPU']:g} GPU)")
    lines.append(f"checkpoints {_checkpoints(spec)}")
    lines += [f"note        {n}" for n in plan.notes]
    if spec.checkpoint_score != spec.primary_metric:
        lines.append(f"note        checkpoints ranked by {spec.checkpoint_score}, not by {spec.primary_metric}: the "
                     f"checkpoint kept (and load_model's) may be another epoch than the table's best_epoch")
    if pbt:
        lines.append("note        every checkpoint is kept while PBT runs (trials copy each other's), and there is no "
                     "refit: a PBT trial's model trained under a schedule of configurations; its best checkpoint is "
                     "the one tested")
    lines.append(f"storage     {spec.storage}/{spec.name}")
    return "\n".join(lines), plan


def _checkpoints(spec: Spec) -> str:
    """When a trial checkpoints (the built-in trainable's rule) and what it keeps."""
    kept = ("all kept" if spec.checkpoint.num_to_keep is None or spec.scheduler.type == "pbt"
            else f"{spec.checkpoint.num_to_keep} kept per trial (by {spec.checkpoint_mode} {spec.checkpoint_score}) "
                 "and the latest")
    if trainable_ref(spec.trainable) not in TRAINABLES.values():
        return f"whenever the trainable reports one; {kept}"
    from trainables.tasks import FeatureSelectionConfig

    searched = [key for key in ("checkpoint_every", "checkpoint_every_s") if key in spec.space]
    if searched:
        return f"as each trial's {' and '.join(searched)} say (searched); {kept}"
    defaults = FeatureSelectionConfig()
    every = spec.fixed.get("checkpoint_every", defaults.checkpoint_every)
    every_s = spec.fixed.get("checkpoint_every_s", defaults.checkpoint_every_s)
    if not every:
        return "none (fixed.checkpoint_every 0): a failed or interrupted trial starts again"
    if spec.scheduler.type == "pbt":
        return f"every epoch (PBT copies a trial's latest checkpoint); {kept}"
    nth = "" if every == 1 else f" (on multiples of {every} epochs)"
    if not every_s:
        return (f"every {every} epochs, best epochs (by {spec.checkpoint_score}) and the last; {kept}" if nth
                else f"every epoch; {kept}")
    return (f"best epochs (by {spec.checkpoint_score}), the last, and at most one every {every_s:g} s between{nth} "
            f"(fixed.checkpoint_every_s); {kept}")
