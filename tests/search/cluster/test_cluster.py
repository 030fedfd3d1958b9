"""Ray cluster: a real two-node cluster on this machine, ``run --address``, ``submit``, ``jobs``.

The cluster is this module's own: a head (with the dashboard on 127.0.0.1, for the Jobs
API) and a second node, each started by ``ray start --block`` on free ports and in a temp
folder of its own, with token authentication on and a token of their own. Its nodes run the
project as a cluster user installs it: a wheel built from this checkout and installed (not
editable) into a virtual environment of their own, which sees the test venv's other packages
(Ray, torch) but not its editable install. (Ray registers
both nodes under this machine's IP: it replaces 127.0.0.1 by it.) The module stops them by
process id, never with ``ray stop``, which would stop every Ray on the machine, other
tests' included.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from search.cluster.jobs import (
    DEFAULT_EXCLUDES,
    JobsError,
    build_job_request,
    connect_error,
)
from search.spec import load_spec
from search.engine.session import storage_warning

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
HEAD_CPUS, WORKER_CPUS = 1, 2

TRAINABLE = '''
import time
from pathlib import Path

import ray

#: Files a job must not ship (results, weights); the working folder is this file's parent's parent.
NOT_SHIPPED = ("results", "runs", "model.pt")


def train(config, report):
    """Reports its node id (where it ran) and whether excluded files reached it."""
    node_id = ray.get_runtime_context().get_node_id()
    root = Path(__file__).resolve().parents[1]
    shipped = sum((root / name).exists() for name in NOT_SHIPPED)
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(config["epoch_s"])
        report({"epoch": epoch, "score": config["x"] * epoch, "node_id": node_id, "excluded_seen": shipped})
'''

SPEC = """
name: cluster
trainable: cluster_trainable:train
metric: score
mode: max
search: {num_samples: 4, sampler: random, seed: 0}
scheduler: {type: none}
space:
  x: {type: float, low: 1, high: 2}
