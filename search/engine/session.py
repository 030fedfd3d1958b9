"""The Ray session of a run: join a cluster or start an embedded one, with the environment trials need."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from search.engine.console import say
from search.experiment import DRIVER_RECORD, EMBEDDED_RAY_RECORD, Experiment, redact
from search.trials.resources import DRIVER_RESOURCE, resolved_executor

__all__ = ["REPORT_INTERVAL_S", "embedded_dashboard", "ray_session", "cluster_address", "joins_cluster",
           "cluster_view", "stop_leftovers",
           "killed_session_dir", "live_driver", "storage_warning"]

#: Ray Train V2 paces ``report`` by its health-check interval (2 s by default); with
#: epochs of milliseconds that interval, not training, would set the pace.
REPORT_INTERVAL_S = "0.1"


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                include_dashboard: bool | None = None, record_in: Experiment | None = None) -> Iterator[None]:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start an embedded cluster and stop it after.

    A cluster this process started has the :data:`DRIVER_RESOURCE`; one it joined has not.
    While it runs, ``record_in`` holds this driver's record (:data:`DRIVER_RECORD`: ``resume``
    refuses while it lives) and, for an embedded cluster, Ray's session folder
    (:data:`EMBEDDED_RAY_RECORD`: what the next run stops if this driver is killed).
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_INTERVAL_S)
    # One process fewer per TorchTrainer trial (~1.5 CPU-s); it watches for node drains,
    # which an embedded or small cluster does not have. Tune forwards it to the trials.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Checkpoints at many epochs with num_to_keep force frequent state snapshots (spaced by ours:
    # search.internals.spaced_forced_snapshots); they are cheap here (milliseconds), so Tune's warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():  # tests and notebooks bring their own cluster
        with _driver_recorded(record_in):
            yield
        return
    address = cluster_address(address)
    env_vars = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]}
    # No PYTHONPATH for the spec's folder: entries there come before site-packages, so a numpy.py
    # beside the spec would shadow numpy in every trial. Trials find a user's module themselves
    # (resolve_trainable appends the spec's folder to sys.path, after the installed packages).
    if os.environ.get("PYTHONPATH"):
        env_vars["PYTHONPATH"] = os.environ["PYTHONPATH"]
    say(f"connecting to Ray at {redact(address)}…" if address else f"starting Ray (embedded, {num_cpus or os.cpu_count()} CPUs)…")
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
    else:
        from search.internals import api_server_left_out, lean_worker_setup, monitor_left_out, node_registration_polled

        # Without the dashboard, Ray's API server would run its usage stats alone, and ray.init waits for it; the
        # autoscaler monitor has nothing to scale on this one node, and its start competes with what ray.init waits for.
        # Its new node is looked for every 20 ms rather than every second; its workers start without a first Ray import.
        with (_embedded_ray_env(), api_server_left_out(include_dashboard), monitor_left_out(include_dashboard),
              node_registration_polled(), lean_worker_setup()):
            ray.init(num_cpus=num_cpus, include_dashboard=include_dashboard, runtime_env={"env_vars": env_vars},
                     resources={DRIVER_RESOURCE: 10_000})
        if record_in is not None:
            _record_embedded(record_in)
    try:
        with _driver_recorded(record_in):
            yield
    finally:
        if not address:
            from search.internals import stop_autoscaler_monitor

            stop_autoscaler_monitor()  # a second sooner: see its docstring
        ray.shutdown()
        if record_in is not None and not address:
            record_in.drop_record(EMBEDDED_RAY_RECORD)
            try:
                record_in.local.rmdir()  # only if the run left nothing else there
            except OSError:
                pass


def cluster_address(address: str | None) -> str | None:
    """The cluster a run joins: ``address``, else ``RAY_ADDRESS``; None: it starts an embedded one."""
    return address or os.environ.get("RAY_ADDRESS")


def joins_cluster(address: str | None) -> bool:
    """Whether :func:`ray_session` joins a cluster (``address``, ``RAY_ADDRESS``, or Ray already initialized in this
    process) rather than start an embedded one."""
    import ray

    return ray.is_initialized() or cluster_address(address) is not None


#: Ray settings (``RAY_<name>``, read by Ray's processes from the environment they start in) for an embedded cluster:
#:
#: * ``prestart_worker_first_driver``: no worker processes started ahead, one per CPU, for the first driver. Tune's
#:   trial actors and Train's workers each start a process of their own, and this driver runs no task, so on two
#:   CPUs their start (Python and Ray imported twice) only competes with the driver's and the first trial's.
#: * ``raylet_client_connect_timeout_milliseconds`` and ``raylet_client_num_connect_attempts``: the raylet connects
#:   to its object store, started on a thread just before, and when the store is not listening yet it waits the
#:   retry interval, 1000 ms by default: ``ray.init`` took 2.1 s or 3.1 s at random. 50 ms, with 200 attempts
#:   for the same 10 s in all.
#:
#: Together 1.5 s of the first epoch's 8.1 s here (``benchmarks/startup.py``). A setting a Ray version does
#: not have is ignored (an unknown key of ``ray.init(_system_config=...)`` stops the cluster's start instead).
EMBEDDED_RAY_ENV = {
    "RAY_prestart_worker_first_driver": "0",
    "RAY_raylet_client_connect_timeout_milliseconds": "50",
    "RAY_raylet_client_num_connect_attempts": "200",
}


@contextmanager
def _embedded_ray_env() -> Iterator[None]:
    """While an embedded cluster starts: :data:`EMBEDDED_RAY_ENV` in the environment, where the user set none of it.

    The two connection settings go together or not at all (their product is the time the raylet waits). The
    driver's environment is as before afterwards; Ray's processes keep what they started with.
    """
    settings = dict(EMBEDDED_RAY_ENV)
    connect = [name for name in settings if name.startswith("RAY_raylet_client_")]
    if any(name in os.environ for name in connect):
        for name in connect:
            settings.pop(name)
    added = [name for name in settings if name not in os.environ]
    os.environ.update({name: settings[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def embedded_dashboard(spec: Any, asked: bool | None) -> bool:
    """Whether an embedded Ray starts its dashboard: when ``asked``, else only for trials on Ray Train's workers.

    Train V2 removes a run's placement group unless the dashboard's state API says its controller
    lives (``docs/ray_optuna_notes.md``): those runs need it. A run that trains in its trial
    processes does not, and the dashboard's ten-odd processes cost about a second of ``ray.init``
    and compete with the first trials for the CPUs (``benchmarks/startup.py``).
    """
    if asked is not None:
        return asked
    from search.spec.models import Executor

    return resolved_executor(spec.resources) is Executor.TORCH_TRAINER


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@contextmanager
def _driver_recorded(experiment: Experiment | None) -> Iterator[None]:
    """Record this process as the experiment's driver while it runs (``resume`` refuses meanwhile)."""
    if experiment is None:
        yield
        return
    created = not experiment.local.exists()
    experiment.write_record(DRIVER_RECORD, {"pid": os.getpid(), "started": _process_start(os.getpid()),
                                            "host": socket.gethostname()})
    try:
        yield
    finally:
        experiment.drop_record(DRIVER_RECORD)
        if created:  # a run refused before it wrote anything leaves no folder
            with contextlib.suppress(OSError):
                experiment.local.rmdir()


