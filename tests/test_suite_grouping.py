"""The suite's own set-up: the shared cluster's tests run on one xdist worker (``tests/conftest.py``).

If the grouping silently stopped working (a pytest or xdist upgrade), each worker would start its own
shared cluster, which once hung a DDP test; this test fails first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

FAKE_CLUSTER = '''

@pytest.fixture(scope="session")
def ray_cluster():
    yield


@pytest.fixture
def through_another(ray_cluster):
    yield
'''

TESTS = '''
import os

import pytest


def _log(kind, i):
    with open(os.environ["GROUPING_LOG"], "a") as out:
        out.write(f"{kind} {i} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")


@pytest.mark.ray
@pytest.mark.parametrize("i", range(4))
def test_on_the_cluster(ray_cluster, i):
    _log("cluster", i)


@pytest.mark.ray
@pytest.mark.parametrize("i", range(4))
def test_on_the_cluster_through_a_fixture(through_another, i):
    _log("cluster", 10 + i)


@pytest.mark.parametrize("i", range(12))
def test_elsewhere(i):
    import time

    time.sleep(0.05)
    _log("free", i)
'''


def test_every_test_on_the_shared_cluster_runs_on_one_worker_and_the_rest_on_both(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text() + FAKE_CLUSTER)
    (tmp_path / "test_grouped.py").write_text(TESTS)
    log = tmp_path / "log"
    env = {**os.environ, "GROUPING_LOG": str(log)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist",
                           "loadgroup", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workers: dict[str, set[str]] = defaultdict(set)
    runs = 0
    for line in log.read_text().splitlines():
        kind, _, worker = line.split()
        workers[kind].add(worker)
        runs += 1
    assert runs == 20
    assert len(workers["cluster"]) == 1, workers  # one worker, so one shared cluster
    assert workers["free"] == {"gw0", "gw1"}, workers  # the rest is shared out
