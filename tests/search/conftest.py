from __future__ import annotations

import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
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


#: The shared cluster's own processes (children of this process), which no test's clean-up stops.
_CLUSTER_PIDS: set[int] = set()


def _child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children()}


def _start_shared_cluster() -> None:
    import ray

    from search.trials.resources import DRIVER_RESOURCE

    before = _child_pids()
    ray.init(num_cpus=2, include_dashboard=True, resources={DRIVER_RESOURCE: 100},
             runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}}, log_to_driver=False)
    _CLUSTER_PIDS.update(_child_pids() - before)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray per test session: 2 CPUs, the trial-driver resource.

    With the dashboard on, not off: Ray Train's placement-group cleaner asks the state
    API whether a run's controller is alive, and a cluster without a dashboard sends
    that question to 127.0.0.1:8265, where another cluster on the machine may answer
    "no such actor" and the live run's placement group is removed (seen here).
    """
    ray = pytest.importorskip("ray")
    _start_shared_cluster()
    try:
        yield
    finally:
        ray.shutdown()


#: How long a test's actors and placement groups may take to hand their resources back after it.
RELEASE_WAIT_S = 30.0


def _held_resources() -> dict[str, float]:
    """What the shared cluster's CPUs and custom resources still have in use (empty when all are free)."""
    import ray

    total, free = ray.cluster_resources(), ray.available_resources()
    held = {}
    for name, amount in total.items():
        if name in ("memory", "object_store_memory") or name.startswith("node:"):
            continue  # the object store's use and the node's own marker are not a test's to give back
        if free.get(name, 0.0) < amount:
            held[name] = amount - free.get(name, 0.0)
    return held


def _new_children(before: set[int]) -> list[psutil.Process]:
    """This process's children started since ``before`` and still running (multiprocessing's helpers aside)."""
    left = []
    for child in psutil.Process().children():
        try:
            if (child.pid not in before and child.pid not in _CLUSTER_PIDS and child.status() != psutil.STATUS_ZOMBIE
                    and "multiprocessing" not in " ".join(child.cmdline())):
                left.append(child)
        except psutil.Error:
            continue  # it ended meanwhile
    return left


def _stop_left_processes(before: set[int], nodeid: str) -> None:
    """Kill what a test started and left running (a ``python -m search run`` whose test failed before it ended,
    with its embedded Ray), so that it does not take the CPUs of every later test; named in a warning."""
    left = _new_children(before)
    if not left:
        return
    commands = []
    tree: list[psutil.Process] = []
    for process in left:
        try:
            commands.append(" ".join(process.cmdline())[:120])
            tree += [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
    for process in tree:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(tree, timeout=10)
    warnings.warn(f"{nodeid} left {len(commands)} process(es) running, killed with their children: {commands}",
                  stacklevel=1)


@pytest.fixture(autouse=True)
def _left_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: nothing it started still running, and the shared cluster's CPUs free again.

    A test cut short (a failed assert while its ``python -m search run`` runs on, its time limit, an interrupted
    fit, a Ray Train controller left running) can leave processes, actors or placement groups behind: they
    would take the CPUs every later test needs, so that those run slowly or wait until their own time limit, one
    test after another (how a CI run once used up its 90 minutes). What is left is named in a warning; the
    test's own processes are killed, and the shared cluster is started again if its CPUs stay in use.
    """
    before = _child_pids()
    yield
    _stop_left_processes(before, request.node.nodeid)
    if "ray_cluster" not in request.fixturenames:
        return
    import ray

    if not ray.is_initialized():  # the test shut it down itself: start it again for the next one
        _start_shared_cluster()
        return
    deadline = time.monotonic() + RELEASE_WAIT_S
    while (held := _held_resources()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if held:
        warnings.warn(f"{request.node.nodeid} left {held} of the shared Ray cluster in use "
                      f"{RELEASE_WAIT_S:.0f} s after it ended; the cluster was started again", stacklevel=1)
        ray.shutdown()
        _start_shared_cluster()


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
