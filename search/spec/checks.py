"""Spec rules that need context: the trainable, the data, cross-section consistency.

Each check reads the raw mapping defensively, so it still runs (and reports) when
another part of the spec is malformed: every problem is reported in one go.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.spec.errors import Problem, did_you_mean
from search.spec.registry import TrainableError, resolve_trainable, sampler_problems
from search.spec.yaml_lines import LineIndex

if TYPE_CHECKING:
    from search.spec.models import Spec

__all__ = ["semantic_problems", "resolve_data_path", "spec_search_paths"]

Check = Callable[[dict[str, Any], LineIndex, "Path | None"], Iterator[Problem]]


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def spec_search_paths(source: str | Path | None) -> tuple[Path, ...]:
    """Where a user's trainable module and relative data paths are looked up: CWD, then the spec's folder."""
    paths = [Path.cwd()]
    if source is not None:
        paths.append(Path(source).resolve().parent)
    return tuple(dict.fromkeys(paths))


def resolve_data_path(name: str, source: str | Path | None) -> Path | None:
    """The file a ``data.name`` refers to (relative to CWD, then the spec's folder), or None."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path if path.exists() else None
    for base in spec_search_paths(source):
        if (base / path).exists():
            return (base / path).resolve()
    return None


def semantic_problems(raw: dict[str, Any], spec: Spec | None, lines: LineIndex, source: str | Path | None) -> list[Problem]:
    problems: list[Problem] = []
    fn = None
    name = raw.get("trainable", "feature_selection")
    if isinstance(name, str):
        try:
            fn = resolve_trainable(name, spec_search_paths(source))
        except TrainableError as exc:
            problems.append(Problem("trainable", str(exc), lines.line_of(["trainable"])))
    for check in (_check_metric, _check_config_keys):
        problems += list(check(raw, lines, fn))
    for plain in (_check_conditions, _check_points, _check_scheduler, _check_sampler, _check_resources, _check_tracking):
        problems += list(plain(raw, lines))
    problems += list(_check_data(raw, lines, source))
    return problems


def _check_tracking(raw: dict[str, Any], lines: LineIndex) -> Iterator[Problem]:
    tracking = _section(raw, "tracking")
    if "mlflow" in tracking and importlib.util.find_spec("mlflow") is None:
        yield Problem("tracking.mlflow", "MLflow is not installed: pip install 'hpsearch[mlflow]' (or mlflow-skinny), "
                      "or remove tracking.mlflow", lines.line_of(["tracking", "mlflow"]))


def _check_metric(raw: dict[str, Any], lines: LineIndex, fn: Any) -> Iterator[Problem]:
    reported = getattr(fn, "metrics", None)
    if not reported:
        return  # a user's trainable that does not declare its metrics: checked at run time
    metric = raw.get("metric", "val_loss")
    named = [("metric", metric)] if not isinstance(metric, list) else [(f"metric[{i}]", m) for i, m in enumerate(metric)]
    named += [("checkpoint.score", _section(raw, "checkpoint").get("score")),
              ("scheduler.metric", _section(raw, "scheduler").get("metric"))]
    for path, value in named:
        if isinstance(value, str) and value not in reported:
            where = ["metric"] if path.startswith("metric[") else path.split(".")
            yield Problem(path, f"metric {value!r} is never reported by trainable {raw.get('trainable', 'feature_selection')!r}"
                          f"{did_you_mean(value, reported)}; it reports: {', '.join(reported)}", lines.line_of(where))


def _check_config_keys(raw: dict[str, Any], lines: LineIndex, fn: Any) -> Iterator[Problem]:
    space, fixed = _section(raw, "space"), _section(raw, "fixed")
    for key in sorted(set(space) & set(fixed)):
        yield Problem(f"fixed.{key}", f"{key!r} is both searched (space) and fixed; keep one", lines.line_of(["fixed", key]))
    accepted = getattr(fn, "config_keys", None)
    if not accepted:
        return
    for section, keys in (("space", space), ("fixed", fixed)):
        for key in keys:
            if key not in accepted:
                yield Problem(f"{section}.{key}", f"trainable does not accept config key {key!r}{did_you_mean(key, accepted)}; "
                              f"accepted: {', '.join(accepted)}", lines.line_of([section, key]))


def _check_conditions(raw: dict[str, Any], lines: LineIndex) -> Iterator[Problem]:
    space = _section(raw, "space")
    declared: list[str] = []
    for name, param in space.items():
        when = param.get("when") if isinstance(param, dict) else None
        if isinstance(when, dict):
            for parent, values in when.items():
                path = f"space.{name}.when.{parent}"
                line = lines.line_of(["space", name, "when", parent])
                parent_param = space.get(parent)
                if parent not in space:
                    yield Problem(path, f"condition on unknown parameter {parent!r}{did_you_mean(parent, space)}", line)
                elif parent not in declared:
                    yield Problem(path, f"condition on {parent!r}, which must be declared before {name!r}", line)
                elif not isinstance(parent_param, dict) or parent_param.get("type") != "categorical":
                    yield Problem(path, f"conditions must refer to a categorical parameter; {parent!r} is not", line)
                else:
                    choices = parent_param.get("choices") or []
                    for value in values if isinstance(values, list) else [values]:
                        if value not in choices:
                            yield Problem(path, f"{value!r} is not one of {parent!r}'s choices {choices}", line)
        declared.append(name)


def _check_points(raw: dict[str, Any], lines: LineIndex) -> Iterator[Problem]:
    space = _section(raw, "space")
    points = _section(raw, "search").get("points_to_evaluate") or []
    for i, point in enumerate(points if isinstance(points, list) else []):
        if not isinstance(point, dict):
            continue
        for key, value in point.items():
            path = ["search", "points_to_evaluate", str(i), key]
            param = space.get(key)
            if key not in space:
                yield Problem(".".join(path), f"{key!r} is not a searched parameter{did_you_mean(key, space)}", lines.line_of(path))
            elif isinstance(param, dict) and not _value_fits(param, value):
                yield Problem(".".join(path), f"{value!r} is outside {key!r}'s distribution {_describe(param)}", lines.line_of(path))


def _value_fits(param: dict[str, Any], value: Any) -> bool:
    if param.get("type") == "categorical":
        return value in (param.get("choices") or [])
    low, high = param.get("low"), param.get("high")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return float(low) <= value <= float(high)
    except (TypeError, ValueError):
        return True  # the range itself is broken and reported elsewhere


def _describe(param: dict[str, Any]) -> str:
    if param.get("type") == "categorical":
        return f"choices {param.get('choices')}"
    return f"[{param.get('low')}, {param.get('high')}]"


def _check_scheduler(raw: dict[str, Any], lines: LineIndex) -> Iterator[Problem]:
    sched = _section(raw, "scheduler")
    if sched.get("type", "asha") != "asha":
        return
    epochs = _section(raw, "fixed").get("epochs")
    # `max_t: null` is the default written out (the spec copy an experiment keeps says it so): fixed.epochs.
    given_max_t = sched.get("max_t")
    max_t = given_max_t if given_max_t is not None else epochs
    grace = sched.get("grace_period", 1)
    if max_t is None:
        yield Problem("scheduler.max_t", "ASHA needs the most epochs a trial runs: set scheduler.max_t or fixed.epochs",
                      lines.line_of(["scheduler"]))
    elif given_max_t is None and isinstance(grace, int) and isinstance(max_t, int) and grace > max_t:
        yield Problem("scheduler.grace_period", f"grace_period ({grace}) must be <= fixed.epochs ({max_t})",
                      lines.line_of(["scheduler", "grace_period"]))


def _check_sampler(raw: dict[str, Any], lines: LineIndex) -> Iterator[Problem]:
    search = _section(raw, "search")
    name = search.get("sampler", "tpe")
    options = search.get("sampler_options") or {}
    if not isinstance(name, str) or not isinstance(options, dict):
        return
    from search.spec.registry import SAMPLERS

    if name.lower() not in SAMPLERS:
        return  # reported by the model with its choices
    for message in sampler_problems(name.lower(), options):
        yield Problem("search.sampler", message, lines.line_of(["search", "sampler"]))


def _check_resources(raw: dict[str, Any], lines: LineIndex) -> Iterator[Problem]:
    res = _section(raw, "resources")
    if res.get("use_gpu") is False and (res.get("gpus_per_worker") or 0) > 0:
        yield Problem("resources.gpus_per_worker", "gpus_per_worker > 0 with use_gpu: false; set use_gpu: true or auto",
                      lines.line_of(["resources", "gpus_per_worker"]))
    if res.get("executor") == "direct" and isinstance(res.get("num_workers"), int) and res["num_workers"] > 1:
        yield Problem("resources.executor", "executor 'direct' runs one worker in the trial; use 'torch_trainer' "
                      "(or 'auto') for num_workers > 1", lines.line_of(["resources", "executor"]))
    gpus = res.get("gpus_per_worker")
    if isinstance(gpus, (int, float)) and gpus > 1 and gpus != int(gpus):
        yield Problem("resources.gpus_per_worker", f"fractional GPUs must be < 1 (got {gpus}); a worker takes a "
                      "fraction of one GPU or whole GPUs", lines.line_of(["resources", "gpus_per_worker"]))


def _check_data(raw: dict[str, Any], lines: LineIndex, source: str | Path | None) -> Iterator[Problem]:
    data = raw.get("data")
    if data is None:
        return
    from trainables.data import BUILTIN_DATASETS, DataConfig, DataError

    if not isinstance(data, dict):
        yield Problem("data", "data must be a mapping with at least 'name'", lines.line_of(["data"]))
        return
    name = data.get("name")
    line = lines.line_of(["data", "name"])
    if isinstance(name, str) and name not in BUILTIN_DATASETS:
        looks_like_file = any(sep in name for sep in "/\\") or Path(name).suffix
        path = resolve_data_path(name, source)
        if not looks_like_file:
            yield Problem("data.name", f"unknown data set {name!r}{did_you_mean(name, BUILTIN_DATASETS)}; built-in: "
                          f"{', '.join(BUILTIN_DATASETS)}, or a path to a .csv/.parquet file", line)
            return
        if path is None:
            yield Problem("data.name", f"data file not found: {name} (looked in {', '.join(map(str, spec_search_paths(source)))})", line)
            return
        yield from _check_target(path, data.get("target"), lines)
    try:
        DataConfig.from_mapping(data)
    except DataError as exc:
        yield Problem("data", str(exc), lines.line_of(["data"]))


def _check_target(path: Path, target: Any, lines: LineIndex) -> Iterator[Problem]:
    """Read only the file's header to check the target column (no full load at validate time)."""
    try:
        if path.suffix.lower() == ".csv":
            import pandas as pd

            columns = list(pd.read_csv(path, nrows=0).columns)
        elif importlib.util.find_spec("pyarrow") is not None:
            import pyarrow.parquet as pq

            columns = list(pq.read_schema(path).names)
        else:
            return
    except Exception as exc:  # unreadable file: say so, the loader would fail too
        yield Problem("data.name", f"cannot read {path}: {exc}", lines.line_of(["data", "name"]))
        return
    if target is None:
        yield Problem("data.target", f"a data file needs 'target': the label column (columns: {', '.join(map(str, columns[:20]))})",
                      lines.line_of(["data"]))
    elif target not in columns:
        yield Problem("data.target", f"column {target!r} not in {path.name}{did_you_mean(target, columns)}; "
                      f"columns: {', '.join(map(str, columns[:20]))}", lines.line_of(["data", "target"]))
