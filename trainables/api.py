"""The contract between a training function and whoever drives it.

A *training function* is a plain callable ``fn(config, report, **context) -> Any``:

* ``config`` is a flat mapping of hyperparameters and settings (what a search samples
  plus its fixed values);
* ``report`` is called once per epoch with that epoch's metrics, and optionally the
  path of a directory holding a checkpoint written for that epoch;
* ``context`` keywords are optional: a function that declares ``data``, ``resume_from``
  or ``world`` parameters receives them (see :func:`call_training_function`); one that
  does not is called with ``(config, report)`` alone, so a user's own function needs
  nothing from this package.

Nothing here imports ray, optuna or pydantic: the orchestrator adapts *its* reporting
API to :class:`ReportFn`, never the other way round.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ReportFn",
    "TrainingFunction",
    "CONTEXT_KEYWORDS",
    "call_training_function",
    "checkpoint_ranking",
    "checkpoint_every_epoch",
    "report_wrapper",
    "null_report",
    "ranked_report",
]


class ReportFn(Protocol):
    """Receives one epoch's metrics and, optionally, a checkpoint directory.

    The metrics must contain ``epoch`` (1-based). The checkpoint directory, when
    given, is owned by the caller of ``report`` until ``report`` returns; the
    receiver copies or moves what it keeps.

    A receiver that keeps only its best checkpoints may say by which metric, as the attributes
    ``checkpoint_score`` (a metric name) and ``checkpoint_mode`` (``"min"`` or ``"max"``):
    :class:`~trainables.tasks.ReportCallback` then also saves a checkpoint at every epoch that
    is at least as good as the best so far, so the best epoch always has one, whatever
    ``checkpoint_every`` is (see :func:`ranked_report`).

    A receiver that needs every epoch's checkpoint says so with ``checkpoint_every_epoch = True``
    (Population Based Training copies a trial's *latest* checkpoint into another trial):
    :class:`~trainables.tasks.ReportCallback` then saves one at every epoch, whatever its
    ``checkpoint_every`` and ``checkpoint_every_s`` (see :func:`checkpoint_every_epoch`).
    """

    def __call__(self, metrics: Mapping[str, float], checkpoint_dir: str | Path | None = None) -> None: ...


def ranked_report(report: ReportFn, score: str | None, mode: str | None, *, every_epoch: bool = False) -> ReportFn:
    """``report`` with the metric its receiver ranks checkpoints by attached, and whether it needs a checkpoint
    at every epoch (see :class:`ReportFn`). A callable that takes no attributes (a bound method) is wrapped in a
    function that calls it: use the returned one."""
    try:
        report.checkpoint_score = score  # type: ignore[attr-defined]
    except AttributeError:
        inner = report

        def report(metrics: Mapping[str, float], checkpoint_dir: str | Path | None = None) -> None:
            inner(metrics, checkpoint_dir)

        report.checkpoint_score = score  # type: ignore[attr-defined]
    report.checkpoint_mode = mode  # type: ignore[attr-defined]
    report.checkpoint_every_epoch = every_epoch  # type: ignore[attr-defined]
    return report


def checkpoint_ranking(report: ReportFn) -> tuple[str | None, str | None]:
    """``(score, mode)`` the receiver of ``report`` ranks checkpoints by, or ``(None, None)``."""
    return getattr(report, "checkpoint_score", None), getattr(report, "checkpoint_mode", None)


def checkpoint_every_epoch(report: ReportFn) -> bool:
    """The receiver of ``report`` needs a checkpoint at every epoch (PBT: it copies a trial's latest)."""
    return getattr(report, "checkpoint_every_epoch", False) is True


def report_wrapper(wrapper: ReportFn, report: ReportFn) -> ReportFn:
    """``wrapper`` (a function of yours that calls ``report``) saying what ``report``'s receiver said: its
    checkpoint ranking and whether it needs every epoch's checkpoint (see :class:`ReportFn`). Without them
    :class:`~trainables.tasks.ReportCallback` cannot tell the best epoch and saves every epoch's checkpoint."""
    return ranked_report(wrapper, *checkpoint_ranking(report), every_epoch=checkpoint_every_epoch(report))


TrainingFunction = Callable[..., Any]

#: Keyword arguments a training function may declare to receive run context.
#: ``data``: pre-loaded :class:`trainables.data.DataSplits` shared by all trials;
#: ``resume_from``: a checkpoint directory to continue from, or None;
#: ``world``: a :class:`trainables.distributed.WorldInfo` (rank, world size).
CONTEXT_KEYWORDS = ("data", "resume_from", "world")


def null_report(metrics: Mapping[str, float], checkpoint_dir: str | Path | None = None) -> None:
    """A :class:`ReportFn` that drops everything (for standalone use)."""


def accepted_context(fn: TrainingFunction) -> frozenset[str]:
    """The context keywords ``fn`` declares (all of them if it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins, C callables: pass nothing extra
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(CONTEXT_KEYWORDS)
    names = {p.name for p in params}
    return frozenset(k for k in CONTEXT_KEYWORDS if k in names)


def call_training_function(
    fn: TrainingFunction,
    config: Mapping[str, Any],
    report: ReportFn,
    **context: Any,
) -> Any:
    """Call ``fn(config, report, ...)`` passing only the context keywords it declares."""
    unknown = set(context) - set(CONTEXT_KEYWORDS)
    if unknown:
        raise TypeError(f"unknown context keywords {sorted(unknown)}; expected some of {CONTEXT_KEYWORDS}")
    wanted = accepted_context(fn)
    return fn(dict(config), report, **{k: v for k, v in context.items() if k in wanted})
