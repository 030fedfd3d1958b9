"""``validate --probe``: one trial of a spec, for one epoch, on a slice of its data, in this process (no Ray).

Before a long run, seconds to learn what would fail its first trial minutes in (a metric not reported, a
checkpoint that does not resume) or its end (an ``evaluate`` that breaks on the held-out test). The probe:

1. loads the spec's data as a run does (:func:`search.engine.run.load_data_once`) and keeps the first
   rows of each split (:data:`PROBE_ROWS`); data that are not ``DataSplits`` are passed unchanged;
2. takes the sampler's first suggestion (the spec's sampler and seed on an in-memory Optuna study,
   as the run's searcher asks it; the first of ``points_to_evaluate`` if any) merged with ``fixed``,
   with every epoch count (:data:`EPOCH_KEYS`) set to 1;
3. calls the trainable the way a trial does: :func:`search.trials.direct.run_direct_trial` under a
   stand-in Tune session, or, for a Ray-style trainable on the ``torch_trainer`` executor, in Ray
   Train's own local mode through :func:`search.trials.setup.train_api_routed`; the same checks on
   its reports (:class:`search.trials.setup.CheckedReport`) apply;
4. checks: every metric the spec needs is reported and is a number; a checkpoint was written, loads
   (a built-in trainable's with ``weights_only=True``, as the offline readers load it) and resumes the
   trial for a second epoch (through the code a retried trial uses); ``evaluate``, when the trainable
   declares one (:mod:`search.engine.heldout`), returns metrics for the test slice.

Nothing is written to the spec's storage; the checkpoints live in a temporary folder, removed at the end.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.engine.run import load_data_once, resolved_spec
from search.results.outcomes import is_finite_number
from search.spec.checks import spec_search_paths
from search.spec.models import Executor, Spec
from search.spec.registry import TrainableError, is_ray_style, resolve_trainable, trainable_ref
from search.trials.resources import TrialPlan
from search.trials.setup import MetricNotReportedError, NothingReportedError, TrialSetup

__all__ = ["EPOCH_KEYS", "PROBE_ROWS", "ProbeReport", "probe_spec"]

#: Rows of each split the probe uses: the first ones of the spec's data.
PROBE_ROWS = {"train": 256, "val": 128, "test": 128}
#: Config keys taken as a number of epochs: 1 for the probe's epoch, 2 when it resumes for a second one.
EPOCH_KEYS = ("epochs", "num_epochs", "max_epochs", "n_epochs")
#: Frames of a trainable's traceback shown when it raises (the innermost ones: the user's code).
TRACEBACK_FRAMES = 3


@dataclass
class ProbeReport:
    """What the probe found: the summary's lines, in order; ``failed``: the checks that failed."""

    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (label, status, text)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, label: str, text: str, status: str = "") -> None:
        self.lines.append((label, status, text))

    def fail(self, label: str, text: str) -> None:
        self.failed.append(label)
        self.add(label, text, "FAILED")

    def render(self) -> str:
        out = []
        for label, status, text in self.lines:
            head, *rest = text.splitlines() or [""]
            out.append(f"  {label:<11} {status + ': ' if status else ''}{head}")
            out += [f"  {'':<11} {line}" for line in rest]
        verdict = (f"probe passed in {self.seconds:.1f} s" if self.ok else
                   f"probe FAILED in {self.seconds:.1f} s: {', '.join(dict.fromkeys(self.failed))}")
        return "\n".join(["probe: one trial, one epoch, on a slice of the data, in this process (no Ray)", *out,
                          verdict])


def probe_spec(spec: Spec, source: Path, plan: TrialPlan) -> ProbeReport:
    """Probe ``spec`` (read from ``source``; ``plan``: the trials' executor, as ``validate`` planned it)."""
    started = time.perf_counter()
    report = ProbeReport()
    with tempfile.TemporaryDirectory(prefix="search-probe-") as folder:
        _probe(resolved_spec(spec, source), spec_search_paths(source), plan, Path(folder), report)
    report.seconds = time.perf_counter() - started
    return report


