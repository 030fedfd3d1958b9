"""An embedded cluster without the dashboard also without Ray's autoscaler monitor.

Ray 2.60's ``ray.init`` starts ``autoscaler/_private/monitor.py`` with every cluster it starts (``RayParams.no_monitor``
is not one of its arguments). On the single node an embedded run starts there is nothing to scale: the monitor
publishes the autoscaler's view of the cluster, which ``ray status`` and the dashboard's cluster page read. Its start
(a Python process importing Ray's autoscaler, 0.37 CPU-s) competes on a small machine with the raylet's agents, which
``ray.init`` waits for: about 0.2 s of every embedded start here, and a second at its end when Ray's shutdown has to
stop it (:func:`search.internals.stop_autoscaler_monitor`). Facts: ``docs/ray_optuna_notes.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["monitor_left_out"]


@contextlib.contextmanager
def monitor_left_out(include_dashboard: bool | None) -> Iterator[None]:
    """While an embedded ``ray.init`` runs without the dashboard: its node starts no autoscaler monitor. With the
    dashboard (asked for, or Ray's default) the monitor starts as Ray has it, for the dashboard's cluster view. Ray's
    ``Node.start_monitor`` is what it always was after."""
    if include_dashboard is not False:
        yield
        return
    from ray._private.node import Node

    original = Node.start_monitor
    Node.start_monitor = lambda self: None  # type: ignore[method-assign]  # ray.init has no no_monitor in Ray 2.60
    try:
        yield
    finally:
        Node.start_monitor = original  # type: ignore[method-assign]
