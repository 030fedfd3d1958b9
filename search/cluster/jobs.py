"""Run an experiment as a Ray job on a cluster, and look after it: list, status, logs, stop.

The Jobs API is served by the dashboard of the head node (``http://HEAD:8265``), so the
cluster and this machine both need ``ray[default]``. A submission ships a working
directory (the project, the spec and a user's own trainable module), sets the environment
the trials need, reserves a CPU for the driver (``python -m search run`` on the cluster)
and returns the job id at once.

Errors a user can fix (no cluster at the address, a missing token, an unknown job id, a
spec outside the working directory) are raised as :class:`JobsError` with one line that
says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.engine.session import REPORT_INTERVAL_S
from search.experiment import Experiment
from search.spec.models import Spec

__all__ = [
    "JobsError", "JobRequest", "JobSummary", "JobsClient", "build_job_request", "auth_hint", "connect_error",
    "DEFAULT_EXCLUDES", "DRIVER_CPUS",
]

#: Never shipped: results, environments, VCS data, caches and model weights. Result folders are
#: anchored to the top (``/results/``): unanchored, ``results/`` also dropped the package's own
#: ``search/results/``, and the job failed on a cluster that installed the project with ``pip install .``.
DEFAULT_EXCLUDES = ("/results/", "/ray_results/", ".venv/", "venv/", ".git/", "__pycache__/", "*.pyc", ".pytest_cache/",
                    ".mypy_cache/", ".ruff_cache/", "*.egg-info/", "*.pt", "*.pth", "*.ckpt")
#: CPUs reserved for the driver: Tune's event loop and the Optuna sampler run there.
DRIVER_CPUS = 1.0
#: The runner silences Tune's checkpoint-sync warning with this variable (see search.engine.session.ray_session).
TUNE_SYNC_WARNING_VAR = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
_ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


class JobsError(RuntimeError):
    """Something the user can fix: the address, the token, the job id, the working directory."""


def auth_hint(status: int | None = None) -> str:
    """One line on what to set when a cluster with token authentication refuses us.

    Ray's clients send a token only with ``RAY_AUTH_MODE=token``; they read it from
    ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``.
    """
    code = f" (HTTP {status})" if status else ""
    where = ("the head node's token (`ray get-auth-token` prints it there) in ~/.ray/auth_token, "
             "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH")
    if status == 403:
        return f"the cluster rejected the authentication token{code}: use {where}"
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return f"the cluster requires token authentication{code}: set RAY_AUTH_MODE=token and put {where}"
    if _token_available():
        return f"the cluster rejected the authentication token{code}: use {where}"
    return (f"the cluster requires token authentication{code}; RAY_AUTH_MODE=token is set but no token was found: "
            f"put {where}")


def _token_available() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path or "~/.ray/auth_token").expanduser().is_file()


def connect_error(exc: BaseException, address: str | None) -> str | None:
    """One line for a ``ray.init(address=...)`` that failed: a token problem or no cluster there; else None."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    # The GCS client's AuthenticationError reaches us as text inside a RuntimeError's message.
    if any(type(e).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(e) for e in chain):
        return f"cannot connect to the Ray cluster at {address}: {auth_hint()}"
    if isinstance(exc, ConnectionError):
        return (f"cannot connect to a Ray cluster at {address}: is it running, and is this its GCS address "
                "(HEAD:6379, as `ray start --head` printed it)?")
    return None


@dataclass(frozen=True)
class JobRequest:
    """Everything :meth:`JobsClient.submit` sends; built (and testable) without a cluster."""

    entrypoint: str
    runtime_env: dict[str, Any]
    entrypoint_num_cpus: float
    metadata: dict[str, str]
    warnings: list[str] = field(default_factory=list)  # one line each, for stderr


