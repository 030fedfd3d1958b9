"""What every trial gets besides its config, and the check on what its trainable reports."""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.experiment import CHECKPOINT_STATE_KEY
from search.spec.errors import did_you_mean
from search.trials.resources import TrialPlan

__all__ = ["TrialSetup", "MetricNotReportedError", "CheckedReport", "EpochMode", "NothingReportedError",
           "call_ray_style", "checked_report", "function_config", "tracked", "epoch_state", "plain_metrics", "train_api_routed", "tune_session_routed"]


@dataclass(frozen=True)
class TrialSetup:
    """What every trial needs besides its config; shipped once through the object store."""

    trainable_ref: str
    search_paths: tuple[str, ...]
    data_ref: Any  # ray.ObjectRef of the pre-loaded DataSplits, or None
    plan: TrialPlan
    experiment_path: str
    checkpoint_num_to_keep: int | None
    checkpoint_score: str
    checkpoint_mode: str
    required_metrics: tuple[str, ...] = ()  # what the searcher and scheduler read from every report
    tracked_params: tuple[str, ...] = ()  # PBT: parameters whose values over epochs ride with each checkpoint

    @property
    def checkpoint_every_epoch(self) -> bool:
        """PBT copies a trial's latest checkpoint into another: every epoch needs its own (see trainables.api)."""
        return bool(self.tracked_params)

    @property
    def builtin(self) -> bool:
        """The trainable is one of search's own (its checkpoints are ``trainables`` checkpoints we may check)."""
        from search.spec.registry import TRAINABLES

        return self.trainable_ref in TRAINABLES.values()

    def load_data(self) -> Any:
        if self.data_ref is None:
            return None
        import ray

        return ray.get(self.data_ref)


class MetricNotReportedError(KeyError):
    """The trainable's reports lack a metric the spec's search needs."""

    def __str__(self) -> str:
        return str(self.args[0])


#: Checkpoint metadata key under which a trial's epoch bookkeeping travels with its checkpoints, so a retried or
#: resumed trial counts on from where its checkpoint was taken.
EPOCH_STATE_KEY = CHECKPOINT_STATE_KEY


class EpochMode(str, enum.Enum):
    """Where a trial's ``epoch`` comes from."""

    OWN = "own"          # the trainable reports a 1-based epoch: used as it is
    COUNTED = "counted"  # it reports none: search counts its reports, 1, 2, ...
    SHIFTED = "shifted"  # its first epoch was 0: every epoch is shifted by one


class CheckedReport:
    """``report`` with our checks and bookkeeping: plain numbers, the required metrics, a 1-based ``epoch``.

    Called as ``report(metrics, checkpoint)``; ``checkpoint`` is whatever the wrapped report takes (a
    folder, or a Ray ``Checkpoint`` for a Ray-style trainable) and is passed on unchanged. A trainable
    that reports no ``epoch`` gets one (its reports counted from 1), and a first ``epoch`` of 0 shifts
    every epoch by one: ASHA's milestones and the progress lines count 1-based epochs, and a 0-based
    count would cut every trial one epoch late and say "completed 9 epochs" after 10. Either is said
    once, on the trial's stderr. ``resumed`` is the bookkeeping stored with the checkpoint the trial
    resumes from (:func:`epoch_state`).

    ``params`` (PBT's mutated parameters, as this trial runs them): every checkpoint also carries the
    schedule of its model, ``[[first epoch, params], ...]``: the resumed checkpoint's (under PBT maybe
    another trial's), and this run's values from its first epoch when they differ from the last.
    """

    def __init__(self, report: Any, required: tuple[str, ...], trainable: str,
                 resumed: Mapping[str, Any] | None = None, *, score: str | None = None,
                 mode: str | None = None, params: Mapping[str, Any] | None = None, every_epoch: bool = False) -> None:
        self.report, self.required, self.trainable = report, required, trainable
        self.params = dict(params) if params else None
        self.schedule: list[list[Any]] = [list(s) for s in (resumed or {}).get("schedule") or []]
        # What Tune keeps the best checkpoints by (trainables.api.ReportFn): the built-in trainables also
        # checkpoint every epoch at least as good as the best so far, so the best epoch has its checkpoint.
        self.checkpoint_score, self.checkpoint_mode = score, mode
        self.checkpoint_every_epoch = every_epoch  # PBT copies a trial's latest checkpoint: save every epoch's
        self.checked = False
        self.reports = 0
        self.mode: EpochMode | None = EpochMode(resumed["mode"]) if resumed else None
        self.epoch = int(resumed["epoch"]) if resumed else 0  # the last epoch reported, as search numbers it

    def __call__(self, metrics: Mapping[str, Any], checkpoint: Any = None) -> None:
        metrics = self._numbered(plain_metrics(metrics))
        if not self.checked:
            missing = [m for m in self.required if m not in metrics]
            if missing:
                hints = "".join(did_you_mean(m, metrics) for m in missing)
                raise MetricNotReportedError(
                    f"trainable {self.trainable} reported {sorted(metrics)} but the spec needs {missing}{hints}: "
                    "fix the spec's metric (or checkpoint.score), or report it")
            self.checked = True
        if self.reports == 0 and self.params is not None and (not self.schedule or self.schedule[-1][1] != self.params):
            self.schedule.append([metrics.get("epoch", self.epoch), self.params])
        self.reports += 1
        if checkpoint is not None and (self.mode is not EpochMode.OWN or self.params is not None):
            state = {"mode": self.mode.value, "epoch": self.epoch}
            if self.params is not None:  # PBT: the model's schedule, and the epoch it is saved at (results check it)
                state.update(schedule=self.schedule, reported=metrics.get("epoch"))
            _remember_epoch(checkpoint, state)
        self.report(metrics, checkpoint)

    def _numbered(self, metrics: dict[str, Any]) -> dict[str, Any]:
        epoch = metrics.get("epoch")
        if self.mode is None:
            if epoch is None:
                self.mode = EpochMode.COUNTED
                _say(f"note: trainable {self.trainable} reports no 'epoch': search numbers its reports 1, 2, ... "
                     "as its epochs (ASHA and the progress lines count them)")
            elif isinstance(epoch, (int, float)) and not isinstance(epoch, bool) and epoch == 0:
                self.mode = EpochMode.SHIFTED
                _say(f"note: trainable {self.trainable} counts epochs from 0: search adds 1 to each (epochs are "
                     "1-based here, for ASHA's milestones and the progress lines)")
            else:
                self.mode = EpochMode.OWN
        if self.mode is EpochMode.COUNTED:
            self.epoch += 1
            return {**metrics, "epoch": self.epoch}
        if self.mode is EpochMode.SHIFTED and isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
            self.epoch = epoch + 1
            return {**metrics, "epoch": self.epoch}
        return metrics


