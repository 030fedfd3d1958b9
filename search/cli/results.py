"""``python -m search export|best|features|report|predict EXPERIMENT``: what a user does after a run.

``EXPERIMENT`` is an experiment folder, or a bare name looked up under ``./results/``.
Results go to stdout (or ``-o FILE``, written atomically); notes to stderr. Exit codes:
0 success, 1 the command failed (e.g. the output could not be written), 2 bad usage or
an experiment that cannot give what was asked (with one clear message).

``cli.py`` wires these in with :func:`add_parsers` and :data:`HANDLERS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from search.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exits_on

__all__ = ["add_parsers", "HANDLERS"]

_EXPERIMENT_HELP = "experiment folder, or a name under ./results/"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export``, ``best``, ``features``, ``report`` and ``predict`` on a ``add_subparsers()`` object."""
    p = subparsers.add_parser("export", help="the results table: one row per trial, best first")
    p.add_argument("experiment", help=_EXPERIMENT_HELP)
    p.add_argument("--format", help="csv, parquet, json, md or html (default: from -o's suffix, else csv)")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    p = subparsers.add_parser("best", help="the best trial's parameters as YAML, ready for `fixed:` (several "
                              "objectives: the front and the picked trial)",
                              description="Several objectives: prints the Pareto front (as YAML comments) and the "
                              "trial picked from it, by the spec's `select` or by --tolerance/--limit.")
    p.add_argument("experiment", help=_EXPERIMENT_HELP)
    p.add_argument("--tolerance", type=float, help="several objectives: among trials within this much of the best first "
                   "objective, the one best on the next (e.g. 0.01: the fewest features within 0.01 accuracy; default: "
                   "the spec's select.tolerance)")
    p.add_argument("--limit", action="append", default=[], metavar="METRIC=BOUND",
                   help="several objectives: keep trials with METRIC at most (min) / at least (max) BOUND; repeatable "
                   "(default: the spec's select.limits)")

    p = subparsers.add_parser("features", help="the features the best (several objectives: picked) trial selects and "
                              "how often the live trials select them")
    p.add_argument("experiment", help=_EXPERIMENT_HELP)
    p.add_argument("--top-k", type=int, default=10, help="one objective: live trials counted for the selection "
                   "frequency; several: the live front is counted (default: %(default)s)")
    p.add_argument("--all", action="store_true", help="every feature, not only the selected ones (default: off)")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"), help="output format (default: %(default)s)")

    p = subparsers.add_parser("report", help="one self-contained HTML report (opens offline)")
    p.add_argument("experiment", help=_EXPERIMENT_HELP)
    p.add_argument("-o", "--output", type=Path, help="HTML file (default: report.html in the experiment folder)")
    p.add_argument("--top-k", type=int, default=10, help="trials in the stability heat map (default: %(default)s)")

    p = subparsers.add_parser("predict", help="apply a trial's model to new raw data (CSV or Parquet)",
                              description="Score a file of raw features with a trial's model: columns are matched "
                              "by name (the training target column, if present, is ignored and gives the accuracy "
                              "on stderr). Writes `prediction` and one `proba_<class>` column per class, in the "
                              "file's row order.")
    p.add_argument("experiment", help=_EXPERIMENT_HELP)
    p.add_argument("data", type=Path, help="a .csv or .parquet file with the training feature columns, any order, "
                   "raw (unscaled); `python -m search data` writes a built-in set's")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    p.add_argument("--format", help="csv, parquet, json, md or html (default: from -o's suffix, else csv)")
    p.add_argument("--trial", help="trial id (default: the best trial; several objectives: the picked one)")


