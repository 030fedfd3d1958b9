"""An embedded node's Python workers started through :mod:`search.internals.lean_setup_worker`, not Ray's script.

Every Python worker the raylet starts (a trial's process, each Ray Train worker) first runs Ray's
``setup_worker.py``, which imports Ray (0.3 s of CPU here) to read the worker's runtime-env context and ``exec``
the worker, which imports Ray again: 0.3 s on the way to a trial's first epoch, and to each worker's start. The
node's ``RayParams.setup_worker_path`` names that script (``ray.init`` has no argument for it; ``Node.__init__``
fills it in when it is absent). While an embedded ``ray.init`` starts its node, ours is named instead; it hands
any context other than environment variables on to Ray's script. Facts: ``docs/ray_optuna_notes.md``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from search.internals.swap import swapped

__all__ = ["LEAN_SETUP_WORKER", "lean_worker_setup"]

#: The script the raylet runs each Python worker with. Its name must end in ``setup_worker.py``: for a worker with an
#: empty runtime-env context the raylet drops the script from the command by that substring (Ray 2.60).
LEAN_SETUP_WORKER = Path(__file__).with_name("lean_setup_worker.py")


@contextlib.contextmanager
def lean_worker_setup() -> Iterator[None]:
    """While an embedded ``ray.init`` starts its node: the node's workers start through :data:`LEAN_SETUP_WORKER`,
    unless the parameters already name a script. ``Node.__init__`` is Ray's own again after. Not on Windows, where
    Ray's script waits for the worker it starts (``Popen(...).wait()``) and an ``exec`` would leave the raylet
    holding a process that has ended."""
    if sys.platform == "win32" or not LEAN_SETUP_WORKER.is_file():  # Windows; a package run from a zip file
        yield
        return
    with swapped("ray._private.node", "Node.__init__", _naming_ours):
        yield


def _naming_ours(original: Callable[..., None]) -> Callable[..., None]:
    def init(self: Any, ray_params: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(ray_params, "setup_worker_path", None) is None:
            ray_params.setup_worker_path = str(LEAN_SETUP_WORKER)
        original(self, ray_params, *args, **kwargs)

    return init