def _probe(spec: Spec, paths: tuple[Path, ...], plan: TrialPlan, folder: Path, report: ProbeReport) -> None:
    try:
        fn = resolve_trainable(spec.trainable, paths)
    except TrainableError as exc:
        report.fail("trainable", str(exc))
        return
    try:
        data = load_data_once(spec, None)
    except Exception as exc:  # noqa: BLE001 - DataError, OSError, a reader's own: each is the spec's data to fix
        report.fail("data", f"{type(exc).__name__}: {exc}; check the spec's `data` section")
        return
    data, rows = _sliced(data)
    report.add("data", rows or ("none in the spec: the trainable loads its own (all of it)" if data is None else
                                f"{type(data).__name__}, used whole (not DataSplits: the probe cannot slice it)"))
    sampled = _first_suggestion(spec)
    epoch_keys = [k for k in EPOCH_KEYS if k in spec.fixed or k in sampled or k in getattr(fn, "config_keys", ())]
    config = {**spec.fixed, **sampled}
    report.add("config", _config_line(sampled, config, epoch_keys, spec))
    setup = _ProbeSetup(trainable_ref=trainable_ref(spec.trainable), search_paths=tuple(str(p) for p in paths),
                        data_ref=None, plan=plan, experiment_path=str(folder),
                        checkpoint_num_to_keep=spec.checkpoints_to_keep, checkpoint_score=spec.checkpoint_score,
                        checkpoint_mode=spec.checkpoint_mode, required_metrics=spec.required_metrics, data=data)
    trial = _LocalTrial(folder / "trial")
    on_train_worker = plan.executor is Executor.TORCH_TRAINER and is_ray_style(fn)

    error, seconds = _run(fn, {**config, **dict.fromkeys(epoch_keys, 1)}, setup, trial, on_train_worker)
    if error is not None:
        report.fail(*_raised(error, setup.trainable_ref, plan))
        return
    if not trial.epochs:  # a ``(config, report)`` function that returned without one report
        report.fail("metrics", f"trainable {setup.trainable_ref} returned without reporting: call report(metrics) "
                               "every epoch, with the spec's metric(s) and `epoch`")
        return
    for epoch in trial.epochs:
        report.add(f"epoch {_epoch_of(epoch)}", _metrics_line(epoch.metrics, setup.required_metrics, seconds))
    _check_numbers(trial.epochs, setup.required_metrics, report)
    checkpoint = next((e for e in trial.epochs if e.checkpoint is not None), None)
    if checkpoint is None:
        _no_checkpoint(fn, setup, report)
        return
    if not _check_checkpoint(checkpoint.checkpoint, setup.builtin, report):
        return
    _check_resume(fn, config, epoch_keys, setup, trial, checkpoint, on_train_worker, report)
    _check_evaluate(fn, config, checkpoint.checkpoint, data, report)


# ---------------------------------------------------------------- the trial, in this process
@dataclass(frozen=True)
class _ProbeSetup(TrialSetup):
    """A trial's setup whose data are here already (a run's come from Ray's object store)."""

    data: Any = None

    def load_data(self) -> Any:
        return self.data


@dataclass
class _Epoch:
    metrics: dict[str, Any]
    checkpoint: Path | None  # the probe's copy of the checkpoint reported with it


class _Enough(BaseException):
    """Raised in a report once the probe has what it needs, so a trainable that ignores ``epochs`` stops there.

    Not an ``Exception``, so the trainable's own ``except Exception`` lets it by (as Tune's stop does).
    """


