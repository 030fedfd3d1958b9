"""``python -m search submit`` and ``python -m search jobs list|status|logs|stop``.

Registered by :mod:`search.cli` through :func:`add_parsers` and :data:`HANDLERS`. Job ids
and tables go to stdout; progress, streamed logs of ``submit --wait`` and warnings go to
stderr. Exit codes: 0 success, 1 the job failed (or was stopped), 2 bad usage, a bad spec
or a cluster that cannot be reached or refuses us.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from search.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exits_on

__all__ = ["add_parsers", "HANDLERS", "cmd_submit", "cmd_jobs"]

ADDRESS_HELP = ("the head node's dashboard, e.g. http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
                "$RAY_ADDRESS, else a cluster on this machine)")


def add_parsers(subparsers: Any) -> None:
    """Add ``submit`` and ``jobs`` to the top-level subparsers of ``python -m search``."""
    p = subparsers.add_parser("submit", help="run the experiment on a Ray cluster as a Ray job")
    p.add_argument("spec", type=Path, help="the spec file (YAML), inside --working-dir")
    p.add_argument("--address", help=ADDRESS_HELP)
    p.add_argument("--wait", action="store_true", help="stream the job's log until it ends; exit with its outcome "
                   "(default: print the job id and return)")
    p.add_argument("--working-dir", type=Path, help="folder shipped to the cluster, containing the spec "
                   "(default: the current folder)")
    p.add_argument("--driver-cpus", type=float, default=1.0, help="CPUs reserved for the driver (default: 1)")
    p.add_argument("--name", help="experiment name (default: the spec's `name`)")
    p.add_argument("--num-samples", type=int, help="number of trials (default: the spec's search.num_samples)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the spec's search.seed)")
    p.add_argument("--storage", help="results path or URI as seen from the cluster: a shared path or s3://, gs:// "
                   "(default: the spec's `storage`)")
    p.add_argument("--overwrite", action="store_true", help="the job's run deletes an existing experiment of the "
                   "same name first (default: the job refuses to run into it)")

    p = subparsers.add_parser("jobs", help="list the cluster's jobs; show, follow or stop one")
    verbs = p.add_subparsers(dest="jobs_command", required=True, metavar="VERB")
    verb = verbs.add_parser("list", help="submitted jobs and their status")
    verb.add_argument("--address", help=ADDRESS_HELP)
    for name, text in (("status", "a job's status (exit 1 when it failed)"), ("logs", "a job's log"),
                       ("stop", "stop a running job")):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("job_id", help="the job's id, as `submit` printed it or `jobs list` shows it")
        verb.add_argument("--address", help=ADDRESS_HELP)
        if name == "logs":
            verb.add_argument("--follow", action="store_true", help="keep streaming until the job ends; "
                              "exit with its outcome (default: the log so far)")


def _run_args(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The spec overrides, both as load_spec wants them and as ``run`` arguments."""
    pairs = (("name", "--name", args.name), ("search.num_samples", "--num-samples", args.num_samples),
             ("search.seed", "--seed", args.seed), ("storage", "--storage", args.storage))
    overrides = {key: value for key, _, value in pairs if value is not None}
    argv = [part for _, flag, value in pairs if value is not None for part in (flag, str(value))]
    return overrides, argv + (["--overwrite"] if getattr(args, "overwrite", False) else [])


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """User errors -> one line on stderr and exit 2; tracebacks only with --debug."""
    from search.cluster.jobs import JobsError
    from search.spec.errors import SpecError

    return exits_on({SpecError: EXIT_USAGE, JobsError: EXIT_USAGE})(fn)


@_guarded
def cmd_submit(args: argparse.Namespace) -> int:
    """Validate the spec here, submit it as a job, print the job id; with --wait, follow it."""
    from search.cluster.jobs import JobsClient, build_job_request
    from search.spec import load_spec

    overrides, run_argv = _run_args(args)
    spec = load_spec(args.spec, overrides)  # a bad spec fails here, before anything is shipped
    request = build_job_request(spec, args.spec, args.working_dir or Path.cwd(), run_argv, driver_cpus=args.driver_cpus)
    for warning in request.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    client = JobsClient(args.address)
    job_id = client.submit(request)
    print(job_id, flush=True)
    follow = f"python -m search jobs logs {job_id} --follow" + (f" --address {args.address}" if args.address else "")
    print(f"submitted {spec.name} as job {job_id} to {client.address}: {request.entrypoint}", file=sys.stderr)
    if not args.wait:
        print(f"follow it with: {follow}", file=sys.stderr)
        return EXIT_OK
    return _follow(client, job_id, follow)


def _follow(client: Any, job_id: str, again: str) -> int:
    try:
        summary = client.follow(job_id, _writer(sys.stderr))
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} goes on. Follow it again with: {again}; "
              f"stop it with: python -m search jobs stop {job_id}", file=sys.stderr)
        return 130
    print(f"job {job_id} {summary.status}" + (f": {summary.message}" if summary.failed and summary.message else ""),
          file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


@_guarded
def cmd_jobs(args: argparse.Namespace) -> int:
    """``jobs list|status|logs|stop``."""
    from search.cluster.jobs import JobsClient

    client = JobsClient(args.address)
    if args.jobs_command == "list":
        print(_table(client.list()))
        return EXIT_OK
    if args.jobs_command == "status":
        job = client.status(args.job_id)
        print(f"{job.job_id} {job.status}" + (f" {job.experiment}" if job.experiment else ""))
        if job.message:
            print(f"  {job.message}")
        return EXIT_FAILED if job.failed else EXIT_OK
    if args.jobs_command == "logs":
        if not args.follow:
            sys.stdout.write(client.logs(args.job_id))
            return EXIT_OK
        summary = client.follow(args.job_id, _writer(sys.stdout))
        print(f"job {args.job_id} {summary.status}", file=sys.stderr)
        return EXIT_FAILED if summary.failed else EXIT_OK
    stopped = client.stop(args.job_id)
    print(f"{args.job_id} {'stopping' if stopped else 'was not running'}")
    return EXIT_OK


def _writer(stream: Any) -> Callable[[str], None]:
    def write(chunk: str) -> None:
        stream.write(chunk)
        stream.flush()

    return write


def _table(jobs: list[Any]) -> str:
    if not jobs:
        return "no jobs submitted"
    rows = [("JOB ID", "STATUS", "EXPERIMENT", "STARTED", "ENTRYPOINT")]
    for job in jobs:
        started = datetime.fromtimestamp(job.start_time).strftime("%Y-%m-%d %H:%M:%S") if job.start_time else "-"
        rows.append((job.job_id, job.status, job.experiment or "-", started, job.entrypoint))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row[:4], widths)), row[4]]) for row in rows)


#: Command name -> handler, for search.cli's dispatch table.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"submit": cmd_submit, "jobs": cmd_jobs}