def build_job_request(spec: Spec, spec_path: Path, working_dir: Path, run_args: Sequence[str] = (),
                      driver_cpus: float = DRIVER_CPUS) -> JobRequest:
    """The job that runs ``python -m search run <spec> <run_args>`` in ``working_dir`` on the cluster.

    Args:
        spec: the validated :class:`~search.spec.Spec` (with the same overrides as ``run_args``).
        spec_path: the spec file; it must lie inside ``working_dir``.
        working_dir: the folder shipped to the cluster; the job runs there.
        run_args: extra arguments for ``run`` (``--storage``, ``--name``, ...).
        driver_cpus: CPUs reserved for the driver process.

    Raises:
        JobsError: the spec or the user's trainable module is outside ``working_dir``.
    """

    working_dir = working_dir.resolve()
    if not working_dir.is_dir():
        raise JobsError(f"working directory {str(working_dir)!r} does not exist")
    spec_rel = _inside(spec_path.resolve(), working_dir)
    if spec_rel is None:
        raise JobsError(f"the spec {str(spec_path)!r} is outside the working directory {str(working_dir)!r}, which "
                        "is what gets shipped to the cluster; submit from a folder that contains it, or pass "
                        "--working-dir")
    _check_trainable_shipped(spec.trainable, working_dir, spec_path.resolve().parent)
    _check_data_shipped(spec.data, working_dir, spec_path.resolve().parent)
    if spec.data and "loader" in spec.data:  # imported by validate, before this
        _check_trainable_shipped(str(spec.data["loader"]), working_dir, spec_path.resolve().parent, "data loader")
    excludes = list(DEFAULT_EXCLUDES)
    warnings = []
    if not Experiment.in_storage(spec.storage, spec.name).is_remote:
        storage = Path(spec.storage).expanduser()
        if not storage.is_absolute():
            warnings.append(f"storage {spec.storage!r} is relative: on the cluster it resolves inside the job's "
                            "temporary working directory; pass --storage with an absolute path every node shares, "
                            "or an s3:// / gs:// URI, to keep the results")
        for folder in dict.fromkeys([(working_dir / storage).resolve(), (Path.cwd() / storage).resolve()]):
            rel = _inside(folder, working_dir)
            if rel is not None and rel != Path("."):
                excludes.append(f"/{rel.as_posix()}/")  # anchored: only this folder, not a namesake elsewhere
    env_vars = {
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": REPORT_INTERVAL_S,
        TUNE_SYNC_WARNING_VAR: "0",
        "PYTHONUNBUFFERED": "1",  # progress reaches the job log (and --wait) as it happens
        # The driver's ray.init adds its own env_vars (the same report interval, PYTHONPATH);
        # without this, Ray refuses to merge them with the job's as a conflict.
        "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
    }
    entrypoint = shlex.join(["python", "-m", "search", "run", spec_rel.as_posix(), *run_args])
    return JobRequest(
        entrypoint=entrypoint,
        runtime_env={"working_dir": str(working_dir), "excludes": excludes, "env_vars": env_vars},
        entrypoint_num_cpus=driver_cpus,
        metadata={"search_experiment": spec.name, "search_spec": spec_rel.as_posix()},
        warnings=warnings,
    )


def _inside(path: Path, folder: Path) -> Path | None:
    try:
        return path.relative_to(folder)
    except ValueError:
        return None


def _check_trainable_shipped(ref: str, working_dir: Path, spec_dir: Path, what: str = "trainable") -> None:
    """A user's module found beside the spec or in the current folder must travel with the job."""
    from search.spec.registry import TRAINABLES

    if ref in TRAINABLES or ":" not in ref:
        return  # built-in: part of the project (shipped, or installed on the cluster)
    module_name = ref.partition(":")[0]
    origin = getattr(sys.modules.get(module_name), "__file__", None)
    if origin is None:
        return
    depth = module_name.count(".") + (1 if Path(origin).name == "__init__.py" else 0)
    root = Path(origin).resolve().parents[depth]  # the folder the top-level package is imported from
    # Found through the current folder (not the job's working dir nor the spec's folder): the
    # job would not find it. Found anywhere else on sys.path: installed, as on the cluster.
    if root == Path.cwd().resolve() and root not in {working_dir, spec_dir}:
        raise JobsError(f"the {what}'s module {module_name!r} ({origin}) is outside the working directory "
                        f"{str(working_dir)!r} and would not reach the cluster; move it next to the spec, or submit "
                        "from a folder that contains both (--working-dir)")


def _check_data_shipped(data: Mapping[str, Any] | None, working_dir: Path, spec_dir: Path) -> None:
    """A relative data file must be found by the job too: from its working directory or the spec's folder."""
    name = str((data or {}).get("name", ""))
    if not name or Path(name).expanduser().is_absolute():
        return  # a built-in data set, or a path the cluster's nodes must have themselves
    from search.spec.checks import resolve_data_path

    local = resolve_data_path(name, spec_dir / "spec.yaml")
    if local is None or (working_dir / name).exists() or (spec_dir / name).exists():
        return
    raise JobsError(f"the data file {name!r} ({local}) is outside the working directory {str(working_dir)!r} and "
                    "would not reach the cluster; move it next to the spec, or use an absolute path that every "
                    "node has (shared storage)")


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    status: str
    experiment: str
    entrypoint: str
    message: str
    start_time: float | None
    end_time: float | None

    @property
    def failed(self) -> bool:
        return self.status in {"FAILED", "STOPPED"}


