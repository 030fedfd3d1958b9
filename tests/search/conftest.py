from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class S3Server:
    """A real S3 API on loopback (moto's server mode), with bucket :attr:`bucket` created."""

    endpoint: str
    bucket: str
    env: dict[str, str]  # what a process needs to reach it: endpoint, region, dummy credentials

    def files(self, prefix: str) -> dict[str, int]:
        """Object path (below the bucket) -> size, for every object under ``prefix``."""
        import pyarrow.fs

        fs = self.filesystem()
        root = f"{self.bucket}/{prefix}".rstrip("/")
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
        return {i.path[len(self.bucket) + 1:]: i.size for i in infos if i.type == pyarrow.fs.FileType.File}

    def read(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def read_bytes(self, key: str) -> bytes:
        with self.filesystem().open_input_stream(f"{self.bucket}/{key}") as fh:
            return fh.read()

    def write(self, key: str, text: str) -> None:
        with self.filesystem().open_output_stream(f"{self.bucket}/{key}") as fh:
            fh.write(text.encode())

    def filesystem(self):
        import pyarrow.fs

        return pyarrow.fs.S3FileSystem(endpoint_override=self.endpoint, access_key="testing", secret_key="testing",
                                       region="us-east-1", scheme="http")


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


def results_cli(*argv: str) -> tuple[int, str, str]:
    """Run a results command in-process as `python -m search` would: (exit code, stdout, stderr)."""
    import argparse
    import contextlib
    import io

    from search.cli.results import HANDLERS, add_parsers

    parser = argparse.ArgumentParser(prog="python -m search")
    parser.add_argument("--debug", action="store_true")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = HANDLERS[args.command](args)
    return code, out.getvalue(), err.getvalue()
