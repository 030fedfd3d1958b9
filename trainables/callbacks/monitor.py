"""Shared logic for callbacks that watch one metric: modes, improvement, missing metrics."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

from trainables.suggest import close_match

__all__ = ["Mode", "MissingMetricError", "read_metric", "is_improvement", "worst_value"]


class Mode(str, enum.Enum):
    MIN = "min"
    MAX = "max"

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"mode must be 'min' or 'max', got {value!r}") from None


class MissingMetricError(KeyError):
    """A monitored metric was never produced by the training loop."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def read_metric(metrics: Mapping[str, Any], monitor: str, owner: str) -> float:
    """``metrics[monitor]`` as float, or an error listing the metrics that exist."""
    if monitor in metrics:
        return float(metrics[monitor])
    available = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
    close = close_match(monitor, available)
    hint = f" Did you mean {close!r}?" if close else ""
    extra = " (validation metrics need a val_loader passed to fit)" if monitor.startswith("val_") else ""
    raise MissingMetricError(
        f"{owner}: monitored metric {monitor!r} is not produced by training{extra}.{hint} "
        f"Available: {', '.join(available)}"
    )


def is_improvement(value: float, best: float, mode: Mode, min_delta: float = 0.0) -> bool:
    """True when ``value`` beats ``best`` by more than ``min_delta``; NaN never improves."""
    if math.isnan(value):
        return False
    if mode is Mode.MIN:
        return value < best - min_delta
    return value > best + min_delta


def worst_value(mode: Mode) -> float:
    return math.inf if mode is Mode.MIN else -math.inf
