"""``python -m search data SOURCE --split test -o rows.csv``: a data set's rows as raw, unscaled values.

What ``predict`` takes: one column per feature, in the units the data set has (not standardised:
``DataSplits.x_test`` already is), and the label column, named as the trained model knows it
(``target`` for a built-in set), so ``predict`` also reports the accuracy. The split is the one
a run makes: the same seed, fractions and settings give the same rows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exits_on

__all__ = ["add_parsers", "HANDLERS", "raw_rows"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="a data set's split as raw rows (CSV or Parquet), e.g. to try `predict` on",
                       description="Write one split of a data set with its features unscaled and its label column: "
                       "the rows `predict` takes. SOURCE is a built-in set (madelon_guyon, madelon, breast_cancer, "
                       "digits, wine), a spec file or an experiment folder (its `data:` section, so the rows are "
                       "the very ones that run held out).")
    p.add_argument("source", help="a built-in data set name, a spec file (.yaml) or an experiment folder")
    p.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which part of the split to write (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="a data setting, e.g. --set n_samples=2000 --set seed=1; repeatable "
                        "(default: the source's own, or the set's defaults)")
    p.add_argument("-o", "--output", type=Path, help="file to write, .csv or .parquet (default: CSV on stdout)")
    p.add_argument("--format", help="csv, parquet, json, md or html (default: from -o's suffix, else csv)")


def _data_section(source: str) -> dict[str, Any]:
    """The data config a source names: a built-in set, a spec's ``data:``, an experiment's spec copy."""
    from search.results.folder import ResultsError

    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        from search.spec.load import load_spec

        spec = load_spec(path)
    elif path.is_dir():
        from search.results import open_results

        spec = open_results(path).info.spec
        if spec is None:
            raise ResultsError(f"{path}: no readable spec.yaml, so no data section; name the data set instead")
    else:
        return {"name": source}
    if not spec.data:
        raise ResultsError(f"{source}: the spec has no `data:` section (its trainable loads its own data)")
    if "loader" in spec.data:
        raise ResultsError(f"{source}: the spec's data comes from its own loader ({spec.data['loader']}), whose rows "
                           "only that function knows; call it yourself")
    return dict(spec.data)


def _settings(items: list[str]) -> dict[str, Any]:
    import yaml

    from search.results.folder import ResultsError

    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ResultsError(f"--set {item!r}: write KEY=VALUE, e.g. --set n_samples=2000")
        settings[key.strip()] = yaml.safe_load(value)  # numbers as people type them: 2000, 1e-3
    return settings


def raw_rows(config: dict[str, Any], split: str = "test") -> Any:
    """A split's rows as a DataFrame: the features unscaled (float32, as trials see them before
    scaling), then the label column with the class names."""
    import pandas as pd

    from trainables.data import load_data

    splits = load_data({**config, "scale": False})  # the same rows as a run's split; only the scaling is left out
    x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
    frame = pd.DataFrame(x, columns=list(splits.feature_names))
    target = splits.preprocessing.target if splits.preprocessing is not None else "target"
    frame[target or "target"] = [splits.class_names[int(label)] for label in y]
    return frame


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Bad input: one message and exit 2; a failed write: exit 1."""
    return exits_on({"search.results.folder:ResultsError": EXIT_USAGE, OSError: EXIT_FAILED})(fn)


@_guarded
def _cmd_data(args: argparse.Namespace) -> int:
    from search.results.export import format_for, render_table, write_output
    from search.results.folder import ResultsError

    fmt = format_for(args.output, args.format)  # a bad -o or --format fails before anything is read
    if args.output is None and fmt == "parquet":
        raise ResultsError("parquet is binary: give a file with -o rows.parquet")
    config = {**_data_section(args.source), **_settings(args.settings)}
    frame = raw_rows(config, args.split)
    if args.output is None:
        sys.stdout.write(render_table(frame, fmt).decode())
        return EXIT_OK
    path = write_output(args.output, render_table(frame, fmt))
    print(f"wrote {len(frame)} {args.split} rows of {config['name']} ({len(frame.columns) - 1} raw features and "
          f"the label column {frame.columns[-1]!r}) to {path}", file=sys.stderr)
    return EXIT_OK


#: Subcommand -> handler ``fn(args) -> exit code``.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"data": _cmd_data}
