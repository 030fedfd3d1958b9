"""Built-in training functions: what ``search`` runs per trial, usable on their own.

Each follows the contract in :mod:`trainables.api`: ``fn(config, report, *, data=None,
resume_from=None, world=None)``. Each also declares the metrics it reports
(``fn.metrics``) and the config keys it accepts (``fn.config_keys``), so that a spec
can be checked before anything runs.

This module imports no torch: a driver checks a spec and starts its trials with what is declared
here, and only a trial (or a refit, an evaluation) imports the training itself,
:mod:`trainables.task_training`, on its first call. ``ReportCallback``, ``seed_everything``,
``rank_seed`` and ``majority_rate`` are that module's, importable from here too (PEP 562); the
config is :mod:`trainables.task_config`'s.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.api import ReportFn, null_report
from trainables.files import CHECKPOINT_FILE, PREPROCESSING_FILE, SELECTION_FILE
from trainables.task_config import OPTIMIZER_NAMES, ConfigError, FeatureSelectionConfig

if TYPE_CHECKING:
    from trainables.data import DataSplits
    from trainables.distributed import WorldInfo
    from trainables.task_training import ReportCallback, majority_rate, rank_seed, seed_everything

__all__ = ["FeatureSelectionConfig", "ConfigError", "train_feature_selection", "ReportCallback", "seed_everything",
           "rank_seed", "evaluate_feature_selection", "refit_feature_selection", "majority_rate", "OPTIMIZER_NAMES",
           "CHECKPOINT_FILE", "SELECTION_FILE", "PREPROCESSING_FILE"]

#: Names defined by :mod:`trainables.task_training`, imported from there on first use.
_TRAINING_NAMES = ("ReportCallback", "seed_everything", "rank_seed", "majority_rate")


def __getattr__(name: str) -> Any:
    if name not in _TRAINING_NAMES:
        raise AttributeError(f"module 'trainables.tasks' has no attribute {name!r}")
    value = getattr(importlib.import_module("trainables.task_training"), name)
    globals()[name] = value
    return value


def train_feature_selection(
    config: Mapping[str, Any],
    report: ReportFn = null_report,
    *,
    data: DataSplits | None = None,
    resume_from: str | Path | None = None,
    world: WorldInfo | None = None,
) -> dict[str, Any]:
    """Train a feature-selection classifier; the built-in trainable of ``search``.

    Args:
        config: keys of :class:`FeatureSelectionConfig` (unknown keys are an error).
        report: called every epoch with the metrics in :attr:`train_feature_selection.metrics`.
        data: pre-loaded splits (otherwise ``config["data"]`` is loaded). Their
            :attr:`~DataSplits.preprocessing` is saved in every checkpoint; splits built by
            hand have none, and their checkpoints then lack ``preprocessing.json``.
        resume_from: a checkpoint folder (or ``checkpoint.pt``) to continue from.
        world: rank and world size; under an initialised process group the model is
            wrapped in DDP, the train set sharded and validation metrics all-reduced.

    Returns:
        ``status``, ``epochs``, the best epoch's metrics, test accuracy and the selected features.
    """
    from trainables.task_training import train_feature_selection as train

    return train(config, report, data=data, resume_from=resume_from, world=world)


def evaluate_feature_selection(config: Mapping[str, Any], checkpoint: str | Path, data: DataSplits | None = None,
                               part: str = "test") -> dict[str, float]:
    """A checkpoint's model on a held-out part of the data (default the test split): its metrics.

    The evaluation function of :func:`train_feature_selection` (its ``evaluate`` attribute);
    :func:`trainables.task_training.evaluate_feature_selection` says more.
    """
    from trainables.task_training import evaluate_feature_selection as evaluate

    return evaluate(config, checkpoint, data, part)


def refit_feature_selection(config: Mapping[str, Any], data: DataSplits | None, epochs: int,
                            out_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Train the chosen configuration once more, on train + validation, for ``epochs``; save it in ``out_dir``.

    The refit function of :func:`train_feature_selection` (its ``refit`` attribute);
    :func:`trainables.task_training.refit_feature_selection` says more.
    """
    from trainables.task_training import refit_feature_selection as refit

    return refit(config, data, epochs, out_dir, checkpoint)


train_feature_selection.metrics = (  # type: ignore[attr-defined]
    "epoch", "train_loss", "train_accuracy", "train_task_loss", "train_penalty", "val_loss", "val_accuracy",
    "val_task_loss", "val_penalty", "num_selected", "expected_open_gates", "grad_norm_mean", "grad_norm_max",
    "clip_fraction", "epochs_since_improvement", "lr", "epoch_time_s", "stop_reason", "majority_rate",
)
#: What a restore can change (``set_hyperparameters``): PBT mutates only these by default.
train_feature_selection.mutable = ("lr", "selector_lr_ratio", "sparsity_lambda", "weight_decay", "max_norm")  # type: ignore[attr-defined]
train_feature_selection.config_keys = tuple(f.name for f in dataclasses.fields(FeatureSelectionConfig))  # type: ignore[attr-defined]
#: Checks a config as a trial would (``validate`` runs it on the spec's fixed values): raises ConfigError.
train_feature_selection.validate_config = FeatureSelectionConfig.from_mapping  # type: ignore[attr-defined]
train_feature_selection.evaluate = evaluate_feature_selection  # type: ignore[attr-defined]
train_feature_selection.refit = refit_feature_selection  # type: ignore[attr-defined]
