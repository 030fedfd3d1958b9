"""Stop when a monitored metric stops improving; optionally restore the best weights."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainables.callbacks.base import Callback
from trainables.callbacks.monitor import Mode, is_improvement, read_metric, worst_value
from trainables.distributed import unwrap_model

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta``.

    Args:
        monitor: metric name in the epoch metrics (``val_loss`` by default).
        mode: ``"min"`` or ``"max"``.
        patience: epochs without improvement tolerated before stopping (>= 1).
        min_delta: smallest change that counts as an improvement (>= 0).
        restore_best_weights: load the best epoch's weights back when the fit ends.

    After the fit, :attr:`best_score`, :attr:`best_epoch`, :attr:`best_metrics` and
    :attr:`stopped_epoch` tell what happened.
    """

    order = 30

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str | Mode = "min",
        patience: int = 10,
        min_delta: float = 1e-4,
        restore_best_weights: bool = True,
    ) -> None:
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta}")
        self.monitor = monitor
        self.mode = Mode.parse(mode)
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.best_score = worst_value(self.mode)
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights: dict[str, Any] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        value = read_metric(metrics, self.monitor, "EarlyStopping")
        if is_improvement(value, self.best_score, self.mode, self.min_delta):
            self.best_score, self.best_epoch, self.wait = value, epoch, 0
            self.best_metrics = dict(metrics)
            if self.restore_best_weights:
                # A copy on the CPU: the live weights keep changing, and GPU memory is scarcer.
                state = unwrap_model(trainer.model).state_dict()
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        else:
            self.wait += 1
        metrics["epochs_since_improvement"] = self.wait
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.request_stop("early_stopping")

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self._best_weights is not None:
            unwrap_model(trainer.model).load_state_dict(self._best_weights)

    def get_best_metrics(self) -> dict[str, Any]:
        """The best epoch's metrics, plus ``best_score`` and ``best_epoch``."""
        return {**self.best_metrics, "best_score": self.best_score, "best_epoch": self.best_epoch}

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_metrics": copy.deepcopy(self.best_metrics),
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self._best_weights,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]
        self.best_metrics = dict(state["best_metrics"])
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self._best_weights = state.get("best_weights")