class _LocalTrial:
    """A Tune trial's session, standing in, in this process: keeps each report and a copy of its checkpoint.

    ``ray.tune.report`` calls :meth:`report`; ``ray.tune.get_checkpoint`` reads
    :attr:`loaded_checkpoint`. The first run goes on until a report carries a checkpoint; a
    resumed one for one report: at the report after that, the trainable is stopped.
    """

    world_rank = None  # Ray's test for a Tune trial (not a Train worker)

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loaded_checkpoint: Any = None
        self.epochs: list[_Epoch] = []
        self._enough = False
        self._saved = 0

    def start(self, resume_from: Path | None) -> None:
        from ray import tune

        self.loaded_checkpoint = tune.Checkpoint.from_directory(str(resume_from)) if resume_from else None
        self.epochs, self._enough = [], False

    def report(self, metrics: Mapping[str, Any], checkpoint: Any = None, **_options: Any) -> None:
        if self._enough:
            raise _Enough()
        kept = self._keep(checkpoint) if checkpoint is not None else None
        self.epochs.append(_Epoch(dict(metrics), kept))
        self._enough = kept is not None or self.loaded_checkpoint is not None

    def _keep(self, checkpoint: Any) -> Path:
        """Copy the checkpoint's files, as Tune persists them (the trainable may delete its folder on return)."""
        target = self.folder / f"checkpoint_{self._saved:06d}"  # Tune's names: resume_dir looks for its siblings
        self._saved += 1
        if isinstance(checkpoint, (str, Path)):
            shutil.copytree(checkpoint, target)
        else:
            with checkpoint.as_directory() as local:
                shutil.copytree(local, target)
        return target


def _run(fn: Any, config: dict[str, Any], setup: _ProbeSetup, trial: _LocalTrial,
         on_train_worker: bool) -> tuple[BaseException | None, float]:
    """Run the trial as far as the probe needs it; (what it raised, or None; seconds)."""
    from search.internals import local_tune_session, local_train_worker
    from search.trials.direct import run_direct_trial

    started = time.perf_counter()
    try:
        if on_train_worker:
            with local_train_worker(setup.trainable_ref):
                _run_on_train_worker(fn, config, setup, trial)
        else:
            with local_tune_session(trial):
                run_direct_trial(config, setup)
    except _Enough:
        pass
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the trainable's failure is the probe's finding
        return exc, time.perf_counter() - started
    return None, time.perf_counter() - started


def _run_on_train_worker(fn: Any, config: dict[str, Any], setup: _ProbeSetup, trial: _LocalTrial) -> None:
    """A Ray-style trainable as a Train worker runs it (``ray.train.report`` / ``get_checkpoint`` routed)."""
    from search.trials.setup import call_ray_style, checked_report, epoch_state, train_api_routed
    from trainables.distributed import WorldInfo

    checkpoint = trial.loaded_checkpoint
    report = checked_report(trial.report, setup.required_metrics, setup.trainable_ref, epoch_state(checkpoint))
    with train_api_routed(report, checkpoint):
        call_ray_style(fn, config, report, data=setup.load_data(), world=WorldInfo())


# ---------------------------------------------------------------- the checks
def _check_numbers(epochs: list[_Epoch], required: tuple[str, ...], report: ProbeReport) -> None:
    """Every metric the search reads is a number (that each is reported at all, CheckedReport has checked)."""
    numbers = True
    for metric in required:
        values = [e.metrics.get(metric) for e in epochs]
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            numbers = False
            report.fail("metrics", f"{metric} was reported as {bad[0]!r} ({type(bad[0]).__name__}), not a number: "
                                   "report a Python or NumPy number (loss.item(), not the tensor)")
        elif not all(math.isfinite(v) for v in values):
            report.add("metrics", f"{metric} is {values[-1]} in the probe's epoch: the run prunes such trials; if "
                                  "it is not this configuration's divergence, check the metric's computation",
                       "warning")
    if numbers:
        report.add("metrics", f"every one the search reads is reported, as a number: {', '.join(required)}", "OK")


def _no_checkpoint(fn: Any, setup: _ProbeSetup, report: ProbeReport) -> None:
    """No checkpoint in the first epoch: a run goes on without one (a retried trial restarts from scratch, and
    load_model and predict have no model), so a warning; a failure for the built-in trainable, or when the
    trainable declares ``evaluate`` (the run's held-out test needs a checkpoint)."""
    text = (f"trainable {setup.trainable_ref} reported no checkpoint in its first epoch: a retried trial restarts "
            "from scratch, and load_model, predict and the held-out test have no model. Pass a folder: "
            "report(metrics, folder) (Ray-style: ray.tune.report(metrics, checkpoint=Checkpoint.from_directory("
            "folder)))" + ("; is fixed.checkpoint_every 0?" if setup.builtin else ""))
    if setup.builtin or getattr(fn, "evaluate", None) is not None:
        report.fail("checkpoint", text)
    else:
        report.add("checkpoint", text, "warning")
        report.add("resume", "not checked: no checkpoint")
        report.add("evaluate", "none declared: the run ends without a held-out test")


