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
# raylet's worker processes (Ray's own agents aside).
COUNT_WORKERS = """
import json, time
import psutil
from search.engine.session import ray_session

with ray_session(num_cpus=2, include_dashboard=False):
    time.sleep(4)
    raylets = [p for p in psutil.Process().children() if p.name() == "raylet"]
    workers = [c.cmdline() for r in raylets for c in r.children()
               if "default_worker.py" in " ".join(c.cmdline()) or c.name().startswith("ray::IDLE")]
    print(json.dumps({"raylets": len(raylets), "workers": len(workers)}))
"""


def _workers_started(**env: str) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", COUNT_WORKERS], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ray
@pytest.mark.slow
def test_an_embedded_cluster_starts_no_workers_ahead_unless_the_user_asks():
    # Tune's trials and Train's workers each start their own process; workers started ahead only compete with them.
    assert _workers_started() == {"raylets": 1, "workers": 0}
    # A user's own RAY_prestart_worker_first_driver is Ray's to apply.
    asked = _workers_started(RAY_prestart_worker_first_driver="1")
    assert asked["raylets"] == 1 and asked["workers"] >= 1, asked