def checked_report(report: Any, required: tuple[str, ...], trainable: str,
                   resumed: Mapping[str, Any] | None = None, *, score: str | None = None,
                   mode: str | None = None, params: Mapping[str, Any] | None = None,
                   every_epoch: bool = False) -> CheckedReport:
    """Wrap ``report`` (see :class:`CheckedReport`).

    Without the metric check, Tune fails the whole experiment with its own traceback when a
    trainable (one that does not declare ``metrics``) never reports the spec's metric.
    """
    return CheckedReport(report, required, trainable, resumed, score=score, mode=mode, params=params,
                         every_epoch=every_epoch)


def function_config(fn: Any, config: Mapping[str, Any], setup: TrialSetup) -> dict[str, Any]:
    """The config ``fn`` is called with: under PBT, one that declares ``checkpoint_every_s`` (the built-in
    trainable, a wrapper of it) gets 0, a checkpoint every epoch, even through a wrapper of ``report`` that
    drops the report's own request (:func:`trainables.api.checkpoint_every_epoch`)."""
    if setup.checkpoint_every_epoch and "checkpoint_every_s" in (getattr(fn, "config_keys", None) or ()):
        return {**config, "checkpoint_every_s": 0}
    return dict(config)


def tracked(setup: TrialSetup, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values of the parameters whose schedule is kept (PBT's mutated ones) in ``config``; None: none kept."""
    return {name: config[name] for name in setup.tracked_params if name in config} or None


def epoch_state(checkpoint: Any) -> dict[str, Any] | None:
    """The epoch bookkeeping stored with a Ray ``Checkpoint`` by :class:`CheckedReport`, or None."""
    if checkpoint is None:
        return None
    try:
        state = checkpoint.get_metadata().get(EPOCH_STATE_KEY)
    except Exception:  # noqa: BLE001 - unreadable metadata: count as a new trial would
        return None
    return state if isinstance(state, dict) and state.get("mode") in {m.value for m in EpochMode} else None


def _remember_epoch(checkpoint: Any, state: dict[str, Any]) -> None:
    """Store ``state`` in the checkpoint's metadata (Ray's ``.metadata.json``, kept with the checkpoint's files)."""
    if isinstance(checkpoint, (str, Path)):
        from ray.train import Checkpoint

        checkpoint = Checkpoint.from_directory(str(checkpoint))
    checkpoint.update_metadata({EPOCH_STATE_KEY: state})


class NothingReportedError(RuntimeError):
    """A Ray-style trainable returned without one report reaching search."""


def call_ray_style(fn: Any, config: Mapping[str, Any], report: Any, **context: Any) -> None:
    """Call a Ray-style trainable ``fn(config)`` (plus the context keywords it declares), then check it reported.

    ``report`` counts what arrived (``reports``) and names the trainable (``trainable``): a
    :class:`CheckedReport`, or the pool's relay on a worker. Its reports reach it through the Ray API it calls, routed by :func:`tune_session_routed` or
    :func:`train_api_routed` around this call.
    """
    from trainables.api import accepted_context

    wanted = accepted_context(fn)
    fn(dict(config), **{k: v for k, v in context.items() if k in wanted})
    if report.reports == 0:
        raise NothingReportedError(
            f"trainable {report.trainable} returned without reporting: a function of one argument (config) reports "
            "with ray.tune.report (executor direct) or ray.train.report (executor torch_trainer); a call made "
            "outside a trial (a thread of its own, a subprocess) or a name imported before the trial started "
            "(`from ray.tune import report` on Train workers) does not reach search")


@contextlib.contextmanager
def tune_session_routed(required: tuple[str, ...], trainable: str,
                        params: Mapping[str, Any] | None = None) -> Iterator[CheckedReport]:
    """In a Tune trial: ``ray.tune.report`` goes through a :class:`CheckedReport`, then on to Tune, while inside.

    ``ray.tune.report`` (under any name it was imported as) calls the trial's session's ``report``; the
    session object is this trial's own, so overriding that one method on it for the duration of the call
    catches every report and changes nothing for any other trial. ``tune.get_checkpoint()`` is Tune's
    own, untouched; the epoch bookkeeping resumes from the checkpoint's metadata. (Ray internals, read on
    Ray 2.60: ``tune.report`` is ``get_session().report(metrics, checkpoint=...)`` in
    ``ray/tune/trainable/trainable_fn_utils.py``.)
    """
    import ray.tune

    from search.internals import tune_session

    session = tune_session()  # the session tune.report itself uses
    original = session.report
    report = checked_report(lambda metrics, checkpoint=None: original(metrics, checkpoint=checkpoint), required,
                            trainable, epoch_state(ray.tune.get_checkpoint()), params=params)
    session.report = lambda metrics, checkpoint=None: report(metrics, checkpoint)
    try:
        yield report
    finally:
        vars(session).pop("report", None)


@contextlib.contextmanager
def train_api_routed(report: Any, checkpoint: Any) -> Iterator[dict[str, Any]]:
    """On a Ray Train worker: ``ray.train.report`` / ``get_checkpoint`` (and ``ray.tune.report`` /
    ``get_checkpoint``, which on a Train worker would warn and return None) go to ``report(metrics,
    checkpoint)`` and return ``checkpoint``, while inside; yields the last report's other arguments
    (upload mode, ...), for Train's own report.

    Train V2 answers ``ray.train.report`` / ``get_checkpoint`` through one per-worker object, "the
    TrainFnUtils ... can be patched if new user APIs behaviors is wanted"
    (``ray/train/v2/_internal/execution/train_fn_utils.py``, Ray 2.60): its two methods are overridden
    on that object for the call; ``get_context``, collectives and datasets stay Train's. The worker
    process is ours alone, one trial at a time. ``ray.tune.report`` is replaced by name
    (``tune.report(...)``, as Ray's tutorials call it); a copy imported earlier (``from ray.tune import
    report``) still warns, and :func:`call_ray_style` says so.
    """
    import ray.tune

    from search.internals import train_fn_utils

    utils = train_fn_utils()
    options: dict[str, Any] = {}

    def routed(metrics: Mapping[str, Any], checkpoint: Any = None, **other: Any) -> None:
        options.clear()
        options.update(other)
        report(metrics, checkpoint)

    saved = ray.tune.report, ray.tune.get_checkpoint
    utils.report, utils.get_checkpoint = routed, lambda: checkpoint
    ray.tune.report = lambda metrics, *, checkpoint=None: report(metrics, checkpoint)
    ray.tune.get_checkpoint = lambda: checkpoint
    try:
        yield options
    finally:
        for name in ("report", "get_checkpoint"):
            vars(utils).pop(name, None)
        ray.tune.report, ray.tune.get_checkpoint = saved


#: Notes already said by this process: a trial process serves trial after trial (``reuse_actors``), and the
#: run's log needs a note once, not once per trial.
_said: set[str] = set()


def _say(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr, flush=True)


def plain_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics with every real number as a Python ``int`` or ``float``.

    ``loss.cpu().numpy()`` is an ``np.float32`` and ``loss.detach()`` a 0-d tensor: the searcher, the
    scheduler and the progress lines read plain numbers (they dropped these, so Optuna was told the
    last epoch's value and cut trials reached it with no values). Anything else is left as it is.
    """
    import numbers

    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None or isinstance(value, (str, int, float)):
            out[key] = value
        elif isinstance(value, numbers.Integral):
            out[key] = int(value)
        elif isinstance(value, numbers.Real):
            out[key] = float(value)
        elif (hasattr(value, "item") and getattr(value, "ndim", None) == 0) or (
                hasattr(value, "numel") and callable(value.numel) and value.numel() == 1):
            item = value.item()  # numpy 0-d arrays and scalars, torch 0-d and one-element tensors
            out[key] = item if isinstance(item, (bool, int, float)) else value
        else:
            out[key] = value
    return out
