"""The refit's imports made while the search's last trials run, on a slot no trial needs any more.

The driver imports no torch during a search (``benchmarks/startup.py``), so the refit after it
(:mod:`search.engine.refit`) began by importing torch and, at its optimizer's first call,
``torch._dynamo``: about 1.6 s here, on the command's path to its end. Once every trial of the
search has started and one of them ends, a trial slot stays free until the search ends; this
callback imports the refit's modules then, on a thread of the driver, so the refit finds them
imported. Nothing else changes: a warm-up that fails (or is not done by the refit's start) leaves
the refit to import what it needs, as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Sequence
from typing import Any

from ray.tune import Callback

log = logging.getLogger(__name__)

__all__ = ["RefitWarmup", "refit_warmup"]


class RefitWarmup(Callback):
    """Import ``modules`` on a thread of the driver once every one of ``num_samples`` trials has started and a slot
    has come free (a trial ended with none waiting to start)."""

    def __init__(self, num_samples: int, modules: Sequence[str]) -> None:
        self._num_samples = num_samples
        self._modules = tuple(modules)
        self.thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the run (tuner.pkl)
        return {**self.__dict__, "thread": None}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._start_if_last(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._start_if_last(trials)

    def _start_if_last(self, trials: list[Any]) -> None:
        if self.thread is not None or len(trials) < self._num_samples:
            return
        if any(t.status == "PENDING" for t in trials):  # a trial still waits for the slot
            return
        self.thread = threading.Thread(target=self._import, name="refit-warmup", daemon=True)
        self.thread.start()

    def _import(self) -> None:
        for name in self._modules:
            try:
                importlib.import_module(name)
            except BaseException as exc:  # noqa: BLE001 - the refit imports it itself, and says what fails
                log.debug("refit warm-up: %s not imported: %r", name, exc)
                return


def refit_warmup(spec: Any, search_paths: Sequence[str] = ()) -> list[Callback]:
    """The warm-up for a run whose search is followed by a refit (a trainable with a ``refit`` function); else none."""
    from search.engine.refit import refit_function
    from search.spec.registry import TRAINABLES

    if spec.search.num_samples < 2 or importlib.util.find_spec("torch") is None:
        return []
    try:
        if refit_function(spec, tuple(search_paths)) is None:
            return []
    except Exception:  # noqa: BLE001 - the run's own checks report a trainable that does not load
        return []
    # The built-in trainables train in trainables.task_training (torch and ours); a user's refit imports its own.
    modules = ["torch", "torch._dynamo"] + (["trainables.task_training"] if spec.trainable in TRAINABLES else [])
    return [RefitWarmup(spec.search.num_samples, modules)]
