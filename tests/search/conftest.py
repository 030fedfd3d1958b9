from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TINY_SPEC = """
name: tiny
trainable: feature_selection
data: {name: madelon, n_samples: 200, n_features: 10, n_informative: 3}
metric: val_accuracy
mode: max
search: {num_samples: 3, seed: 0}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
space:
  lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  sparsity_lambda: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
fixed: {epochs: 3, batch_size: 32}
resources: {num_workers: 1, cpus_per_worker: 1}
failure: {max_retries: 0}
"""


@pytest.fixture
def tiny_spec() -> str:
    """A valid spec of 3 tiny trials (3 epochs on 200 samples)."""
    return TINY_SPEC


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write YAML text (dedented) to tmp_path/name and return the path."""

    def write(text: str, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray per test session: 2 CPUs, the trial-driver resource.

    With the dashboard on, not off: Ray Train's placement-group cleaner asks the state
    API whether a run's controller is alive, and a cluster without a dashboard sends
    that question to 127.0.0.1:8265, where another cluster on the machine may answer
    "no such actor" and the live run's placement group is removed (seen here).
    """
    ray = pytest.importorskip("ray")
    from search.trials.resources import DRIVER_RESOURCE

    ray.init(num_cpus=2, include_dashboard=True, resources={DRIVER_RESOURCE: 100},
             runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}}, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
