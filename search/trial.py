"""Tune function trainables: run a ``trainables`` training function inside a trial.

Two executors, one contract (:mod:`trainables.api`):

* ``direct`` trains in the Tune trial process: no process group, ~0.1 s per trial.
* ``torch_trainer`` trains on Ray Train ``TorchTrainer`` workers: DDP, GPUs. By default
  the workers serve trial after trial (:mod:`search.pool`). With ``reuse_workers: false``,
  :func:`run_torch_trial` builds a ``TorchTrainer`` inside each trial (the Train V2
  pattern): a Train run per trial named by the trial id, so a retried trial finds its
  own checkpoints; rank 0's metrics reach Tune through ``TuneReportCallback``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from search.registry import resolve_trainable
from search.resources import TrialPlan
from trainables.api import call_training_function
from trainables.distributed import WorldInfo

__all__ = ["TrialSetup", "run_direct_trial", "run_torch_trial", "TRAIN_RUNS_DIR"]

#: Sub-folder of the experiment holding each TorchTrainer trial's Train run.
TRAIN_RUNS_DIR = "train_runs"


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

    def load_data(self) -> Any:
        return ray.get(self.data_ref) if self.data_ref is not None else None


@contextlib.contextmanager
def _resume_dir(checkpoint: Any) -> Iterator[str | None]:
    """The folder to resume from: the latest checkpoint, or an earlier one if it is damaged."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as folder:
        yield usable_checkpoint(Path(folder))


def usable_checkpoint(latest: Path) -> str | None:
    """``latest`` if its ``checkpoint.pt`` loads, else the newest earlier sibling that does.

    Checkpoint folders of one trial sort by name in the order they were written
    (``checkpoint_000007``, or Train's timestamped names). A folder without
    ``checkpoint.pt`` holds a user's own format, which we cannot check: it is used as is.
    """
    from trainables.checkpoint import CheckpointError, read_checkpoint
    from trainables.tasks import CHECKPOINT_FILE

    earlier = sorted((p for p in latest.parent.glob("checkpoint_*") if p.is_dir() and p.name < latest.name), reverse=True)
    for folder in [latest, *earlier]:
        if not (folder / CHECKPOINT_FILE).exists():
            return str(folder)
        try:
            read_checkpoint(folder / CHECKPOINT_FILE)
            return str(folder)
        except CheckpointError as exc:
            print(f"warning: {exc}; falling back to the previous checkpoint", file=sys.stderr, flush=True)
    print(f"warning: no usable checkpoint beside {latest}; the trial restarts from scratch", file=sys.stderr, flush=True)
    return None


class MetricNotReportedError(KeyError):
    """The trainable's reports lack a metric the spec's search needs."""

    def __str__(self) -> str:
        return str(self.args[0])


def checked_report(report: Any, required: tuple[str, ...], trainable: str) -> Any:
    """Wrap ``report`` to check the first report has every required metric.

    Without this, Tune fails the whole experiment with its own traceback when a
    trainable (one that does not declare ``metrics``) never reports the spec's metric.
    """
    checked = False

    def wrapper(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
        nonlocal checked
        if not checked:
            missing = [m for m in required if m not in metrics]
            if missing:
                from search.errors import did_you_mean

                hints = "".join(did_you_mean(m, metrics) for m in missing)
                raise MetricNotReportedError(
                    f"trainable {trainable} reported {sorted(metrics)} but the spec needs {missing}{hints}: "
                    "fix the spec's metric (or checkpoint.score), or report it (ASHA also needs 'epoch')")
            checked = True
        report(metrics, checkpoint_dir)

    return wrapper


def _tune_report(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
    checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
    tune.report(dict(metrics), checkpoint=checkpoint)


def run_direct_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train in this process; Tune owns the checkpoints."""
    fn = resolve_trainable(setup.trainable_ref, setup.search_paths)
    with _resume_dir(_resume_source()) as resume:
        report = checked_report(_tune_report, setup.required_metrics, setup.trainable_ref)
        call_training_function(fn, config, report, data=setup.load_data(), resume_from=resume, world=WorldInfo())


def _resume_source() -> Any:
    """Tune's latest checkpoint for this trial, or a newer one found in the trial's folder.

    After a driver is killed (SIGKILL), the experiment state on disk can predate the
    trial's latest checkpoints: Tune then offers an older one, or none, though newer
    ones are on disk. Checkpoint folders of a trial sort in the order they were written.
    """
    known = tune.get_checkpoint()
    trial_dir = tune.get_context().get_trial_dir()
    folders = sorted(Path(trial_dir).glob("checkpoint_*")) if trial_dir and Path(trial_dir).is_dir() else []
    if not folders:
        return known
    newest = folders[-1]
    if known is not None:
        path = Path(known.path)
        if path.parent != newest.parent or path.name >= newest.name:
            return known
    print(f"note: resuming from {newest}, newer than the experiment state knew", file=sys.stderr, flush=True)
    return tune.Checkpoint.from_directory(str(newest))


def _train_report(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
    checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
    ray.train.report(dict(metrics), checkpoint=checkpoint)


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Train worker; the process group is already initialised."""
    setup: TrialSetup = loop_config["setup"]
    config = dict(loop_config["config"])
    fn = resolve_trainable(setup.trainable_ref, setup.search_paths)
    if setup.plan.use_gpu and "device" in getattr(fn, "config_keys", ()):
        from ray.train.torch import get_device

        config["device"] = str(get_device())
    ctx = ray.train.get_context()
    world = WorldInfo(ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank())
    with _resume_dir(ray.train.get_checkpoint()) as resume:
        report = checked_report(_train_report, setup.required_metrics, setup.trainable_ref)
        call_training_function(fn, config, report, data=setup.load_data(), resume_from=resume, world=world)


def run_torch_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Drive a TorchTrainer for this trial; its workers report to Tune via rank 0."""
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    plan = setup.plan
    trial_id = tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": config, "setup": setup},
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.num_workers, use_gpu=plan.use_gpu, resources_per_worker=plan.worker_resources
        ),
        run_config=ray.train.RunConfig(
            # A stable name per trial: a retried trial resumes from its own latest checkpoint.
            name=trial_id,
            storage_path=f"{setup.experiment_path}/{TRAIN_RUNS_DIR}",
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=setup.checkpoint_num_to_keep,
                checkpoint_score_attribute=setup.checkpoint_score,
                checkpoint_score_order=setup.checkpoint_mode,
            ),
            # Retries belong to Tune (failure.max_retries): one retry policy, not two.
            failure_config=ray.train.FailureConfig(max_failures=0),
        ),
    )
    trainer.fit()
