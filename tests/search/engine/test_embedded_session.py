"""An embedded Ray (``search.engine.session.ray_session``) as it starts, in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Starts the embedded cluster, waits until Ray would have started its workers ahead, and prints the
# raylet's worker processes (Ray's own agents aside), the Ray settings the raylet started with, and
# whether the driver's own environment still holds any of them.
STARTED = """
import json, os, time
import psutil
from search.engine.session import EMBEDDED_RAY_ENV, ray_session

before = {name: os.environ.get(name) for name in EMBEDDED_RAY_ENV}
with ray_session(num_cpus=2, include_dashboard=False):
    time.sleep(4)
    (raylet,) = [p for p in psutil.Process().children() if p.name() == "raylet"]
    workers = [c for c in raylet.children()
               if "default_worker.py" in " ".join(c.cmdline()) or c.name().startswith("ray::IDLE")]
    env = raylet.environ()
    print(json.dumps({"workers": len(workers), "raylet": {name: env.get(name) for name in EMBEDDED_RAY_ENV},
                      "driver_after": {name: os.environ.get(name) for name in EMBEDDED_RAY_ENV} == before}))
"""


def _started(**env: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", STARTED], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ray
@pytest.mark.slow
def test_an_embedded_cluster_starts_no_workers_ahead_and_retries_its_store_quickly_unless_the_user_says():
    # Tune's trials and Train's workers each start their own process; workers started ahead only compete with them.
    # The raylet retries its object store's socket every 50 ms (Ray's default: every second, 10 times).
    plain = _started()
    assert plain["workers"] == 0
    assert plain["raylet"] == {"RAY_prestart_worker_first_driver": "0",
                               "RAY_raylet_client_connect_timeout_milliseconds": "50",
                               "RAY_raylet_client_num_connect_attempts": "200"}
    assert plain["driver_after"]  # the driver's environment is as it was
    # A user's own settings are Ray's to apply; the two connection settings are left together.
    asked = _started(RAY_prestart_worker_first_driver="1", RAY_raylet_client_num_connect_attempts="30")
    assert asked["workers"] >= 1, asked
    assert asked["raylet"] == {"RAY_prestart_worker_first_driver": "1",
                               "RAY_raylet_client_connect_timeout_milliseconds": None,
                               "RAY_raylet_client_num_connect_attempts": "30"}
    assert asked["driver_after"]


# Runs an embedded session with Ray's autoscaler monitor (as a run with the dashboard has it; one without leaves it
# out) and prints whether the monitor was still running when ``ray.shutdown`` was called, and which of the driver's
# child processes outlived the session.
ENDED = """
import contextlib, json
import psutil
import ray
import search.internals
from search.engine.session import ray_session

search.internals.monitor_left_out = lambda include_dashboard: contextlib.nullcontext()

seen = {}
real_shutdown = ray.shutdown

def running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

def shutdown(*args, **kwargs):
    seen["monitor_running"] = running(seen["monitor"])
    return real_shutdown(*args, **kwargs)

ray.shutdown = shutdown
with ray_session(num_cpus=2, include_dashboard=False):
    (monitor,) = [p for p in psutil.Process().children() if any(arg.endswith("/monitor.py") for arg in p.cmdline())]
    seen["monitor"] = monitor.pid
    started = [p.pid for p in psutil.Process().children(recursive=True)]
