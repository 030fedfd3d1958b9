"""``python -m search <command>``: validate, run, resume, export, best, features, report, submit, jobs.

Results go to stdout; progress and logs to stderr. Exit codes: 0 success, 1 the
run failed, 2 bad usage or a bad spec.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

__all__ = ["main", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search", description="Hyperparameter search for PyTorch models "
                                     "on Ray Tune + Optuna + ASHA.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a spec and print the plan; starts nothing")
    p.add_argument("spec", type=Path)

    p = sub.add_parser("run", help="run the experiment a spec describes")
    p.add_argument("spec", type=Path)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local embedded Ray)")
    p.add_argument("--name", help="experiment name (overrides the spec's)")
    p.add_argument("--num-samples", type=int, help="number of trials (overrides search.num_samples)")
    p.add_argument("--seed", type=int, help="sampler seed (overrides search.seed)")
    p.add_argument("--storage", help="results folder or URI (overrides storage)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--warm-start", type=Path, metavar="EXPERIMENT",
                   help="first tell the searcher every finished trial of this earlier experiment folder")
    p.add_argument("--top", type=int, default=5, help="rows of the final table")

    p = sub.add_parser("resume", help="continue an interrupted experiment from its folder")
    p.add_argument("experiment", type=Path, help="the experiment folder, <storage>/<name>")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local embedded Ray)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--top", type=int, default=5, help="rows of the final table")

    from search.cli_results import add_parsers as add_results_parsers

    add_results_parsers(sub)  # export, best, features, report
    from search.cli_jobs import add_parsers as add_jobs_parsers

    add_jobs_parsers(sub)  # submit, jobs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from search.cli_jobs import HANDLERS as JOBS_HANDLERS
    from search.cli_results import HANDLERS as RESULTS_HANDLERS
    from search.errors import SpecError
    from search.registry import TrainableError
    from search.resources import ResourcePlanError
    from search.runner import ExperimentError
    from trainables.data import DataError

    handlers = {"validate": _cmd_validate, "run": _cmd_run, "resume": _cmd_resume, **RESULTS_HANDLERS, **JOBS_HANDLERS}
    try:
        return handlers[args.command](args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except (ResourcePlanError, DataError, TrainableError, ExperimentError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError as exc:  # a cluster that refuses us (token auth) or cannot be reached
        from search.jobs import connect_error

        message = connect_error(exc, getattr(args, "address", None) or os.environ.get("RAY_ADDRESS"))
        if message is None or args.debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second Ctrl-C: Tune skipped its last save, the latest one still resumes
        print("interrupted; continue with: python -m search resume <storage>/<name>", file=sys.stderr)
        return EXIT_INTERRUPTED


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {"name": args.name, "search.num_samples": args.num_samples, "search.seed": args.seed,
             "storage": args.storage}
    return {k: v for k, v in pairs.items() if v is not None}


def _cmd_validate(args: argparse.Namespace) -> int:
    from search.plan import render_plan
    from search.spec import load_spec

    spec = load_spec(args.spec)
    text, plan = render_plan(spec)
    print(f"{args.spec}: valid")
    print(text)
    return EXIT_OK if plan is not None else EXIT_USAGE


def _cmd_run(args: argparse.Namespace) -> int:
    from search.runner import RunOptions, run_experiment
    from search.spec import load_spec

    spec = load_spec(args.spec, _overrides(args))
    from search.runner import experiment_path

    print(f"running {spec.name}: {spec.search.num_samples} trials -> {experiment_path(spec)}", file=sys.stderr)
    options = RunOptions(address=args.address, spec_path=args.spec.resolve(), num_cpus=args.num_cpus)
    outcome = run_experiment(spec, options, warm_start_from=args.warm_start)
    return _finish(spec, outcome, args.top)


def _cmd_resume(args: argparse.Namespace) -> int:
    from search.runner import RunOptions, resume_experiment

    outcome = resume_experiment(args.experiment, RunOptions(address=args.address, num_cpus=args.num_cpus))
    from search.spec import load_spec

    return _finish(load_spec(outcome.path / "spec.yaml"), outcome, args.top)


def _finish(spec: Any, outcome: Any, top: int) -> int:
    """Print the summary; an interrupted run also gets the exact command that continues it."""
    from search.summary import render_summary

    text, ok = render_summary(spec, outcome, top=top)
    print(text)
    from search.results import write_default_exports

    for path in write_default_exports(outcome.path, spec):
        print(f"results table: {path}", file=sys.stderr)
    if outcome.unfinished:
        print(f"\ninterrupted with {outcome.unfinished} trial(s) unfinished; state saved. Continue with:\n"
              f"  python -m search resume {shlex.quote(str(outcome.path))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
