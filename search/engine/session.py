"""The Ray session of a run: join a cluster or start an embedded one, with the environment trials need."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from search.storage import EMBEDDED_RAY_RECORD  # in the experiment folder (a URI's: its local copy) while an
# embedded Ray runs: the driver's pid and Ray's session folder, so that after a SIGKILL the next
# `resume` finds what the killed cluster left running.
from search.trials.resources import DRIVER_RESOURCE

__all__ = ["REPORT_INTERVAL_S", "ray_session", "cluster_view", "stop_leftovers"]

#: Ray Train V2 paces ``report`` by its health-check interval (2 s by default); with
#: epochs of milliseconds that interval, not training, would set the pace.
REPORT_INTERVAL_S = "0.1"


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                include_dashboard: bool | None = None, extra_paths: tuple[Path, ...] = (),
                record_in: Path | None = None) -> Iterator[None]:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start an embedded cluster and stop it after.

    A cluster this process started has the :data:`DRIVER_RESOURCE`; one it joined has not.
    An embedded one is recorded in ``record_in/``:data:`EMBEDDED_RAY_RECORD` while it runs.
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_INTERVAL_S)
    # One process fewer per TorchTrainer trial (~1.5 CPU-s); it watches for node drains,
    # which an embedded or small cluster does not have. Tune forwards it to the trials.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Checkpointing every epoch with num_to_keep forces frequent state snapshots; they are
    # cheap here (milliseconds), so Tune's warning about them is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():  # tests and notebooks bring their own cluster
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    env_vars = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]}
    pythonpath = os.pathsep.join(dict.fromkeys([*(str(p) for p in extra_paths), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if pythonpath:
        env_vars["PYTHONPATH"] = pythonpath  # so trial processes import a user's module next to the spec
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=include_dashboard, runtime_env={"env_vars": env_vars},
                 resources={DRIVER_RESOURCE: 10_000})
    record = _record(record_in) if record_in is not None and not address else None
    try:
        yield
    finally:
        ray.shutdown()
        if record is not None:
            record.unlink(missing_ok=True)
            try:
                record.parent.rmdir()  # only if the run left nothing else there
            except OSError:
                pass


def _record(folder: Path) -> Path | None:
    try:
        import ray

        session_dir = ray._private.worker._global_node.get_session_dir_path()  # no public accessor in Ray 2.60
    except Exception:  # noqa: BLE001 - another Ray version: no record, nothing to clean up later
        return None
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / EMBEDDED_RAY_RECORD
    record.write_text(json.dumps({"driver_pid": os.getpid(), "session_dir": session_dir}))
    return record


def stop_leftovers(folder: Path) -> list[int]:
    """Stop what an embedded Ray whose driver was killed left running; the pids stopped.

    The record names the driver and Ray's session folder. If the driver is gone, the processes
    that still hold files open in that session folder (Ray's DashboardAgent and RuntimeEnvAgent
    outlive a SIGKILLed driver) are that cluster's, and only they are stopped: SIGTERM, then
    SIGKILL after 5 s. Linux only (``/proc``); elsewhere nothing is done.
    """
    record = folder / EMBEDDED_RAY_RECORD
    if not record.is_file() or not Path("/proc").is_dir():
        return []
    try:
        info = json.loads(record.read_text())
        driver, session_dir = int(info["driver_pid"]), str(info["session_dir"])
    except (ValueError, KeyError, TypeError, OSError):
        record.unlink(missing_ok=True)
        return []
    if _alive(driver) and driver != os.getpid():
        print(f"warning: the driver {driver} that ran this experiment is still running", file=sys.stderr)
        return []
    pids = [pid for pid in _pids_with_files_under(session_dir) if pid != os.getpid()]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    record.unlink(missing_ok=True)
    return pids


def _pids_with_files_under(folder: str) -> list[int]:
    found = []
    prefix = folder.rstrip("/") + "/"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd).startswith(prefix) for fd in (proc / "fd").iterdir()):
                found.append(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    return sorted(found)


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
