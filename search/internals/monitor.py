"""An embedded cluster without the dashboard also without Ray's autoscaler monitor.

Ray 2.60's ``ray.init`` starts ``autoscaler/_private/monitor.py`` with every cluster it starts (``RayParams.no_monitor``
is not one of its arguments). On the single node an embedded run starts there is nothing to scale: Tune, and Train's
fixed scaling, read nothing the monitor publishes. Its start (a Python process importing Ray's autoscaler, 0.37 CPU-s)
competes on a small machine with the raylet's agents, which ``ray.init`` waits for: about 0.2 s of every embedded start
here. What goes with it: ``ray status`` shows no autoscaler view of such a cluster, and a task or actor that asks for
resources the node lacks waits without the autoscaler's "No available node types can fulfill resource request" line
(a trial that does is refused before the run: ``search.trials.resources``). Facts: ``docs/ray_optuna_notes.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from search.internals.swap import swapped

__all__ = ["monitor_left_out"]


@contextlib.contextmanager
def monitor_left_out(include_dashboard: bool | None) -> Iterator[None]:
    """While an embedded ``ray.init`` runs without the dashboard: its node starts no autoscaler monitor. With the
    dashboard (asked for, or Ray's default) the monitor starts as Ray has it, for the dashboard's cluster view; so it
    does on a Ray without ``Node.start_monitor``. Ray's ``Node.start_monitor`` is what it always was after."""
    if include_dashboard is not False:
        yield
        return
    with swapped("ray._private.node", "Node.start_monitor", lambda original: _start_no_monitor):
        yield


def _start_no_monitor(self: Any, *args: Any, **kwargs: Any) -> None:
    """``Node.start_monitor`` while an embedded node starts without the dashboard (``ray.init`` has no
    ``no_monitor`` in Ray 2.60)."""
    return None
