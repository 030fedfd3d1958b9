"""The suite's own set-up: the shared cluster's tests run on one xdist worker (``tests/conftest.py``).

If the grouping silently stopped working (a pytest or xdist upgrade), each worker would start its own
shared cluster, which once hung a DDP test; this test fails first. The others check the clean-up after
each test (``tests/search/conftest.py``): what a test leaves running, processes or the shared cluster's
CPUs, is named and stopped, so one failure does not slow or starve every later test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

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


LEAKING_TESTS = '''
import pytest
import ray

import tests.search.conftest as shared

shared.RELEASE_WAIT_S = 3.0  # the suite waits 30 s; this test need not
kept = []


@ray.remote(num_cpus=2)
class Hog:
    def ping(self):
        return 1


def test_leaves_both_cpus_held(ray_cluster):
    hog = Hog.remote()
    ray.get(hog.ping.remote())
    kept.append(hog)  # alive after the test, as a trial actor of an interrupted run would be


def test_after_it_a_task_runs(ray_cluster):
    @ray.remote(num_cpus=1)
    def one():
        return 1

    assert ray.get(one.remote(), timeout=20) == 1
'''


@pytest.mark.ray
@pytest.mark.slow
def test_a_test_that_leaves_the_shared_cluster_busy_is_named_and_the_next_gets_a_fresh_cluster(tmp_path):
    # The shared cluster's fixtures (tests/search/conftest.py), loaded as a plugin into a pytest run of their own.
    (tmp_path / "test_leaks.py").write_text(LEAKING_TESTS)
    env = {**os.environ, "PYTHONPATH": str(CONFTEST.parent.parent)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.search.conftest",
                           "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_leaks.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout
    assert "test_leaves_both_cpus_held left {'CPU': 2.0} of the shared Ray cluster in use" in proc.stdout, proc.stdout


LEAVING_A_PROCESS = '''
import os
import subprocess
import sys
import time

CHILD = (
    "import os, subprocess, sys, time\\n"
    "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\\n"
    "open(os.environ['LEFT_PIDS'] + '.part', 'w').write(f'{os.getpid()} {grandchild.pid}')\\n"
    "os.replace(os.environ['LEFT_PIDS'] + '.part', os.environ['LEFT_PIDS'])\\n"
    "time.sleep(600)\\n"
)


def test_leaves_a_process_running():
    subprocess.Popen([sys.executable, "-c", CHILD])
    while not os.path.exists(os.environ["LEFT_PIDS"]):  # written whole, then renamed
        time.sleep(0.05)
    assert False, "failed before it stopped its child"
'''


def test_a_process_a_test_leaves_running_is_named_and_killed_with_its_children(tmp_path):
    import psutil

    (tmp_path / "test_leaves.py").write_text(LEAVING_A_PROCESS)
    pids = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(CONFTEST.parent.parent), "LEFT_PIDS": str(pids)}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.search.conftest",
                             "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_leaves.py")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=120)
        assert "1 failed" in out, out
        assert "test_leaves_a_process_running left 1 process(es) running, killed with their children" in out, out
        for pid in map(int, pids.read_text().split()):  # the child and its own child
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    finally:
        proc.kill()
        for pid in map(int, pids.read_text().split()) if pids.exists() else ():
            with contextlib.suppress(psutil.Error):  # only ours, should the guard have missed it and the pid be reused
                if "time.sleep(600)" in " ".join(psutil.Process(pid).cmdline()):
                    psutil.Process(pid).kill()
