"""Small callbacks: stop at a threshold, and a progress line per epoch."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from trainables.callbacks.base import Callback
from trainables.callbacks.monitor import Mode, read_metric

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["StopAtThreshold", "ProgressPrinter"]


class StopAtThreshold(Callback):
    """Stop as soon as ``monitor`` reaches ``threshold`` (>= for max, <= for min)."""

    order = 31

    def __init__(self, monitor: str, threshold: float, mode: str | Mode = "max") -> None:
        self.monitor = monitor
        self.threshold = threshold
        self.mode = Mode.parse(mode)
        self.reached_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        value = read_metric(metrics, self.monitor, "StopAtThreshold")
        reached = value >= self.threshold if self.mode is Mode.MAX else value <= self.threshold
        if reached:
            self.reached_epoch = epoch
            trainer.request_stop("threshold")

    def state_dict(self) -> dict[str, Any]:
        return {"reached_epoch": self.reached_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reached_epoch = state["reached_epoch"]


class ProgressPrinter(Callback):
    """One line per epoch on a stream (stderr by default): epoch, time and chosen metrics."""

    order = 85

    def __init__(self, keys: tuple[str, ...] = ("train_loss", "val_loss", "val_accuracy"),
                 stream: TextIO | None = None, every: int = 1) -> None:
        self.keys = keys
        self.stream = stream
        self.every = every
        self._start = 0.0

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        if not trainer.is_main_process or epoch % self.every:
            return
        parts = [f"{k}={metrics[k]:.4g}" for k in self.keys if isinstance(metrics.get(k), (int, float))]
        total = f"/{trainer.max_epochs}" if trainer.max_epochs else ""
        line = f"epoch {epoch}{total} [{time.perf_counter() - self._start:.2f}s] " + " ".join(parts)
        print(line, file=self.stream or sys.stderr, flush=True)
