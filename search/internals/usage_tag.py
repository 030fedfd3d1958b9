"""Tune's usage tag of a run's callbacks, counted without importing MLflow, W&B, Comet and Aim.

``ray.tune.run`` calls ``ray.air._internal.usage.tag_callbacks(callbacks)`` before its first
trial. Its ``_count_callbacks`` imports ``ray.air.integrations.mlflow`` (whose module body runs
``import mlflow``: about 1 s here), W&B's (``import wandb``), Comet's and Aim's modules only to
read four class names, on every run with callbacks (ours always has them), whether or not the
library is used. :func:`callbacks_tagged_lightly` swaps in :func:`count_callbacks`, which reads
the same names without the imports; ``tag_callbacks`` and what it records stay Ray's own.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from search.internals.errors import unavailable

__all__ = ["INTEGRATION_CALLBACKS", "count_callbacks", "callbacks_tagged_lightly"]

log = logging.getLogger(__name__)

#: The class names of Tune's logger callbacks whose modules import their tracking library when imported.
INTEGRATION_CALLBACKS = ("WandbLoggerCallback", "MLflowLoggerCallback", "CometLoggerCallback", "AimLoggerCallback")


def count_callbacks(callbacks: list[Any] | None) -> dict[str, int]:
    """Ray's ``_count_callbacks`` (callback class name -> count) without importing the four integrations.

    Ray compares class names only (``callback.__class__.__name__ in callback_names``); it
    imports the classes just to read their names, which :data:`INTEGRATION_CALLBACKS` holds.
    """
    from ray.tune import Callback
    from ray.tune.logger import LoggerCallback
    from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES

    names = set(INTEGRATION_CALLBACKS) | {cls.__name__ for cls in DEFAULT_CALLBACK_CLASSES}
    counts: dict[str, int] = collections.defaultdict(int)
    for callback in callbacks or []:
        if not isinstance(callback, Callback):
            continue  # Ray's rule: an error later, not a custom callback
        name = callback.__class__.__name__
        if name in names:
            counts[name] += 1
        elif isinstance(callback, LoggerCallback):
            counts["CustomLoggerCallback"] += 1
        else:
            counts["CustomCallback"] += 1
    return counts


@contextlib.contextmanager
def callbacks_tagged_lightly() -> Iterator[None]:
    """While inside, Tune's callback tag counts with :func:`count_callbacks` (Ray's own on any failure of ours)."""
    try:
        from ray.air._internal import usage

        original = usage._count_callbacks
    except (ImportError, AttributeError) as exc:  # pragma: no cover - another Ray: its own tag, imports and all
        log.debug("%s", unavailable("ray.air._internal.usage._count_callbacks", exc))
        yield
        return

    def counted(callbacks: list[Any] | None) -> dict[str, int]:
        try:
            return count_callbacks(callbacks)
        except Exception:  # noqa: BLE001 - a usage-stats tag must never fail a run: Ray's count, with its imports
            return original(callbacks)

    usage._count_callbacks = counted
    try:
        yield
    finally:
        usage._count_callbacks = original
