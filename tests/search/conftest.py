from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.search.helpers import TINY_SPEC, S3Server


@pytest.fixture
def tiny_spec() -> str:
    """A valid spec of 3 tiny trials (3 epochs on 200 samples): :data:`tests.search.helpers.TINY_SPEC`."""
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's ``ThreadedMotoServer`` on 127.0.0.1, one per session; stopped at the end."""
    pytest.importorskip("moto")
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="runs")
    try:
        yield S3Server(endpoint, "runs", env)
    finally:
        server.stop()
