"""Time our own Tuner's trials in a benchmark, without changing the engine.

``search.engine.tuner.build_tuner`` builds its progress callback from
``search.engine.callbacks.ProgressLines`` when it is called, so swapping that module
attribute for a subclass that first hands each trial event to a benchmark's clock times the
Tuner that ``run_experiment`` makes, exactly as a user's run builds it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["clocked_progress"]

#: The trial events a clock may take, with Tune's callback signature.
EVENTS = ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error")


@contextlib.contextmanager
def clocked_progress(clock: Any) -> Iterator[None]:
    """While inside, every Tuner ``build_tuner`` makes also calls ``clock``'s ``on_trial_*`` methods.

    ``clock`` defines any of :data:`EVENTS` (a ``ray.tune.Callback`` or a plain object); each is
    called before our progress callback handles the same event.
    """
    from search.engine import callbacks as search_progress

    original = search_progress.ProgressLines

    def forward(event: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> None:
            getattr(clock, event)(*args, **kwargs)
            getattr(original, event)(self, *args, **kwargs)

        return method

    clocked = type("ClockedProgress", (original,), {e: forward(e) for e in EVENTS if hasattr(clock, e)})
    search_progress.ProgressLines = clocked
    try:
        yield
    finally:
        search_progress.ProgressLines = original