fixed: {epochs: 2, epoch_s: 1.5}
resources: {num_workers: 1, cpus_per_worker: 1}
failure: {max_retries: 0}
"""


# ---------------------------------------------------------------- without a cluster


def _nodes(*ips: str) -> list[dict]:
    return [{"NodeID": f"n{i}", "Alive": True, "NodeManagerAddress": ip} for i, ip in enumerate(ips)]


@pytest.mark.parametrize(("storage", "nodes", "warns"), [
    ("results", _nodes("10.0.0.1", "10.0.0.2"), True),
    ("/data/results", [{"CPU": 4.0, "node:10.0.0.1": 1.0}, {"CPU": 4.0, "node:10.0.0.2": 1.0}], True),
    ("file:///data/results", _nodes("10.0.0.1", "10.0.0.2"), True),
    ("s3://bucket/results", _nodes("10.0.0.1", "10.0.0.2"), False),
    ("gs://bucket/results", _nodes("10.0.0.1", "10.0.0.2"), False),
    ("results", _nodes("10.0.0.1"), False),
    ("results", _nodes("10.0.0.1", "10.0.0.1"), False),  # two nodes, one machine: one disk
    ("results", [*_nodes("10.0.0.1"), {"NodeID": "dead", "Alive": False, "NodeManagerAddress": "10.0.0.9"}], False),
])
def test_storage_warning_for_a_local_path_on_several_machines(storage, nodes, warns):
    text = storage_warning(storage, nodes)
    if not warns:
        assert text is None
        return
    assert "will not be collected" in text and repr(storage) in text
    assert "s3://" in text and "gs://" in text and "2 machines" in text


def test_connect_error_names_the_token_settings(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    refused = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    refused.__cause__ = RuntimeError("Failed to connect to GCS. Last connection error: ... InvalidAuthToken: "
                                     "Authentication token is missing or incorrect.")
    line = connect_error(refused, "10.0.0.1:6379")
    assert "10.0.0.1:6379" in line and "set RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN" in line
    assert "is it running" in connect_error(ConnectionError("Failed to connect"), "10.0.0.1:6379")
    assert connect_error(ValueError("something else"), "x") is None


def _project(tmp_path: Path, storage: str | None = None, epoch_s: float | None = None) -> tuple[Path, Path]:
    work = tmp_path / "work"
    (work / "exp").mkdir(parents=True)
    (work / "exp" / "cluster_trainable.py").write_text(TRAINABLE)
    raw = yaml.safe_load(SPEC)
    if storage is not None:
        raw["storage"] = storage
    if epoch_s is not None:
        raw["fixed"]["epoch_s"] = epoch_s
    spec_path = work / "exp" / "space.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    return work, spec_path


def test_job_request_ships_the_folder_and_runs_the_spec_relative_to_it(tmp_path, monkeypatch):
    work, spec_path = _project(tmp_path, storage="out/runs")
    monkeypatch.chdir(work)
    request = build_job_request(load_spec(spec_path), spec_path, work, ["--storage", "out/runs", "--seed", "3"])
    assert request.entrypoint == "python -m search run exp/space.yaml --storage out/runs --seed 3"
    assert request.runtime_env["working_dir"] == str(work)
    assert set(DEFAULT_EXCLUDES) <= set(request.runtime_env["excludes"])
    assert {"/results/", ".venv/", ".git/", "__pycache__/", "*.pt"} <= set(request.runtime_env["excludes"])
    # Matched as Ray matches them (its own gitwildmatch): the package's own search/results/ is shipped.
    from ray._private.thirdparty.pathspec import PathSpec

    excluded = PathSpec.from_lines("gitwildmatch", request.runtime_env["excludes"]).match_file
    assert excluded("results/old.txt") and excluded("out/runs/x/result.json") and excluded("model.pt")
    assert not excluded("search/results/table.py") and not excluded("exp/results_notes.md")
    assert "/out/runs/" in request.runtime_env["excludes"]  # the storage folder, anchored
    env = request.runtime_env["env_vars"]
    assert env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.1"
    assert env["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "0"
    assert request.entrypoint_num_cpus == 1.0
    assert request.metadata == {"search_experiment": "cluster", "search_spec": "exp/space.yaml"}
    assert any("relative" in w and "s3://" in w for w in request.warnings)


def test_job_request_refuses_what_would_not_reach_the_cluster(tmp_path, monkeypatch):
    work, spec_path = _project(tmp_path, storage="s3://bucket/runs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(JobsError, match="outside the working directory"):
        build_job_request(load_spec(spec_path), spec_path, elsewhere)
    # A trainable module found only through the current folder, outside the shipped one.
    (elsewhere / "mod_outside.py").write_text("def train(config, report):\n    report({'epoch': 1, 'score': 1.0})\n")
    raw = yaml.safe_load(spec_path.read_text()) | {"trainable": "mod_outside:train"}
    spec_path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(elsewhere))
    with pytest.raises(JobsError, match="mod_outside.*would not reach the cluster"):
        build_job_request(load_spec(spec_path), spec_path, work)
    # A data file found only through the current folder.
    (elsewhere / "table.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    raw = yaml.safe_load(SPEC) | {"data": {"name": "table.csv", "target": "label"}, "storage": "s3://b/r"}
    spec_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(JobsError, match="data file 'table.csv'.*would not reach the cluster"):
        build_job_request(load_spec(spec_path), spec_path, work)
    other_work, other_spec = _project(tmp_path / "b", storage="s3://b/r")
    assert build_job_request(load_spec(other_spec), other_spec, other_work).warnings == []  # a URI: no warning


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(env if env is not None else os.environ)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_submit_bad_spec_and_unreachable_cluster_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nmetric: val_acuracy\n")
    proc = _cli("submit", str(bad), "--address", "http://127.0.0.1:9", cwd=tmp_path)
    assert proc.returncode == 2 and "did you mean 'val_accuracy'" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("jobs", "list", "--address", f"http://127.0.0.1:{_free_port()}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach a Ray dashboard" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- the two-node cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalCluster:
    temp_dir: Path
    env: dict[str, str]  # for clients: PATH, RAY_AUTH_MODE, RAY_AUTH_TOKEN
    python: Path = Path(sys.executable)  # the nodes' Python: a venv with the project installed from a wheel
    gcs_address: str = ""
    dashboard: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    def request(self, path: str, token: str | None = None) -> dict:
        req = urllib.request.Request(self.dashboard + path,
                                     headers={"Authorization": f"Bearer {token or self.env['RAY_AUTH_TOKEN']}"})
        with urllib.request.urlopen(req, timeout=5) as response:
            return json.loads(response.read())

    def alive_nodes(self) -> list[dict]:
        try:
            nodes = self.request("/api/v0/nodes")["data"]["result"]["result"]
        except (OSError, urllib.error.URLError, KeyError, ValueError):
            return []
        return [n for n in nodes if n.get("state") == "ALIVE"]


def _start_node(cluster: LocalCluster, *args: str, name: str) -> subprocess.Popen:
    """``ray start --block`` with its own ports and temp folder, as on a machine of its own.

    Nodes sharing a temp folder would share their runtime-env cache too: one node's
    clean-up would delete the working directory of a job running on the other.
    """
    ports = [f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}",
             f"--metrics-export-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
             f"--dashboard-agent-grpc-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
             "--min-worker-port=0", "--max-worker-port=0"]
    command = [str(cluster.python), "-m", "ray.scripts.scripts", "start", "--block", f"--temp-dir={cluster.temp_dir / name}",
               "--object-store-memory=100000000", "--disable-usage-stats", *ports, *args]
    with open(cluster.temp_dir / f"{name}.log", "w") as log:
        process = subprocess.Popen(command, env=cluster.env, stdout=log, stderr=subprocess.STDOUT)
    cluster.processes.append(process)
    return process


def _wait(condition, what: str, cluster: LocalCluster, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [p for p in cluster.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f.read_text()[-2000:] for f in cluster.temp_dir.glob("*.log"))
            raise RuntimeError(f"the test cluster did not come up ({what}):\n{logs}")
        time.sleep(0.5)


def _descendants(pids: list[int]) -> dict[int, str]:
    """pid -> start time of every process under ``pids`` (inclusive), from /proc."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in started and pid not in found:
            found[pid] = started[pid]
            todo += children.get(pid, [])
    return found