def live_driver(experiment: Experiment) -> int | None:
    """The pid of another process on this machine that is running the experiment now, or None."""
    record = experiment.read_record(DRIVER_RECORD)
    if not record or record.get("host") != socket.gethostname():
        return None
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if pid == os.getpid() or not _alive(pid):
        return None
    started = record.get("started")
    if started is not None and _process_start(pid) not in (None, started):
        return None  # the pid was reused by another process since
    return pid


def _record_embedded(experiment: Experiment) -> None:
    from search.internals import ray_session_dir

    session_dir = ray_session_dir()
    if session_dir is not None:
        experiment.write_record(EMBEDDED_RAY_RECORD, {"driver_pid": os.getpid(), "session_dir": session_dir})


def _valid_session_dir(value: object) -> Path | None:
    """An absolute, existing Ray session folder (``.../session_<date>_<pid>``), else None."""
    if not isinstance(value, str) or not value or not os.path.isabs(value):
        return None
    path = Path(value)
    if not path.name.startswith("session_") or path.is_symlink() or not path.is_dir():
        return None
    if not (path / "logs").is_dir() and not (path / "sockets").is_dir():
        return None
    return path.resolve()


def _recorded_run(experiment: Experiment) -> tuple[int | None, Path | None] | None:
    """The embedded-Ray record's (driver pid, valid session folder), either None when unusable; None: no record."""
    info = experiment.read_record(EMBEDDED_RAY_RECORD)
    if info is None:
        return None
    try:
        driver = int(info["driver_pid"])
    except (KeyError, TypeError, ValueError):
        driver = None
    return driver, _valid_session_dir(info.get("session_dir"))


