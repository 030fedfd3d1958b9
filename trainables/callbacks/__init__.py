"""Callbacks: cross-cutting training behaviour, each with resumable state."""

from trainables.callbacks.base import HOOKS, Callback, FunctionCallback
from trainables.callbacks.checkpoint import ModelCheckpoint
from trainables.callbacks.clipping import GradientClipCallback, GradientClipping, clip_grad_norm
from trainables.callbacks.early_stopping import EarlyStopping
from trainables.callbacks.history import History
from trainables.callbacks.misc import ProgressPrinter, StopAtThreshold
from trainables.callbacks.monitor import MissingMetricError, Mode

__all__ = [
    "HOOKS",
    "Callback",
    "FunctionCallback",
    "ModelCheckpoint",
    "GradientClipping",
    "GradientClipCallback",
    "clip_grad_norm",
    "EarlyStopping",
    "History",
    "ProgressPrinter",
    "StopAtThreshold",
    "MissingMetricError",
    "Mode",
]