def _still_running(pid: int, start: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[19] == start and fields[0] != "Z"


def _stop(cluster: LocalCluster) -> None:
    """SIGTERM the ``ray start --block`` processes (they stop their nodes), then SIGKILL leftovers by pid."""
    ours = _descendants([p.pid for p in cluster.processes])
    for process in reversed(cluster.processes):  # the worker node first, then the head
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    deadline = time.monotonic() + 10
    while any(_still_running(pid, start) for pid, start in ours.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = [pid for pid, start in ours.items() if _still_running(pid, start)]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        print(f"test cluster: killed {len(leftovers)} leftover process(es) {leftovers}", file=sys.stderr)


def _installed_venv(folder: Path) -> Path:
    """A venv whose ``hpsearch`` is a wheel of this checkout, installed (``pip install .``'s result); its python.

    The test venv's site-packages is added by a ``.pth`` line, for Ray and torch: a folder added that
    way has its own ``.pth`` files ignored, so the test venv's editable install does not reach it.
    """
    import sysconfig
    import zipfile

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    purelib.mkdir(parents=True, exist_ok=True)
    (purelib / "_test_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheels = folder / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)], check=True,
                   capture_output=True)
    (wheel,) = wheels.glob("hpsearch-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # what pip does with a pure-Python wheel, less the scripts
        archive.extractall(purelib)
    found = subprocess.run([str(python), "-c", "import search.results, search; print(search.__file__)"],
                           capture_output=True, text=True, check=True, cwd=folder).stdout.strip()
    assert Path(found).is_relative_to(purelib), found  # the installed copy, not this checkout
    return python


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory) -> Iterator[LocalCluster]:
    """A head (1 CPU, dashboard) and a worker node (2 CPUs) on this machine, token auth on.

    Its nodes and clients reach the test's S3 server: endpoint and dummy credentials are in
    their environment, as on a cluster whose machines are set up for the bucket.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths must fit 107 chars
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "PYTHONPATH"}}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0", **s3_server.env,
               SEARCH_CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    python = _installed_venv(temp_dir / "venv")
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"  # the job's `python -m search` is the installed one
    cluster = LocalCluster(temp_dir, env, python=python)
    try:
        gcs_port, dashboard_port = _free_port(), _free_port()
        _start_node(cluster, "--head", f"--port={gcs_port}", f"--num-cpus={HEAD_CPUS}", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                    f"--ray-client-server-port={_free_port()}", name="head")
        cluster.dashboard = f"http://127.0.0.1:{dashboard_port}"
        _wait(lambda: len(cluster.alive_nodes()) == 1, "head", cluster)
        node_ip = cluster.alive_nodes()[0]["node_ip"]
        cluster.gcs_address = f"{node_ip}:{gcs_port}"
        _start_node(cluster, f"--address={cluster.gcs_address}", f"--num-cpus={WORKER_CPUS}", name="node2")
        _wait(lambda: len(cluster.alive_nodes()) == 2, "second node", cluster)
        yield cluster
    finally:
        _stop(cluster)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _experiment(tmp_path: Path, name: str, epoch_s: float | None = None) -> tuple[Path, Path]:
    """A working folder with the spec and its trainable; results under an absolute path."""
    return _project(tmp_path / name, storage=str(tmp_path / name / "results"), epoch_s=epoch_s)


#: Seconds an epoch sleeps in a job whose trials need not overlap in time (SPEC's 1.5 s lets trials run side by side,
#: and keeps a job running long enough to be stopped); 2 epochs of 1.5 s were 3 of the submit test's 27 s.
SHORT_EPOCH_S = 0.1


def _last_results(experiment: Path) -> dict[str, dict]:
    """trial folder -> its last reported result (Tune's result.json, one JSON line per epoch)."""
    found = {}
    for result in sorted(experiment.glob("trial_*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        found[result.parent.name] = rows[-1]
    return found


def _export(experiment: Path, cwd: Path) -> list[dict]:
    """The experiment's results table as ``python -m search export --format csv`` prints it."""
    import pandas as pd

    proc = _cli("export", str(experiment), "--format", "csv", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(io.StringIO(proc.stdout)).to_dict("records")


def test_run_with_address_spreads_trials_over_both_nodes(cluster, tmp_path):
    work, spec_path = _experiment(tmp_path, "run")
    proc = _cli("run", str(spec_path), "--address", cluster.gcs_address, cwd=work, env=cluster.env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "best trial" in proc.stdout
    results = _last_results(tmp_path / "run" / "results" / "cluster")
    assert len(results) == 4 and all(r["epoch"] == 2 for r in results.values())
    # 3 CPUs on two nodes (1 + 2), 1 CPU per trial, trials of 3 s: they ran side by side on both.
    ran_on = {r["node_id"] for r in results.values()}
    assert ran_on == {n["node_id"] for n in cluster.alive_nodes()}, results


#: One of our event lines (search.engine.callbacks.ProgressLines), and what Ray's and Tune's own output looks like.
TRIAL_EVENT = re.compile(r"^\[ *\d+\.\ds\] trial [0-9a-f]+ (started|completed|stopped|cut by ASHA|diverged|collapsed|"
                         r"reached|failed|FAILED)")
RAY_NOISE = ("Connecting to existing Ray cluster", "INFO worker.py", "Configuration for experiment",
             "Trial status:", "[repeated", "Checkpoint successfully created")


def test_submit_wait_runs_the_experiment_as_a_job_then_jobs_and_export(cluster, tmp_path):
    # A user's project folder: the job runs on the project the nodes installed (a wheel, not editable).
    work, spec_path = _experiment(tmp_path, "submit", epoch_s=SHORT_EPOCH_S)
    (work / "results").mkdir()
    (work / "results" / "old.txt").write_text("an earlier run's results")
    (work / "model.pt").write_bytes(b"weights")
    storage = work / "runs"  # inside the shipped folder: excluded from it
    (storage / "stale").mkdir(parents=True)
    # One CPU goes to the driver, two are left: two trials make one round.
    proc = _cli("submit", "exp/space.yaml", "--address", cluster.dashboard, "--storage", str(storage),
                "--num-samples", "2", "--wait", cwd=work, env=cluster.env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    job_id = proc.stdout.strip()
    assert job_id.startswith("raysubmit_"), proc.stdout
    assert "best trial" in proc.stderr and f"job {job_id} SUCCEEDED" in proc.stderr  # the streamed log
    streamed = proc.stderr
    experiment = storage / "cluster"
    results = _last_results(experiment)
    assert len(results) == 2 and all(r["epoch"] == 2 for r in results.values())
    assert {r["excluded_seen"] for r in results.values()} == {0}  # results/, runs/ and *.pt stayed here
    rows = _export(experiment, cwd=tmp_path)
    assert sorted(str(r["trial_id"]) for r in rows) == sorted(r["trial_id"] for r in results.values())

    proc = _cli("jobs", "list", "--address", cluster.dashboard, cwd=work, env=cluster.env)
    assert proc.returncode == 0, proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith(job_id)]
    assert "SUCCEEDED" in row and " cluster " in row and "exp/space.yaml" in row
    proc = _cli("jobs", "status", job_id, "--address", cluster.dashboard, cwd=work, env=cluster.env)
    assert proc.returncode == 0 and proc.stdout.startswith(f"{job_id} SUCCEEDED cluster")
    proc = _cli("jobs", "logs", job_id, "--address", cluster.dashboard, cwd=work, env=cluster.env)
    assert proc.returncode == 0 and "best trial" in proc.stdout
    # The job's log is not a terminal: one line per trial event, Ray's own lines kept in run.log, the same
    # lines whether streamed by `submit --wait` or read back by `jobs logs`.
    events = [line for line in proc.stdout.splitlines() if TRIAL_EVENT.match(line)]
    assert sum(" started " in line for line in events) == 2
    assert sum(" completed: score=" in line for line in events) == 2  # each ran its 2 epochs (best: the last)
    assert not any(noise in proc.stdout for noise in RAY_NOISE), proc.stdout[-3000:]
    assert "epoch 1 " not in proc.stdout  # no line per epoch
    assert [line for line in streamed.splitlines() if TRIAL_EVENT.match(line)] == events
    proc = _cli("jobs", "status", "raysubmit_nosuchjob", "--address", cluster.dashboard, cwd=work, env=cluster.env)
    assert proc.returncode == 2 and "no job 'raysubmit_nosuchjob'" in proc.stderr


def test_submit_with_s3_storage_then_export_and_best_from_the_uri(cluster, s3_server, tmp_path):
    # Submitted from a checkout of the project: the checkout travels, search/results/ included (an unanchored
    # `results/` exclude dropped it, and the job failed after the whole search: no module search.results).
    work, _ = _experiment(tmp_path, "s3")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (REPO / name).is_file() and name.split("/")[0] in ("search", "trainables", "pyproject.toml"):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    assert (work / "search" / "results" / "table.py").is_file()
    uri = f"s3://{s3_server.bucket}/{tmp_path.name}"
    proc = _cli("submit", "exp/space.yaml", "--address", cluster.dashboard, "--storage", uri, "--num-samples", "2",
                "--wait", cwd=work, env=cluster.env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "best trial" in proc.stderr and f"results table: {uri}/cluster/results.csv" in proc.stderr
    assert "is a local path" not in proc.stderr  # no storage warning: every node reaches the bucket
    files = s3_server.files(f"{tmp_path.name}/cluster")
    trials = {k.split("/")[2] for k in files if k.split("/")[2].startswith("trial_")}
    assert len(trials) == 2 and f"{tmp_path.name}/cluster/tuner.pkl" in files
    workers = {n["node_id"] for n in cluster.alive_nodes()}
    ran_on = {json.loads(s3_server.read(f"{tmp_path.name}/cluster/{t}/result.json").splitlines()[-1])["node_id"]
              for t in trials}
    assert ran_on <= workers  # written from the node each trial ran on, straight into the bucket
    proc = _cli("export", f"{uri}/cluster", "--format", "csv", cwd=tmp_path, env=cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pandas as pd

    rows = pd.read_csv(io.StringIO(proc.stdout))
    assert sorted(rows["trial_id"].astype(str)) == sorted(t.removeprefix("trial_") for t in trials)
    proc = _cli("best", f"{uri}/cluster", cwd=tmp_path, env=cluster.env)
    assert proc.returncode == 0 and float(yaml.safe_load(proc.stdout)["x"]) == pytest.approx(rows.iloc[0]["x"])


def test_jobs_stop_ends_a_running_job(cluster, tmp_path):
    work, spec_path = _experiment(tmp_path, "stop")
    proc = _cli("submit", "exp/space.yaml", "--address", cluster.dashboard, "--name", "long", cwd=work, env=cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job_id = proc.stdout.strip()
    assert f"jobs logs {job_id} --follow" in proc.stderr
    proc = _cli("jobs", "stop", job_id, "--address", cluster.dashboard, cwd=work, env=cluster.env)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{job_id} stopping", proc.stdout + proc.stderr
    proc = _cli("jobs", "logs", job_id, "--follow", "--address", cluster.dashboard, cwd=work, env=cluster.env,
                timeout=60)
    assert proc.returncode == 1 and f"job {job_id} STOPPED" in proc.stderr
    proc = _cli("jobs", "status", job_id, "--address", cluster.dashboard, cwd=work, env=cluster.env)
    assert proc.returncode == 1 and proc.stdout.startswith(f"{job_id} STOPPED long")


def test_a_client_without_the_token_is_told_what_to_set(cluster, tmp_path):
    env = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
    proc = _cli("jobs", "list", "--address", cluster.dashboard, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "401" in line and "RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN" in line
    wrong = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 32}
    proc = _cli("jobs", "list", "--address", cluster.dashboard, cwd=tmp_path, env=wrong)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "403" in line and "rejected" in line