def _check_checkpoint(folder: Path, builtin: bool, report: ProbeReport) -> bool:
    from trainables.checkpoint import CheckpointError, read_checkpoint

    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        report.fail("checkpoint", "the checkpoint folder reported is empty: write the model's state into it "
                                  "before reporting it")
        return False
    size = sum(p.stat().st_size for p in files)
    names = ", ".join(str(p.relative_to(folder)) for p in files[:6]) + (", ..." if len(files) > 6 else "")
    loads = ""
    if builtin:
        try:
            read_checkpoint(folder)  # weights_only=True: what load_model, predict and the held-out test read
        except CheckpointError as exc:
            report.fail("checkpoint", f"{exc}")
            return False
        loads = "; loads with weights_only=True"
    report.add("checkpoint", f"{len(files)} file(s), {_size(size)} ({names}){loads}", "OK")
    return True


def _check_resume(fn: Any, config: dict[str, Any], epoch_keys: list[str], setup: _ProbeSetup, trial: _LocalTrial,
                  checkpoint: _Epoch, on_train_worker: bool, report: ProbeReport) -> None:
    """Resume the trial from its checkpoint for a second epoch, through the code a retried trial runs."""
    trial.start(resume_from=checkpoint.checkpoint)
    error, seconds = _run(fn, {**config, **dict.fromkeys(epoch_keys, 2)}, setup, trial, on_train_worker)
    fix = ("take `resume_from` (Ray-style: ray.tune.get_checkpoint()) and continue from the checkpoint's state "
           "and epoch")
    if error is not None:
        _, text = _raised(error, setup.trainable_ref, setup.plan)
        report.fail("resume", f"resuming from its checkpoint failed ({fix}): {text}")
        return
    if not trial.epochs:
        report.fail("resume", f"resumed from its checkpoint with epochs=2, trainable {setup.trainable_ref} reported "
                              f"nothing: a retried trial would end without a result; {fix}")
        return
    before, after = _epoch_of(checkpoint), _epoch_of(trial.epochs[0])
    if isinstance(before, int) and isinstance(after, int) and after <= before:
        text = (f"resumed from its epoch-{before} checkpoint, trainable {setup.trainable_ref} reported epoch {after}: "
                f"it started over; a retried or resumed trial would redo its epochs: {fix}")
        if setup.builtin:
            report.fail("resume", text)
        else:
            report.add("resume", text, "warning")
        return
    report.add("resume", f"continued from the checkpoint to epoch {after} ({seconds:.1f} s)", "OK")