alive = [pid for pid in started if running(pid)]
print(json.dumps({"monitor_running_at_shutdown": seen["monitor_running"], "left": alive, "started": len(started)}))
"""


@pytest.mark.ray
@pytest.mark.slow
def test_an_embedded_cluster_stops_its_autoscaler_monitor_before_ray_shutdown_and_leaves_no_process():
    # Ray's shutdown stops the GCS, then gives the monitor a second to handle SIGTERM (its handler reports to the GCS
    # that is gone) before SIGKILL: a second at the end of every run. Ours stops the monitor first.
    proc = subprocess.run([sys.executable, "-c", ENDED], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ended = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ended["started"] >= 3  # GCS, raylet, monitor and Ray's agents
    assert ended["monitor_running_at_shutdown"] is False
    assert ended["left"] == []


# Starts an embedded session without the dashboard and prints whether Ray's API server process and its autoscaler
# monitor run, what ray.init reported as the dashboard's address, whether a task and an actor still run, and whether
# Ray's own wait for the new node (services.get_node) took its one-second sleep.
API_SERVER = """
import json, os, time
import psutil
import ray
import ray._private.services as services
from search.engine.session import ray_session

inside, real_get_node = [], services.get_node

def timed_get_node(*args):  # Ray's own wait for the new node (GetNode sleeps a second while it is not registered)
    start = time.monotonic()
    node = real_get_node(*args)
    inside.append(time.monotonic() - start)
    return node

services.get_node = timed_get_node

def running(script):
    return len([p for p in psutil.Process().children() if any(a.endswith(script) for a in p.cmdline())])

with ray_session(num_cpus=2, include_dashboard=False):
    servers, monitors = running("dashboard/dashboard.py"), running("autoscaler/_private/monitor.py")
    url = ray._private.worker._global_node.webui_url
    answer = ray.get(ray.remote(lambda: 42).remote())
    counter = ray.remote(num_cpus=1)(type("Counter", (), {"add": lambda self, n: n + 1})).remote()
    answer += ray.get(counter.add.remote(1)) - 2
    (raylet,) = [p for p in psutil.Process().children() if p.name() == "raylet"]
    lean = any("search/internals/lean_setup_worker.py" in a for a in raylet.cmdline())
    seen = ray.get(ray.remote(lambda: [os.environ.get(n) for n in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "PROBE")])
                   .options(runtime_env={"env_vars": {"PROBE": "${HOME}-x${UNSET_HERE}"}}).remote())
print(json.dumps({"servers": servers, "monitors": monitors, "url": url, "answer": answer,
                  "get_node_called": bool(inside), "get_node_waited": max(inside, default=0.0) > 0.9,
                  "lean_setup_worker": lean, "seen": seen}))
"""


def _api_server(home: Path, usage_stats: str | None) -> dict:
    env = {name: value for name, value in os.environ.items() if name != "RAY_USAGE_STATS_ENABLED"}
    env["HOME"] = str(home)  # no ~/.ray/config.json of this machine's user
    if usage_stats is not None:
        env["RAY_USAGE_STATS_ENABLED"] = usage_stats
    proc = subprocess.run([sys.executable, "-c", API_SERVER], cwd=REPO, capture_output=True, text=True, timeout=180,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ray
@pytest.mark.slow
def test_an_embedded_cluster_without_the_dashboard_starts_no_api_server_unless_usage_stats_are_asked_for(tmp_path):
    # Without the dashboard Ray's API server runs usage stats alone, and ray.init waits for its address (~0.55 s).
    # Nor the autoscaler monitor: one node has nothing to scale (~0.2 s of ray.init).
    # And Ray's wait for its new node starts once the GCS lists it (asked every 20 ms): its GetNode no longer sleeps a
    # second because the raylet, which registers only after its agents have started, had not registered yet.
    # Its Python workers start through our setup script, without Ray's importing Ray first (0.3 s a worker); the job's
    # and a task's runtime-env variables still reach them, expanded as Ray expands them.
    plain = _api_server(tmp_path, None)
    assert plain == {"servers": 0, "monitors": 0, "url": None, "answer": 42, "get_node_called": True,
                     "get_node_waited": False, "lean_setup_worker": True, "seen": ["0.1", f"{tmp_path}-x"]}
    # Usage stats the user enabled are reported as Ray would: the server starts.
    asked = _api_server(tmp_path, "1")
    assert asked["servers"] == 1 and asked["monitors"] == 0 and asked["answer"] == 42, asked
