"""The Ray session of a run: join a cluster or start an embedded one, with the environment trials need."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from search.trials.resources import DRIVER_RESOURCE

__all__ = ["REPORT_INTERVAL_S", "ray_session", "cluster_view"]

#: Ray Train V2 paces ``report`` by its health-check interval (2 s by default); with
#: epochs of milliseconds that interval, not training, would set the pace.
REPORT_INTERVAL_S = "0.1"


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


def cluster_view() -> tuple[dict[str, float], list[dict[str, float]], dict[str, float]]:
    """Total resources, each alive node's resources, and what is free now."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return dict(ray.cluster_resources()), nodes, dict(ray.available_resources())
