"""What each trial asks of the cluster, and how many trials can run at once without deadlock.

With the TorchTrainer executor, the Tune trial only runs a driver; Ray Train places
the workers in a placement group of their own, *outside* the trial's resources. If
the drivers take the CPUs the workers need, every trial waits for workers that can
never be placed (see docs/ray_optuna_notes.md). So: drivers ask for a token resource, and the
number of concurrent trials follows from the workers' demand.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from search.spec.models import Executor, ResourcesSpec, Spec

__all__ = ["TrialPlan", "ResourcePlanError", "plan_trials", "resolved_executor", "local_resources", "DRIVER_RESOURCE",
           "FRACTIONAL_DRIVER_CPU"]

#: Custom resource the embedded cluster is started with, one unit per trial driver.
DRIVER_RESOURCE = "search_trial_driver"
#: On a cluster we did not start (no custom resource), drivers take this much CPU.
FRACTIONAL_DRIVER_CPU = 0.01


class ResourcePlanError(ValueError):
    """The cluster can never satisfy what one trial asks for."""


@dataclass(frozen=True)
class TrialPlan:
    executor: Executor  # DIRECT or TORCH_TRAINER, never AUTO
    use_gpu: bool
    num_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    trial_resources: dict[str, float]  # what the Tune trial itself requests
    max_concurrent: int
    notes: list[str] = field(default_factory=list)
    reuse_workers: bool = True  # torch_trainer: one TorchTrainer per trial process, not per trial

    @property
    def worker_resources(self) -> dict[str, float]:
        res = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            res["GPU"] = self.gpus_per_worker
        return res

    @property
    def ddp_backend(self) -> str:
        """The process group's backend for this trial's Train workers.

        NCCL on GPUs, except when a trial's workers hold fractions of a GPU: Ray may then place
        two ranks on one device, which NCCL refuses at the first collective ("invalid usage",
        NCCL 2.28 on an H200); gloo reduces CUDA tensors too, through the host. gloo on CPUs.
        """
        if self.use_gpu and (self.num_workers == 1 or self.gpus_per_worker >= 1):
            return "nccl"
        return "gloo"

    def demand(self) -> dict[str, float]:
        """Cluster resources one running trial holds, driver and workers together."""
        total = dict(self.trial_resources)
        if self.executor is Executor.TORCH_TRAINER:
            for key, value in self.worker_resources.items():
                total[key] = total.get(key, 0.0) + value * self.num_workers
        return total


def local_resources() -> tuple[dict[str, float], list[dict[str, float]]]:
    """This machine's CPUs and GPUs, without starting Ray (for ``validate``): the GPUs as an embedded Ray would
    count them (:func:`search.internals.node_gpus`), without importing torch (a second of ``validate``)."""
    from search.internals import node_gpus

    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    node = {"CPU": cpus, "GPU": float(node_gpus())}
    return node, [node]


def resolved_executor(resources: ResourcesSpec) -> Executor:
    """The executor a spec's ``resources`` give: ``auto`` is ``direct`` for one worker, ``torch_trainer`` for more."""
    if resources.executor is Executor.AUTO:
        # One worker needs no process group: running it in the trial saves ~10 s per trial.
        return Executor.DIRECT if resources.num_workers == 1 else Executor.TORCH_TRAINER
    return resources.executor


