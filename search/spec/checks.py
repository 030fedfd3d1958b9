"""Spec rules that need context: the trainable, the data, cross-section consistency.

Each check reads the raw mapping defensively, so it still runs (and reports) when
another part of the spec is malformed: every problem is reported in one go.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.spec.errors import Problem, did_you_mean
from search.spec.registry import TRAINABLES, TrainableError, resolve_callable, resolve_trainable, sampler_problems
from search.spec.schedulers import pbt_mutations
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
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # "~someone" of no such user
        return None
    if path.is_absolute():
        return path if _exists(path) else None
    for base in spec_search_paths(source):
        if _exists(base / path):
            return (base / path).resolve()
    return None


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a name no file can have (too long, a NUL byte) does not."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def semantic_problems(raw: dict[str, Any], spec: Spec | None, lines: LineIndex, source: str | Path | None) -> list[Problem]:
    """Every problem beyond the spec's structure: its cross-section rules (:meth:`Spec.rule_problems`, once the
    structure is valid) and what needs context: the trainable (can it be imported, what it reports and accepts),
    the sampler's options, an installed MLflow, the data file."""
    problems: list[Problem] = []
    fn = None
    name = spec.trainable if spec is not None else raw.get("trainable", "feature_selection")
    if isinstance(name, str):
        try:
            fn = resolve_trainable(name, spec_search_paths(source))
        except TrainableError as exc:
            problems.append(Problem("trainable", str(exc), lines.line_of(["trainable"])))
        if name in TRAINABLES and importlib.util.find_spec("torch") is None:  # declared without it; trains with it
            problems.append(Problem("trainable", f"the built-in trainable {name!r} trains with PyTorch, which is not "
                                    "installed in this environment: pip install torch", lines.line_of(["trainable"])))
    if spec is not None:
        rules = spec.rule_problems()
        problems += [Problem(path, message, lines.line_of(path.split("."))) for path, message in rules]
        keys = list(_check_config_keys(raw, spec, lines, fn))
        checks = [_check_metric(spec, lines, fn), keys, _check_sampler(spec, lines), _check_tracking(spec, lines),
                  _check_mutations(spec, lines, fn), _check_pbt_checkpoints(spec, lines, fn),
                  _check_pbt_executor(spec, lines)]
        if not rules and not keys:  # the trainable's own validation, on names and values the rules passed
            checks.append(_check_config_values(spec, lines, fn))
        problems += [problem for check in checks for problem in check]
    problems += list(_check_data(raw, lines, source))
    return problems


def _check_tracking(spec: Spec, lines: LineIndex) -> Iterator[Problem]:
    if spec.tracking.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        yield Problem("tracking.mlflow", "MLflow is not installed: pip install 'hpsearch[mlflow]' (or mlflow-skinny), "
                      "or remove tracking.mlflow", lines.line_of(["tracking", "mlflow"]))


def _check_metric(spec: Spec, lines: LineIndex, fn: Any) -> Iterator[Problem]:
    reported = getattr(fn, "metrics", None)
    if not reported:
        return  # a user's trainable that does not declare its metrics: checked at run time
    named = [("metric", m) for m, _ in spec.objectives]
    named += [("checkpoint.score", spec.checkpoint.score), ("scheduler.metric", spec.scheduler.metric)]
    for path, value in named:
        if value is not None and value not in reported:
            yield Problem(path, f"metric {value!r} is never reported by trainable {spec.trainable!r}"
                          f"{did_you_mean(value, reported)}; it reports: {', '.join(reported)}",
                          lines.line_of(path.split(".")))


