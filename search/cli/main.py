"""``python -m search <command>``: validate, run, resume, export, best, features, report, predict,
data, submit, jobs.

Results go to stdout; progress and logs to stderr. Exit codes: 0 success, 1 the
run failed, 2 bad usage or a bad spec.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from search.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, imported

__all__ = ["main", "command", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]


def _parser() -> argparse.ArgumentParser:
    from search.cli import data, experiment, jobs, results

    parser = argparse.ArgumentParser(prog="python -m search", description="Hyperparameter search for PyTorch models "
                                     "on Ray Tune + Optuna + ASHA.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors (default: one message)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    experiment.add_parsers(sub)  # validate, run, resume
    results.add_parsers(sub)  # export, best, features, report, predict
    data.add_parsers(sub)  # data
    jobs.add_parsers(sub)  # submit, jobs
    return parser


#: The errors that are the user's to fix (one message, exit 2), by name: their modules are not imported for
#: this (``trainables.data`` brings torch, seconds before a run's first line); see :func:`exits.imported`.
_USER_ERRORS = ("search.trials.resources:ResourcePlanError", "trainables.data.checks:DataError",
                "search.spec.registry:TrainableError", "search.experiment:ExperimentError")


def main(argv: Sequence[str] | None = None) -> int:
    from search.engine.console import start_clock

    start_clock()  # the run's lines count time from here: the user waits from here
    parser = _parser()
    args = parser.parse_args(argv)
    from search.cli import data, experiment, jobs, results
    from search.spec.errors import SpecError

    handlers = {**experiment.HANDLERS, **results.HANDLERS, **data.HANDLERS, **jobs.HANDLERS}
    try:
        return handlers[args.command](args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except imported(_USER_ERRORS) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError as exc:  # a cluster that refuses us (token auth) or cannot be reached
        from search.cluster.jobs import connect_error

        message = connect_error(exc, getattr(args, "address", None) or os.environ.get("RAY_ADDRESS"))
        if message is None or args.debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second Ctrl-C: Tune skipped its last save, the latest one still resumes
        print("interrupted; continue with: python -m search resume <storage>/<name>", file=sys.stderr)
        return EXIT_INTERRUPTED


def command() -> None:
    """The command's process: :func:`main`, then its exit without the interpreter's last garbage collection.

    A run's driver ends holding Ray, torch and ``torch._dynamo`` (imported for the refit), and the interpreter's
    teardown collected their objects for about a second after the last line was printed. ``gc.freeze()`` first
    leaves what is alive to the process's end, as Python leaves an object alive at exit anyway (its ``__del__`` is
    not guaranteed to run); threads are still joined and ``atexit`` handlers still run. Only for the process:
    :func:`main` called in a process that goes on (tests, notebooks) frees as usual.
    """
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    command()
