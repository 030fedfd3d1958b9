"""trainables: a small PyTorch training library, usable on its own (no Ray needed).

The pieces: :class:`Trainer` (``fit`` / ``train_epoch`` / ``evaluate`` / ``train_step``, and
``train`` with the seed trainer's names), callbacks (:mod:`trainables.callbacks`),
:class:`FeatureSelectionTrainer`, :class:`OptionsTrainer` (keyword options), snapshots
(:mod:`trainables.snapshot`), data loading
(:mod:`trainables.data`), DDP for your own model (:func:`prepare_model`, :func:`prepare_data_loader`)
and built-in training functions (:mod:`trainables.tasks`)
that an orchestrator calls through the contract in :mod:`trainables.api`.

The names below are imported on first use (PEP 562): ``import trainables.files`` (or
``trainables.suggest``) loads no torch, so :mod:`search` can read checkpoint folders offline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainables.api import ReportFn, call_training_function, null_report
    from trainables.callbacks import (
        Callback,
        EarlyStopping,
        GradientClipCallback,
        GradientClipping,
        History,
        ModelCheckpoint,
        ProgressPrinter,
        StopAtThreshold,
        clip_grad_norm,
    )
    from trainables.checkpoint import CheckpointError, CheckpointMismatchError
    from trainables.devices import resolve_device
    from trainables.distributed import prepare_data_loader, prepare_model
    from trainables.feature_selection import (
        FeatureSelectionModel,
        FeatureSelectionTrainer,
        GatedClassifier,
        StochasticGates,
    )
    from trainables.options_trainer import OptionsTrainer
    from trainables.snapshot import SnapshotCheckpoint, load_snapshot, read_snapshot, save_snapshot
    from trainables.trainer import NonFiniteLossError, NothingToTrainWarning, ShapeError, Trainer
    from trainables.training_config import ConfigKeyError

#: Public name -> the module that defines it.
_EXPORTS = {
    "ReportFn": "trainables.api",
    "call_training_function": "trainables.api",
    "null_report": "trainables.api",
    "Callback": "trainables.callbacks",
    "EarlyStopping": "trainables.callbacks",
    "GradientClipping": "trainables.callbacks",
    "GradientClipCallback": "trainables.callbacks",
    "History": "trainables.callbacks",
    "ModelCheckpoint": "trainables.callbacks",
    "ProgressPrinter": "trainables.callbacks",
    "StopAtThreshold": "trainables.callbacks",
    "clip_grad_norm": "trainables.callbacks",
    "CheckpointError": "trainables.checkpoint",
    "CheckpointMismatchError": "trainables.checkpoint",
    "resolve_device": "trainables.devices",
    "prepare_data_loader": "trainables.distributed",
    "prepare_model": "trainables.distributed",
    "FeatureSelectionModel": "trainables.feature_selection",
    "FeatureSelectionTrainer": "trainables.feature_selection",
    "StochasticGates": "trainables.feature_selection",
    "GatedClassifier": "trainables.feature_selection",
    "OptionsTrainer": "trainables.options_trainer",
    "SnapshotCheckpoint": "trainables.snapshot",
    "load_snapshot": "trainables.snapshot",
    "read_snapshot": "trainables.snapshot",
    "save_snapshot": "trainables.snapshot",
    "NonFiniteLossError": "trainables.trainer",
    "NothingToTrainWarning": "trainables.trainer",
    "ShapeError": "trainables.trainer",
    "Trainer": "trainables.trainer",
    "ConfigKeyError": "trainables.training_config",
}

__all__ = [
    "ReportFn",
    "call_training_function",
    "null_report",
    "Callback",
    "EarlyStopping",
    "GradientClipping",
    "GradientClipCallback",
    "History",
    "ModelCheckpoint",
    "ProgressPrinter",
    "StopAtThreshold",
    "clip_grad_norm",
    "CheckpointError",
    "CheckpointMismatchError",
    "resolve_device",
    "prepare_data_loader",
    "prepare_model",
    "FeatureSelectionModel",
    "FeatureSelectionTrainer",
    "StochasticGates",
    "GatedClassifier",
    "OptionsTrainer",
    "SnapshotCheckpoint",
    "load_snapshot",
    "read_snapshot",
    "save_snapshot",
    "NonFiniteLossError",
    "NothingToTrainWarning",
    "ShapeError",
    "Trainer",
    "ConfigKeyError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trainables' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
