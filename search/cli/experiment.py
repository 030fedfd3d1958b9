"""``python -m search validate|run|resume``: check a spec, run its search, continue an interrupted one.

Registered by :mod:`search.cli.main` through :func:`add_parsers` and :data:`HANDLERS`.
Exit codes (:mod:`search.cli.exits`): 0 done, 1 every trial failed, 2 a bad spec or
resources, 130 interrupted with trials left (the message says how to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from search.experiment import RUN_LOG
from search.experiment import Experiment

__all__ = ["add_parsers", "HANDLERS"]


_VERBOSE_HELP = ("let Ray's and Tune's own output through, and print every trial's every epoch (default: one line "
                 "per trial event; Ray's output goes to <experiment>/run.log)")
_ADDRESS_HELP = "Ray cluster address (default: $RAY_ADDRESS, else a local embedded Ray)"
_NUM_CPUS_HELP = "CPUs of the embedded Ray (default: all of this machine's)"
_DASHBOARD_HELP = ("start the embedded Ray's dashboard (Ray's default port 8265; a cluster has its own) (default: only "
                   "when trials run on Ray Train's workers, which need it; it costs about a second of start-up)")
_TOP_HELP = "rows of the summary's table of top trials (default: %(default)s; every trial: results.md)"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a spec and print the plan; starts nothing")
    p.add_argument("spec", type=Path, help="the spec file (YAML), e.g. spaces/quickstart.yaml")
    p.add_argument("--probe", action="store_true",
                   help="then run one trial for one epoch on a slice of the data, in this process (no Ray), and "
                        "check its metrics, its checkpoint's round trip and `evaluate` (default: train nothing)")

    p = sub.add_parser("run", help="run the experiment a spec describes")
    p.add_argument("spec", type=Path, help="the spec file (YAML), e.g. spaces/quickstart.yaml")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument("--name", help="experiment name (default: the spec's `name`)")
    p.add_argument("--num-samples", type=int, help="number of trials (default: the spec's search.num_samples)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the spec's search.seed)")
    p.add_argument("--storage", help="results folder or URI (default: the spec's `storage`, else ./results)")
    p.add_argument("--num-cpus", type=int, help=_NUM_CPUS_HELP)
    p.add_argument("--dashboard", action="store_true", default=None, help=_DASHBOARD_HELP)
    p.add_argument("--warm-start", type=Experiment.at, metavar="EXPERIMENT",
                   help="first tell the searcher every finished trial of this earlier experiment folder "
                        "(default: start from nothing)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing experiment of the same name first (default: refuse to run into it)")
    p.add_argument("--top", type=int, default=5, help=_TOP_HELP)
    p.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)

    p = sub.add_parser("resume", help="continue an interrupted experiment from its folder",
                       description="Continue an interrupted experiment: finished trials are kept, interrupted and "
                       "failed ones continue from their last checkpoint. A finished experiment is left as it is "
                       "(exit 0, nothing started) unless --force.")
    p.add_argument("experiment", type=Experiment.at, help="the experiment folder, <storage>/<name> (a path or a URI)")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument("--num-cpus", type=int, help=_NUM_CPUS_HELP)
    p.add_argument("--dashboard", action="store_true", default=None, help=_DASHBOARD_HELP)
    p.add_argument("--force", action="store_true",
                   help="resume even a finished experiment: redo its held-out test and rewrite its tables "
                        "(default: say it is finished and change nothing)")
    p.add_argument("--num-samples", type=int, metavar="N",
                   help="grow the search to N trials in all (more than it has): new trials continue the study's "
                        "numbering, finished ones are kept; the held-out test and tables are redone (default: the count it has)")
    p.add_argument("--time-budget", type=float, metavar="S",
                   help="the continued search's time budget in seconds (default: the spec's, anew)")
    p.add_argument("--top", type=int, default=5, help=_TOP_HELP)
    p.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {"name": args.name, "search.num_samples": args.num_samples, "search.seed": args.seed,
             "storage": args.storage}
    return {k: v for k, v in pairs.items() if v is not None}


def _check_storage(source: Path, storage: str, flag: str | None = None, *, probe_uri_as: str | None = None) -> None:
    """A storage that cannot be created is a spec problem (exit 2), found before anything starts.

    ``probe_uri_as``: for a remote URI, also write and delete a small file in that experiment's
    folder (``validate``: a missing bucket, a wrong endpoint or bad credentials show only then).
    """
    from search.spec.errors import Problem, SpecError
    from search.experiment import unwritable_reason

    reason = unwritable_reason(storage)
    experiment = Experiment.in_storage(storage, probe_uri_as) if reason is None and probe_uri_as is not None else None
    if experiment is not None and experiment.is_remote:
        try:
            experiment.probe_writable()
        except OSError as exc:
            reason = f"{exc}; check the bucket, the credentials and AWS_ENDPOINT_URL"
    if reason:
        raise SpecError([Problem(flag or "storage", reason, None if flag else _line_of(source, "storage"))], source)


def _line_of(source: Path, key: str) -> int | None:
    from search.spec.yaml_lines import parse_yaml

    try:
        return parse_yaml(source.read_text())[1].line_of([key])
    except Exception:  # noqa: BLE001 - the line is a courtesy; the spec already loaded
        return None


def validate(args: argparse.Namespace) -> int:
    from search.engine.plan import render_plan
    from search.spec.load import load_spec

    spec = load_spec(args.spec)
    _check_storage(args.spec, spec.storage, probe_uri_as=spec.name)
    text, plan = render_plan(spec)
    if plan is None:  # valid as a spec, but this machine cannot run it: say so where errors go, and not "valid"
        print(text)
        refusal = next(line for line in text.splitlines() if line.startswith("resources"))
        line = _line_of(args.spec, "resources")
        print(f"{args.spec}{f':{line}' if line else ''}: resources: {refusal.removeprefix('resources').strip()}",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.spec}: valid")
    print(text)
    if not args.probe:
        return EXIT_OK
    from search.engine.probe import probe_spec

    print(flush=True)
    probed = probe_spec(spec, args.spec, plan)
    print(probed.render())
    if not probed.ok:
        print(f"{args.spec}: probe failed ({', '.join(dict.fromkeys(probed.failed))}): see the FAILED line(s) above",
              file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from search.engine.console import announced, objectives_shown
    from search.engine.run import RunOptions, run_experiment
    from search.spec.load import load_spec

    spec = load_spec(args.spec, _overrides(args))
    _check_storage(args.spec, spec.storage, "--storage" if args.storage else None, probe_uri_as=spec.name)
    options = RunOptions(address=args.address, spec_path=args.spec.resolve(), num_cpus=args.num_cpus,
                         include_dashboard=_dashboard_asked(args), overwrite=args.overwrite, quiet=not args.verbose,
                         epoch_lines=args.verbose)
    # Said with the run's first line: a run refused before it starts (the name taken, the data
    # unreadable, ...) prints the refusal only, not a header it then contradicts.
    header = f"running {spec.name}: {spec.search.num_samples} trials -> {Experiment.in_storage(spec.storage, spec.name)}"
    with announced(header), objectives_shown(spec.objectives, spec.select.tolerance, dict(spec.select.limits)):
        outcome = run_experiment(spec, options, warm_start_from=args.warm_start)
    return _finish(spec, outcome, args.top)


def _dashboard_asked(args: argparse.Namespace) -> bool | None:
    """``--dashboard``, said to be moot when the run joins a cluster (which has its own dashboard)."""
    if args.dashboard and (args.address or os.environ.get("RAY_ADDRESS")):
        print("note: --dashboard starts an embedded Ray's dashboard; this run joins a cluster, whose dashboard is "
              "its own", file=sys.stderr)
    return args.dashboard


def resume(args: argparse.Namespace) -> int:
    from search.engine.console import objectives_shown
    from search.engine.run import RunOptions, resume_experiment

    from search.engine.grow import Growth

    growth = Growth(args.num_samples, args.time_budget)
    if not args.force and not growth and (done := _finished(args.experiment)) is not None:
        print(done, file=sys.stderr)
        return EXIT_OK
    spec = _saved_spec(args.experiment)
    shown = objectives_shown(spec.objectives, spec.select.tolerance, dict(spec.select.limits)) if spec is not None \
        else contextlib.nullcontext()
    with shown:
        outcome = resume_experiment(args.experiment, RunOptions(address=args.address, num_cpus=args.num_cpus,
                                                                include_dashboard=_dashboard_asked(args),
                                                                quiet=not args.verbose, epoch_lines=args.verbose),
                                    growth)
    return _finish(outcome.spec, outcome, args.top)


def _saved_spec(experiment: Experiment) -> Any:
    """The spec an experiment folder ran (read offline), or None when it cannot be read."""
    from search.results import ResultsError, open_results

    try:
        return open_results(experiment).info.spec
    except (ResultsError, OSError):
        return None


def _finished(experiment: Experiment) -> str | None:
    """What to say about an experiment with nothing left to resume, read offline; None: something is left.

    Finished: as many trials as the spec asked for, every one ended, none unfinished or failed
    (resume continues those from their last checkpoint), and the run's end reached (its tables,
    written after the held-out test, are there). Nothing is started or written.
    """
    from search.results import DEFAULT_EXPORTS, Outcome, ResultsError, open_results
    from search.results.summary import counts_line

    try:
        results = open_results(experiment)
    except (ResultsError, OSError):  # not readable here: resume itself says what is wrong
        return None
    spec, table = results.info.spec, results.table
    if spec is None or len(table) < spec.search.num_samples:
        return None
    if table["outcome"].isin([Outcome.UNFINISHED.value, Outcome.FAILED.value]).any():
        return None
    if not all((results.path / name).is_file() for name in DEFAULT_EXPORTS):
        return None  # its tables never written: stopped after its trials, before its held-out test and tables
    where = shlex.quote(str(results.experiment))
    return (f"experiment {results.info.name} is finished ({counts_line(table)}): nothing to resume; nothing was "
            f"started or rewritten.\n  its results: python -m search best {where}   (or export, report)\n"
            f"  to redo its held-out test and tables: python -m search resume --force {where}")


def _finish(spec: Any, outcome: Any, top: int) -> int:
    """Print the summary; an interrupted run also gets the exact command that continues it."""
    from search.results import ResultsError, open_results, write_default_exports
    from search.results.summary import render_summary

    try:  # read the folder once, for the summary and the tables
        results = open_results(outcome.experiment, spec)
    except ResultsError:
        results = None
    text, ok = render_summary(spec, outcome, top=top, results=results)
    print(text)
    for path in write_default_exports(results if results is not None else outcome.experiment, spec):
        print(f"results table: {path}", file=sys.stderr)
    if (log := outcome.experiment.file(RUN_LOG)).is_file():
        print(f"Ray's own output: {log}", file=sys.stderr)
    if outcome.unfinished:
        print(f"\ninterrupted with {outcome.unfinished} trial(s) unfinished; state saved. Continue with:\n"
              f"  python -m search resume {shlex.quote(str(outcome.experiment))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"validate": validate, "run": run, "resume": resume}