def _check_mutations(spec: Spec, lines: LineIndex, fn: Any) -> Iterator[Problem]:
    """PBT: each mutated parameter is one the trainable can change at a restore (``fn.mutable``), and there is one."""
    if spec.scheduler.type != "pbt" or fn is None:
        return
    changeable = getattr(fn, "mutable", None)
    can = f"it can change: {', '.join(changeable)}" if changeable else ""
    for i, name in enumerate(spec.scheduler.mutate or ()):
        if changeable is not None and name in spec.space and name not in changeable:
            yield Problem(f"scheduler.mutate.{i}", f"trainable {spec.trainable!r} cannot change {name!r} when PBT "
                          f"restores a trial from another's checkpoint (the checkpoint fixes it); {can}",
                          lines.line_of(["scheduler", "mutate", i]))
    if spec.scheduler.mutate is None and spec.space and not pbt_mutations(None, list(spec.space), fn):
        yield Problem("scheduler", f"PBT has nothing to mutate: trainable {spec.trainable!r} cannot change any searched "
                      f"parameter ({', '.join(spec.space)}) at a restore; {can}; search one of them, or use asha",
                      lines.line_of(["scheduler"]))


#: PBT copies a trial's latest checkpoint into weaker trials: each epoch needs its own. The value that says so.
_PBT_CHECKPOINTS = {"checkpoint_every": 1, "checkpoint_every_s": 0}


def _check_pbt_checkpoints(spec: Spec, lines: LineIndex, fn: Any) -> Iterator[Problem]:
    """PBT: a trainable's own checkpoint spacing (the built-in's ``checkpoint_every``, ``checkpoint_every_s``)
    left at every epoch; another value would hand a weaker trial an older model, or none."""
    if spec.scheduler.type != "pbt" or fn is None:
        return
    accepted = getattr(fn, "config_keys", None) or ()
    for key, every_epoch in _PBT_CHECKPOINTS.items():
        for section, values in (("fixed", spec.fixed), ("space", spec.space)):
            if key in accepted and key in values and (section == "space" or values[key] != every_epoch):
                yield Problem(f"{section}.{key}", f"PBT copies a trial's latest checkpoint into weaker trials, so every "
                              f"epoch is saved ({key} {every_epoch}); remove {section}.{key}, or use asha",
                              lines.line_of([section, key]))


def _check_pbt_executor(spec: Spec, lines: LineIndex) -> Iterator[Problem]:
    """PBT on Ray Train's workers needs the kept pool: a TorchTrainer per trial keeps its checkpoints in its own
    Train run (Tune sees only their paths), which PBT cannot copy from one trial into another."""
    from search.spec.models import Executor

    res = spec.resources
    on_train = res.executor is Executor.TORCH_TRAINER or (res.executor is Executor.AUTO and res.num_workers > 1)
    if spec.scheduler.type == "pbt" and on_train and not res.reuse_workers:
        yield Problem("resources.reuse_workers", "scheduler pbt with executor torch_trainer needs reuse_workers: true "
                      "(the default): a TorchTrainer per trial keeps its checkpoints in its own Train run, which PBT "
                      "cannot copy from one trial into another", lines.line_of(["resources", "reuse_workers"]))


def _check_config_keys(raw: dict[str, Any], spec: Spec, lines: LineIndex, fn: Any) -> Iterator[Problem]:
    accepted = getattr(fn, "config_keys", None)
    if not accepted:
        return
    # The names as written (a parameter whose definition was refused still has a name to check).
    named = {section: raw[section] if isinstance(raw.get(section), dict) else getattr(spec, section)
             for section in ("space", "fixed")}
    for section, keys in named.items():
        for key in keys:
            if key not in accepted:
                yield Problem(f"{section}.{key}", f"trainable does not accept config key {key!r}{did_you_mean(key, accepted)}; "
                              f"accepted: {', '.join(accepted)}", lines.line_of([section, key]))


def _check_config_values(spec: Spec, lines: LineIndex, fn: Any) -> Iterator[Problem]:
    """The trainable's own config validation (``fn.validate_config``) on the fixed values, with each searched
    parameter at its lower bound or first choice: a fixed ``lr: fast`` is found now, not in every trial."""
    validate_config = getattr(fn, "validate_config", None)
    if validate_config is None or not spec.fixed:
        return
    config = {name: param.choices[0] if param.type == "categorical" else param.low for name, param in spec.space.items()}
    try:
        validate_config({**config, **spec.fixed})
    except (ValueError, TypeError) as exc:
        message = str(exc)
        named = [key for key in spec.fixed if re.search(rf"\b{re.escape(str(key))}\b", message.split(". Accepted")[0])]
        path = ["fixed", str(named[0])] if len(named) == 1 else ["fixed"]
        yield Problem(".".join(path), message, lines.line_of(path))