def _check_evaluate(fn: Any, config: dict[str, Any], checkpoint: Path, data: Any, report: ProbeReport) -> None:
    evaluator = getattr(fn, "evaluate", None)
    if evaluator is None:
        report.add("evaluate", "none declared: the run ends without a held-out test")
        return
    test_rows = len(data.y_test) if hasattr(data, "y_test") else None
    try:
        metrics = evaluator(dict(config), checkpoint, data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the evaluator's failure is the finding
        report.fail("evaluate", f"evaluate(config, checkpoint, data) raised {_frames(exc)}")
        return
    numbers = {k: v for k, v in metrics.items() if is_finite_number(v)} if isinstance(metrics, Mapping) else {}
    if not numbers:
        report.fail("evaluate", f"evaluate(config, checkpoint, data) returned {metrics!r}: it must return "
                                "{metric: number}, recorded as test_<metric> after the run"
                                + (" (the test split is empty: data.test_size)" if test_rows == 0 else ""))
        return
    dropped = sorted(set(metrics) - set(numbers))
    on = f" on {test_rows} test rows" if test_rows else ""
    report.add("evaluate", " ".join(f"{k}={_value(v)}" for k, v in numbers.items()) + on
               + (f"; not numbers, dropped: {', '.join(map(str, dropped))}" if dropped else ""), "OK")


def _raised(error: BaseException, trainable: str, plan: TrialPlan) -> tuple[str, str]:
    """(check, text) for what the trainable raised: our own report checks by their message, the rest with frames."""
    if isinstance(error, (MetricNotReportedError, NothingReportedError)):
        return "metrics", str(error)
    text = f"trainable {trainable} raised {_frames(error)}"
    if "ray.train." in str(error) and plan.executor is Executor.DIRECT:
        text += ("\n(executor direct: a Ray-style trainable reports with ray.tune.report; ray.train.report needs "
                 "resources.executor: torch_trainer)")
    return "trainable", text


def _frames(error: BaseException) -> str:
    """``Type: message`` and the innermost frames of its traceback."""
    frames = traceback.extract_tb(error.__traceback__)[-TRACEBACK_FRAMES:]
    where = "".join(traceback.format_list(frames)).rstrip()
    return f"{type(error).__name__}: {error}" + (f"\n{where}" if where else "")


# ---------------------------------------------------------------- data, config, numbers
def _sliced(data: Any) -> tuple[Any, str | None]:
    """The first rows of each split (:data:`PROBE_ROWS`) and a line saying so; other data unchanged."""
    if data is None:
        return None, None
    from trainables.data import DataSplits

    if not isinstance(data, DataSplits):
        return data, None
    parts = {f"{x}_{part}": getattr(data, f"{x}_{part}")[:rows] for part, rows in PROBE_ROWS.items() for x in "xy"}
    sliced = dataclasses.replace(data, **parts)
    counts = ", ".join(f"{len(getattr(sliced, f'y_{p}'))} of {len(getattr(data, f'y_{p}'))} {p}" for p in PROBE_ROWS)
    return sliced, f"{data.name}: {counts} rows"


def _first_suggestion(spec: Spec) -> dict[str, Any]:
    """The parameters the run's searcher suggests first: the spec's sampler and seed, its first point if any."""
    import optuna

    from search.spec.registry import build_sampler
    from search.spec.space import DefineByRun

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory ..."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                sampler=build_sampler(spec.search.sampler.value, spec.search.seed, spec.search.sampler_options),
                directions=["minimize" if mode == "min" else "maximize" for _, mode in spec.objectives])
            for point in spec.search.points_to_evaluate[:1]:  # OptunaSearch enqueues them, in order
                study.enqueue_trial(dict(point))
            trial = study.ask()
            DefineByRun(spec.space)(trial)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return dict(trial.params)


def _config_line(sampled: Mapping[str, Any], config: Mapping[str, Any], epoch_keys: list[str], spec: Spec) -> str:
    source = ("the first of points_to_evaluate" if spec.search.points_to_evaluate else
              f"the {spec.search.sampler.value} sampler's first suggestion, seed {spec.search.seed}")
    fixed = {k: v for k, v in config.items() if k not in sampled and k not in epoch_keys}
    parts = [" ".join(f"{k}={_value(v)}" for k, v in sampled.items()) + f" ({source})" if sampled else "(no space)"]
    if epoch_keys:
        parts.append(" ".join(f"{k}=1" for k in epoch_keys) + " (the probe's)")
    if fixed:
        parts.append(" ".join(f"{k}={_value(v)}" for k, v in fixed.items()) + " (fixed)")
    return "; ".join(parts)


def _metrics_line(metrics: Mapping[str, Any], required: tuple[str, ...], seconds: float, shown: int = 8) -> str:
    needed = [k for k in required if k != "epoch"]
    others = [k for k, v in metrics.items() if k not in needed and k != "epoch" and is_finite_number(v)]
    extra = others[:max(0, shown - len(needed))]
    more = f" (+{len(others) - len(extra)} more)" if len(others) > len(extra) else ""
    return " ".join(f"{k}={_value(metrics.get(k))}" for k in needed + extra) + more + f"  ({seconds:.1f} s)"


def _epoch_of(epoch: _Epoch) -> Any:
    value = epoch.metrics.get("epoch")
    return int(value) if is_finite_number(value) and float(value).is_integer() else value


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} kB" if size < 1024 ** 2 else f"{size / 1024 ** 2:.1f} MB"