def _still_driving(driver: int) -> bool:
    return _alive(driver) and driver != os.getpid()


def killed_session_dir(experiment: Experiment) -> Path | None:
    """The Ray session folder of the experiment's embedded cluster whose driver was killed, or None.

    Read before :func:`stop_leftovers` drops the record: the driver's staging copy of the experiment
    there holds the results it never synced (:mod:`search.engine.recovery`).
    """
    recorded = _recorded_run(experiment)
    if recorded is None or recorded[0] is None or _still_driving(recorded[0]):
        return None
    return recorded[1]


def stop_leftovers(experiment: Experiment) -> list[int]:
    """Stop what an embedded Ray whose driver was killed left running; the pids stopped.

    The record names the driver and Ray's session folder. Only an absolute, existing Ray session
    folder is accepted (a record may come from a bucket, or be crafted). If the driver is gone, Ray's
    processes that still hold files open in that folder (its DashboardAgent and RuntimeEnvAgent
    outlive a SIGKILLed driver) are that cluster's, and only they are stopped, never this process or
    one of its ancestors: SIGTERM, then SIGKILL after 5 s. Linux only (``/proc``); elsewhere nothing
    is done.
    """
    recorded = _recorded_run(experiment)
    if recorded is None or not Path("/proc").is_dir():
        return []
    driver, session_dir = recorded
    if driver is None or session_dir is None:
        experiment.drop_record(EMBEDDED_RAY_RECORD)
        return []
    if _still_driving(driver):
        return []  # its driver still runs: `resume` refuses (live_driver), `run` leaves it be
    spared = _ancestors(os.getpid())
    pids = [pid for pid in _pids_with_files_under(str(session_dir)) if pid not in spared and _is_ray_process(pid)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    experiment.drop_record(EMBEDDED_RAY_RECORD)
    return pids


def _ancestors(pid: int) -> set[int]:
    found = {pid}
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        found.add(pid)
    return found


def _is_ray_process(pid: int) -> bool:
    """Ray's own processes: its daemons (raylet, gcs_server, agents) and workers (``ray::``, default_worker.py)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(mark in cmdline for mark in ("ray::", "/ray/", "raylet", "gcs_server", "default_worker.py",
                                              "dashboard/agent.py", "runtime_env/agent", "log_monitor.py"))


def _pids_with_files_under(folder: str) -> list[int]:
    found = []
    prefix = folder.rstrip("/") + "/"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:  # gone, or not ours to read
            continue
        if any(_link(fd).startswith(prefix) for fd in fds):
            found.append(int(proc.name))
    return sorted(found)


def _link(fd: Path) -> str:
    """Where an open file descriptor points; "" when it closed since it was listed."""
    try:
        return os.readlink(fd)
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def cluster_view() -> tuple[dict[str, float], list[dict[str, float]], dict[str, float]]:
    """Total resources, each alive node's resources, and what is free now."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return dict(ray.cluster_resources()), nodes, dict(ray.available_resources())


def storage_warning(storage: str, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """The warning (one line, no prefix) for a local storage path on a cluster of several machines, else None.

    Args:
        storage: the spec's ``storage`` (a path or a URI).
        nodes: the cluster's nodes, as ``ray.nodes()`` entries or as their ``Resources``
            dicts; dead nodes (``Alive: False``) are ignored. Nodes are told apart by their
            IP (``NodeManagerAddress`` or the ``node:<ip>`` resource), because several nodes
            on one machine share its disk.
    """
    if "://" in storage and not storage.startswith("file://"):  # s3://, gs://, ...: every node reaches it
        return None
    hosts = {_node_ip(node) for node in nodes if node.get("Alive", True)}
    if len(hosts) < 2:
        return None
    return (f"storage {redact(storage)!r} is a local path, but the cluster spans {len(hosts)} machines: results and "
            f"checkpoints of trials that run on other machines are written to their own disks and will not be "
            f"collected into {redact(storage)!r} here. Use a path every node mounts (NFS, a shared volume) or a URI "
            f"(s3://bucket/path, gs://bucket/path); if {redact(storage)!r} is already shared, ignore this")


def _node_ip(node: Mapping[str, Any]) -> str:
    if node.get("NodeManagerAddress"):
        return str(node["NodeManagerAddress"])
    resources = node.get("Resources", node)
    ips = sorted(k.removeprefix("node:") for k in resources if k.startswith("node:") and k != "node:__internal_head__")
    return ips[0] if ips else str(node.get("NodeID", id(node)))
