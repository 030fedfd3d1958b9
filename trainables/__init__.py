"""trainables: a small PyTorch training library, usable on its own (no Ray needed).

The pieces: :class:`Trainer` (``fit`` / ``train_epoch`` / ``evaluate`` / ``train_step``),
callbacks (:mod:`trainables.callbacks`), :class:`FeatureSelectionTrainer`, data loading
(:mod:`trainables.data`) and built-in training functions (:mod:`trainables.tasks`)
that an orchestrator calls through the contract in :mod:`trainables.api`.
"""

from trainables.api import ReportFn, call_training_function, null_report
from trainables.callbacks import (
    Callback,
    EarlyStopping,
    GradientClipping,
    History,
    ModelCheckpoint,
    ProgressPrinter,
    StopAtThreshold,
    clip_grad_norm,
)
from trainables.checkpoint import CheckpointError, CheckpointMismatchError
from trainables.devices import resolve_device
from trainables.feature_selection import FeatureSelectionModel, FeatureSelectionTrainer, StochasticGates
from trainables.trainer import NonFiniteLossError, ShapeError, Trainer

__all__ = [
    "ReportFn",
    "call_training_function",
    "null_report",
    "Callback",
    "EarlyStopping",
    "GradientClipping",
    "History",
    "ModelCheckpoint",
    "ProgressPrinter",
    "StopAtThreshold",
    "clip_grad_norm",
    "CheckpointError",
    "CheckpointMismatchError",
    "resolve_device",
    "FeatureSelectionModel",
    "FeatureSelectionTrainer",
    "StochasticGates",
    "NonFiniteLossError",
    "ShapeError",
    "Trainer",
]