def _check_sampler(spec: Spec, lines: LineIndex) -> Iterator[Problem]:
    for message in sampler_problems(spec.search.sampler.value, spec.search.sampler_options):
        yield Problem("search.sampler", message, lines.line_of(["search", "sampler"]))


def _check_data(raw: dict[str, Any], lines: LineIndex, source: str | Path | None) -> Iterator[Problem]:
    data = raw.get("data")
    if data is None:
        return
    from trainables.data import BUILTIN_DATASETS, FILE_SUFFIXES, DataConfig, DataError

    if not isinstance(data, dict):
        yield Problem("data", "data must be a mapping with 'name' (a built-in set or a table file) or 'loader' "
                      "(your own 'module:function')", lines.line_of(["data"]))
        return
    if "loader" in data:
        yield from _check_loader(data, lines, source)
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
        if path.suffix.lower() not in FILE_SUFFIXES:
            yield Problem("data.name", f"{name}: a {path.suffix or 'suffix-less'} file is not read as a table (data "
                          f"files are {', '.join(FILE_SUFFIXES)}); for anything else (.npy, .pt, images, a Dataset) "
                          "write a function that loads it and name it: data: {loader: 'my_data:load', path: "
                          f"{name}}}", line)
            return
        yield from _check_target(path, data.get("target"), lines)
    try:
        DataConfig.from_mapping(data)
    except DataError as exc:
        yield Problem("data", str(exc), lines.line_of(["data"]))


def _check_loader(data: dict[str, Any], lines: LineIndex, source: str | Path | None) -> Iterator[Problem]:
    """``data: {loader: module:function, ...}``: importable, callable with the other keys (not called here)."""
    ref, line = data["loader"], lines.line_of(["data", "loader"])
    if "name" in data:
        yield Problem("data", "data has both 'name' and 'loader': a built-in set or file is named, your own data is "
                      "loaded by your function; keep one (pass a path to your loader as another key)", line)
        return
    if not isinstance(ref, str) or ":" not in ref:
        yield Problem("data.loader", f"data.loader must be 'module:function' (e.g. 'my_data:load'), got {ref!r}", line)
        return
    try:
        fn = resolve_callable(ref, spec_search_paths(source), "data loader")
    except TrainableError as exc:
        yield Problem("data.loader", str(exc), line)
        return
    kwargs = {k: v for k, v in data.items() if k != "loader"}
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        yield Problem("data.loader", f"{ref} cannot be called with the other keys of data "
                      f"({', '.join(kwargs) or 'none'}): {exc}", line)
    except ValueError:  # a callable without a signature: it is called as it is
        pass


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
    import difflib

    def closest_first(word: str, limit: int = 12) -> str:
        # A long header listed in file order hides the column the user meant: the closest names
        # to what was typed come first (label-like names when nothing was typed), then a count.
        names = [str(c) for c in columns]
        def score(name: str) -> float:
            return max(difflib.SequenceMatcher(None, w.lower(), name.lower()).ratio() for w in word.split("|"))
        ranked = sorted(names, key=lambda name: -score(name))  # stable: file order among equals
        more = len(names) - limit
        return ", ".join(ranked[:limit]) + (f", … and {more} more" if more > 0 else "")

    if target is None:
        yield Problem("data.target", f"a data file needs 'target': the label column ({len(columns)} columns, "
                      f"label-like first: {closest_first('target|label|class|y')})", lines.line_of(["data"]))
    elif target not in columns:
        yield Problem("data.target", f"column {target!r} not in {path.name}{did_you_mean(target, columns)}; "
                      f"{len(columns)} columns, closest first: {closest_first(str(target))}",
                      lines.line_of(["data", "target"]))