def plan_trials(
    spec: Spec,
    cluster: Mapping[str, float],
    nodes: Sequence[Mapping[str, float]],
    *,
    driver_resource: bool,
    available: Mapping[str, float] | None = None,
) -> TrialPlan:
    """Resolve ``auto`` settings against the cluster and compute safe concurrency.

    Args:
        cluster: total resources (``ray.cluster_resources()``).
        nodes: each alive node's resources, to check that a worker fits on one node.
        driver_resource: the cluster has :data:`DRIVER_RESOURCE` (we started it).
        available: resources free now (``ray.available_resources()``): concurrency follows
            these, so a CPU held by a job's driver is not counted; defaults to ``cluster``.

    Raises:
        ResourcePlanError: a worker needs more than any node has, or a trial more
            than the whole cluster: it would wait forever.
    """
    res = spec.resources
    gpus_total = float(cluster.get("GPU", 0.0))
    use_gpu = gpus_total > 0 if res.use_gpu == "auto" else bool(res.use_gpu)
    gpus_per_worker = res.gpus_per_worker if res.gpus_per_worker is not None else (1.0 if use_gpu else 0.0)
    executor = resolved_executor(res)
    worker = {"CPU": res.cpus_per_worker, "GPU": gpus_per_worker}
    _check_fits(worker, res.num_workers, cluster, nodes, use_gpu)
    if executor is Executor.DIRECT:
        trial_resources = {k: v for k, v in worker.items() if v}
    elif driver_resource:
        trial_resources = {DRIVER_RESOURCE: 1.0}
    else:
        trial_resources = {"CPU": FRACTIONAL_DRIVER_CPU}
    plan = TrialPlan(executor, use_gpu, res.num_workers, res.cpus_per_worker, gpus_per_worker, trial_resources, 1)
    computed = _concurrency(plan.demand(), available if available is not None else cluster)
    notes = []
    wanted = spec.search.max_concurrent_trials
    if wanted is not None and wanted > computed:
        notes.append(f"max_concurrent_trials {wanted} lowered to {computed}: the cluster fits only {computed} "
                     f"trial(s) of {_fmt(plan.demand())} at once")
    concurrent = max(1, min(wanted or computed, computed, spec.search.num_samples))
    if spec.scheduler.type == "pbt" and executor is Executor.TORCH_TRAINER and spec.search.num_samples > concurrent:
        # Trials on Train workers wait for them inside a running Tune trial, where PBT cannot pause one for another:
        # it would see them one after the other and never compare two.
        raise ResourcePlanError(
            f"scheduler pbt with executor torch_trainer trains the whole population at once, and {concurrent} trial(s) "
            f"of {_fmt(plan.demand())} fit at once, not {spec.search.num_samples}: lower search.num_samples to "
            f"{concurrent} (with more, PBT never compares two), lower the workers' resources, or use num_workers: 1 "
            "(executor direct, where PBT pauses trials to take turns)")
    return TrialPlan(executor, use_gpu, res.num_workers, res.cpus_per_worker, gpus_per_worker, trial_resources,
                     concurrent, notes, res.reuse_workers)


def _check_fits(worker: Mapping[str, float], num_workers: int, cluster: Mapping[str, float],
                nodes: Sequence[Mapping[str, float]], use_gpu: bool) -> None:
    if use_gpu and float(cluster.get("GPU", 0)) == 0:
        raise ResourcePlanError("resources.use_gpu is true but the cluster has no GPU; set use_gpu: auto or false")
    for key, amount in worker.items():
        if not amount:
            continue
        total = float(cluster.get(key, 0.0))
        biggest = max((float(n.get(key, 0.0)) for n in nodes), default=total)
        if amount > biggest:
            raise ResourcePlanError(f"each worker asks for {amount:g} {key} but the largest node has {biggest:g}; "
                                    f"lower resources.{'gpus' if key == 'GPU' else 'cpus'}_per_worker")
        if amount * num_workers > total:
            raise ResourcePlanError(f"{num_workers} workers x {amount:g} {key} = {amount * num_workers:g} {key}, but the "
                                    f"cluster has {total:g}; lower resources.num_workers or the per-worker {key}")


def _concurrency(demand: Mapping[str, float], cluster: Mapping[str, float]) -> int:
    limits = [math.floor(float(cluster.get(k, 0.0)) / v + 1e-9) for k, v in demand.items() if v > 0]
    return max(1, min(limits, default=1))


def _fmt(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items() if v)
