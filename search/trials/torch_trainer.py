"""The ``torch_trainer`` executor with ``reuse_workers: false``: a ``TorchTrainer`` per trial.

The Train V2 pattern: a Tune function trainable builds and fits a ``TorchTrainer``, a Train
run per trial named by the trial id (so a retried trial finds its own checkpoints); rank
0's metrics reach Tune through ``TuneReportCallback``. A Ray-style trainable (``fn(config)`` calling
``ray.train.report`` / ``get_checkpoint``) runs here unchanged, its reports checked on the way
(:func:`search.trials.setup.train_api_routed`). Costs about 15 s per trial in
start-up; the default keeps workers across trials instead (:mod:`search.trials.pool`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
from ray import tune

from search.spec.registry import is_ray_style, resolve_trainable
from search.experiment import TRAIN_RUNS_DIR
from search.trials.checkpoints import resume_dir
from search.trials.setup import (TrialSetup, call_ray_style, checked_report, epoch_state, function_config,
                                 train_api_routed)
from trainables.api import call_training_function

__all__ = ["run_torch_trial"]


def _train_report(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
    checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
    ray.train.report(dict(metrics), checkpoint=checkpoint)


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Train worker; the process group is already initialised."""
    from trainables.distributed import WorldInfo  # torch: on the worker, not in the driver that pickles this

    setup: TrialSetup = loop_config["setup"]
    config = dict(loop_config["config"])
    fn = resolve_trainable(setup.trainable_ref, setup.search_paths)
    if setup.plan.use_gpu and "device" in getattr(fn, "config_keys", ()):
        from ray.train.torch import get_device

        config["device"] = str(get_device())
    ctx = ray.train.get_context()
    world = WorldInfo(ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank())
    checkpoint = ray.train.get_checkpoint()
    if is_ray_style(fn):  # ray.train.report goes through our checks, then on to Train (whose callback tells Tune)
        from search.internals import train_fn_utils

        native = train_fn_utils().report
        # `options` (bound below) carries the caller's other report arguments (upload mode, ...) to Train's own.
        report = checked_report(lambda metrics, ckpt=None: native(metrics, ckpt, **options),
                                setup.required_metrics, setup.trainable_ref, epoch_state(checkpoint))
        with train_api_routed(report, checkpoint) as options:
            call_ray_style(fn, config, report, data=setup.load_data(), world=world)
        return
    with resume_dir(checkpoint, ours=setup.builtin) as resume:
        report = checked_report(_train_report, setup.required_metrics, setup.trainable_ref, epoch_state(checkpoint),
                                score=setup.checkpoint_score, mode=setup.checkpoint_mode,
                                every_epoch=setup.checkpoint_every_epoch)
        call_training_function(fn, function_config(fn, config, setup), report, data=setup.load_data(),
                               resume_from=resume, world=world)


def run_torch_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Drive a TorchTrainer for this trial; its workers report to Tune via rank 0."""
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    plan = setup.plan
    trial_id = tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": config, "setup": setup},
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.num_workers, use_gpu=plan.use_gpu, resources_per_worker=plan.worker_resources
        ),
        torch_config=TorchConfig(backend=plan.ddp_backend),
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