def _print_notes(notes: list[str]) -> None:
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn bad input into one message and exit 2, a failed write into exit 1."""
    return exits_on({"search.results.folder:ResultsError": EXIT_USAGE, OSError: EXIT_FAILED})(fn)


@_guarded
def _cmd_export(args: argparse.Namespace) -> int:
    from search.results import open_results
    from search.results.export import format_for, render_table, write_table
    from search.results.folder import ResultsError

    fmt = format_for(args.output, args.format)  # an unknown format fails before anything is read
    if args.output is None and fmt == "parquet":
        raise ResultsError("parquet is binary: give a file with -o results.parquet")
    results = open_results(args.experiment)
    _print_notes(results.notes)
    if args.output is None:
        sys.stdout.write(render_table(results.table, fmt).decode())
        return EXIT_OK
    path = write_table(results.table, args.output, fmt)
    print(f"wrote {len(results.table)} trials to {path}", file=sys.stderr)
    return EXIT_OK


def _limits(items: list[str]) -> dict[str, float]:
    from search.results.folder import ResultsError

    limits = {}
    for item in items:
        metric, sep, bound = item.partition("=")
        try:
            limits[metric.strip()] = float(bound)
        except ValueError:
            sep = ""
        if not sep or not metric.strip():
            raise ResultsError(f"--limit {item!r}: write METRIC=BOUND, e.g. --limit num_selected=25")
    return limits


@_guarded
def _cmd_best(args: argparse.Namespace) -> int:
    from search.results import best_trial, open_results
    from search.results.folder import ResultsError

    limits = _limits(args.limit)
    results = open_results(args.experiment)
    _print_notes(results.notes)
    if (args.tolerance is not None or limits) and not results.info.multi_objective:
        raise ResultsError(f"--tolerance and --limit pick from a Pareto front; {results.path} has one objective "
                           f"({results.info.metric}): drop them")
    rule = {"tolerance": args.tolerance, "limits": limits} if args.tolerance is not None or limits else {}
    best = best_trial(results, **rule)
    if best.checkpoint is None:
        print(f"warning: trial {best.trial_id} has no checkpoint on disk; its parameters are still below",
              file=sys.stderr)
    sys.stdout.write(best.to_yaml())
    return EXIT_OK


@_guarded
def _cmd_features(args: argparse.Namespace) -> int:
    from search.results import feature_table, open_results

    results = open_results(args.experiment)
    df = feature_table(results, args.top_k, all_features=args.all)
    _print_notes(results.notes)
    top = df.attrs["top_trials"]
    which = "picked" if results.info.multi_objective else "best"
    over = "the live front" if results.info.multi_objective else f"the top {len(top)} live trials"
    print(f"{which} trial {df.attrs['best_trial']}: {len(df)} feature(s){'' if args.all else ' selected'}; "
          f"selection frequency over {over} ({', '.join(top)})", file=sys.stderr)
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(df.to_json(orient="records", indent=2) + "\n")
    else:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return EXIT_OK


@_guarded
def _cmd_report(args: argparse.Namespace) -> int:
    from search.results import open_results
    from search.results.report import write_report

    results = open_results(args.experiment)
    _print_notes(results.notes)
    print(write_report(results, args.output, args.top_k))
    return EXIT_OK


@_guarded
def _cmd_predict(args: argparse.Namespace) -> int:
    from search.results import ResultsError, load_predictor, open_results
    from search.results.export import format_for, render_table, write_output
    from search.results.predict import PREDICTION_COLUMN, InputDataError, accuracy, read_table

    fmt = format_for(args.output, args.format)  # a bad -o or --format fails before anything is read
    if args.output is None and fmt == "parquet":
        raise ResultsError("parquet is binary: give a file with -o predictions.parquet")
    frame = read_table(args.data)
    results = open_results(args.experiment)
    _print_notes(results.notes)
    predictor = load_predictor(results, args.trial)
    try:
        table = predictor.table(frame)
    except InputDataError as exc:
        raise InputDataError(f"data file {str(args.data)!r}: {exc}") from exc
    which = "trial" if args.trial is not None else "the picked trial" if results.info.multi_objective else "the best trial"
    print(f"{len(table)} rows of {args.data} scored by {which} {predictor.trial_id} ({predictor.checkpoint})",
          file=sys.stderr)
    if predictor.target is not None and predictor.target in frame.columns:
        share, labelled = accuracy(table[PREDICTION_COLUMN], frame[predictor.target])
        if labelled:
            print(f"accuracy {share:.4f} on {labelled} labelled rows (target column {predictor.target!r})",
                  file=sys.stderr)
        else:
            print(f"note: target column {predictor.target!r} is empty; no accuracy", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(render_table(table, fmt).decode())
        return EXIT_OK
    path = write_output(args.output, render_table(table, fmt))
    print(f"wrote {len(table)} predictions to {path}", file=sys.stderr)
    return EXIT_OK


#: Subcommand -> handler ``fn(args) -> exit code``.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "export": _cmd_export, "best": _cmd_best, "features": _cmd_features, "report": _cmd_report,
    "predict": _cmd_predict,
}