class JobsClient:
    """A thin wrapper of Ray's ``JobSubmissionClient`` that speaks in :class:`JobsError`.

    Args:
        address: the dashboard (``http://HEAD:8265``), a GCS address (``HEAD:6379``) or a
            Ray Client address (``ray://HEAD:10001``). None: ``$RAY_API_SERVER_ADDRESS``,
            ``$RAY_ADDRESS``, else a cluster started on this machine. An explicit address
            wins over those variables (Ray's own client lets them override it).
    """

    def __init__(self, address: str | None) -> None:
        self.address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or "(local)"
        with self._errors(), _hidden_env(_ADDRESS_VARS if address else ()):
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(address)

    def submit(self, request: JobRequest) -> str:
        with self._errors():
            return self._client.submit_job(entrypoint=request.entrypoint, runtime_env=request.runtime_env,
                                           entrypoint_num_cpus=request.entrypoint_num_cpus, metadata=request.metadata)

    def list(self) -> list[JobSummary]:
        """Submitted jobs, oldest first (drivers that connected directly are left out)."""
        with self._errors():
            jobs = [_summary(d) for d in self._client.list_jobs() if d.submission_id]
        return sorted(jobs, key=lambda j: j.start_time or 0)

    def status(self, job_id: str) -> JobSummary:
        with self._errors(job_id):
            return _summary(self._client.get_job_info(job_id))

    def logs(self, job_id: str) -> str:
        with self._errors(job_id):
            return self._client.get_job_logs(job_id)

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop; False when it was not running."""
        with self._errors(job_id):
            return bool(self._client.stop_job(job_id))

    def follow(self, job_id: str, write: Callable[[str], object], poll_s: float = 1.0) -> JobSummary:
        """Stream the job's log to ``write`` until it ends; return its final state."""
        self.status(job_id)  # an unknown id fails here, with a clear message

        async def tail() -> None:
            async for chunk in self._client.tail_job_logs(job_id):
                write(chunk)

        with self._errors(job_id):
            try:
                asyncio.run(tail())
            except RuntimeError as exc:  # the log stream dropped: fall back to polling the status
                if "WebSocket" not in str(exc):
                    raise
        while True:
            summary = self.status(job_id)
            if summary.status in TERMINAL:
                return summary
            time.sleep(poll_s)

    @contextlib.contextmanager
    def _errors(self, job_id: str | None = None) -> Iterator[None]:
        """Ray's exceptions -> one-line :class:`JobsError` messages."""
        try:
            yield
        except JobsError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
            message = _explain(exc, self.address, job_id)
            if message is None:
                raise
            raise JobsError(message) from exc


def _explain(exc: Exception, address: str, job_id: str | None) -> str | None:
    status = _http_status(exc)
    text = str(exc)
    if type(exc).__name__ == "AuthenticationError" and status is None:
        # Ray raises it for both: "Authentication required" (401), "... Forbidden: Invalid ..." (403).
        status = 403 if "Forbidden" in text or "invalid" in text.lower() else 401
    if status in (401, 403):
        return f"cannot use the cluster at {address}: {auth_hint(status)}"
    if job_id is not None and (status == 404 or "does not exist" in text):
        return f"no job {job_id!r} on the cluster at {address}; `python -m search jobs list` shows its jobs"
    unreachable = isinstance(exc, (ConnectionError, OSError)) or type(exc).__name__ in {"ClientConnectorError",
                                                                                        "RpcError"}
    if unreachable or "Failed to connect" in text or "Could not find any running Ray instance" in text:
        return (f"cannot reach a Ray dashboard at {address} ({text.splitlines()[0] if text else type(exc).__name__}); "
                "the Jobs API is served by the head node's dashboard, e.g. --address http://HEAD:8265, and needs "
                "ray[default] on the cluster")
    if "ray[default]" in text:
        return "the Jobs API needs ray[default] on this machine: pip install 'ray[default]'"
    return None


def _http_status(exc: BaseException) -> int | None:
    for candidate in (getattr(getattr(exc, "response", None), "status_code", None), getattr(exc, "status", None)):
        if isinstance(candidate, int):
            return candidate
    match = re.search(r"status code (\d{3})", str(exc))
    return int(match.group(1)) if match else None


def _summary(details: Any) -> JobSummary:
    metadata = details.metadata or {}
    return JobSummary(
        job_id=details.submission_id or details.job_id or "?",
        status=str(getattr(details.status, "value", details.status)),
        experiment=metadata.get("search_experiment", ""),
        entrypoint=details.entrypoint or "",
        message=details.message or "",
        start_time=details.start_time / 1000 if details.start_time else None,
        end_time=details.end_time / 1000 if details.end_time else None,
    )


@contextlib.contextmanager
def _hidden_env(names: Sequence[str]) -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
