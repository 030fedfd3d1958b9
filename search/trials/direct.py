"""The ``direct`` executor: train in the Tune trial process (no process group, ~0.1 s per trial).

Tune owns the checkpoints. A Ray-style trainable, ``fn(config)`` calling ``ray.tune.report`` and
``ray.tune.get_checkpoint`` itself (Ray Tune's own examples), runs here unchanged: its reports pass our
checks on the way to Tune (:func:`search.trials.setup.tune_session_routed`). The other executor, ``torch_trainer``, trains on Ray Train
workers: kept across trials (:mod:`search.trials.pool`) or one ``TorchTrainer`` per trial
(:mod:`search.trials.torch_trainer`). Both keep the contract of :mod:`trainables.api`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune

from search.spec.registry import is_ray_style, resolve_trainable
from search.trials.checkpoints import resume_dir
from search.trials.setup import (TrialSetup, call_ray_style, checked_report, epoch_state, function_config, tracked,
                                 tune_session_routed)
from trainables.api import call_training_function

__all__ = ["run_direct_trial", "tune_report"]


def tune_report(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
    """Report an epoch to Tune, with the checkpoint folder (Tune copies it into the trial's storage)."""
    checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
    tune.report(dict(metrics), checkpoint=checkpoint)


def run_direct_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train in this process; Tune owns the checkpoints."""
    from trainables.distributed import WorldInfo  # torch: in the trial, not in the driver that pickles this

    fn = resolve_trainable(setup.trainable_ref, setup.search_paths)
    if is_ray_style(fn):
        with tune_session_routed(setup.required_metrics, setup.trainable_ref, tracked(setup, config)) as report:
            call_ray_style(fn, config, report, data=setup.load_data(), world=WorldInfo())
        return
    checkpoint = tune.get_checkpoint()
    with resume_dir(checkpoint, ours=setup.builtin) as resume:
        report = checked_report(tune_report, setup.required_metrics, setup.trainable_ref, epoch_state(checkpoint),
                                score=setup.checkpoint_score, mode=setup.checkpoint_mode, params=tracked(setup, config),
                                every_epoch=setup.checkpoint_every_epoch)
        call_training_function(fn, function_config(fn, config, setup), report, data=setup.load_data(),
                               resume_from=resume, world=WorldInfo())
