"""An embedded ``ray.init`` that asks the GCS for its new node every 20 ms, not once a second.

After starting its processes, Ray 2.60's ``Node.__init__`` waits 0.1 s and calls ``services.get_node``, whose
C++ ``GlobalStateAccessor::GetNode`` asks the GCS for the node and, while the raylet has not registered, sleeps a
full second before it asks again. The raylet registers only once its two agents have started, 0.9-1.2 s after it
here, so ``ray.init`` took about 1.6 s or a second more, at random (``docs/ray_optuna_notes.md``). Asking the GCS
first, every 20 ms (``GcsClient.get_all_node_info`` for that node, alive), and calling Ray's ``get_node`` once the
node is there removes the step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from search.internals.errors import unavailable
from search.internals.swap import swapped

__all__ = ["POLL_S", "node_registration_polled"]

log = logging.getLogger(__name__)

#: How often the GCS is asked whether the new node has registered (a request takes under a millisecond).
POLL_S = 0.02
#: How long at most; then Ray's own ``get_node`` waits, retrying every second, and fails as it would. Short, so that a
#: raylet that never registers is reported about as soon as before (Ray's clock, ``raylet_start_wait_time_s``: 30 s,
#: started before this wait), and a slow one costs at most the second this wait saves.
WAIT_S = 5.0


@contextlib.contextmanager
def node_registration_polled() -> Iterator[None]:
    """While an embedded ``ray.init`` starts its node: Ray's ``services.get_node`` is called once the GCS lists the
    node as alive, asked every :data:`POLL_S`. Ray's ``get_node`` is what it always was after."""

    def polled(original: Callable[..., Any]) -> Callable[..., Any]:
        def get_node(gcs_address: str, node_id: str, *args: Any, **kwargs: Any) -> Any:
            _wait_until_registered(gcs_address, node_id)
            return original(gcs_address, node_id, *args, **kwargs)

        return get_node

    with swapped("ray._private.services", "get_node", polled):  # no public hook in Ray 2.60
        yield


def _wait_until_registered(gcs_address: str, node_id: str) -> None:
    """Return once the GCS at ``gcs_address`` lists ``node_id`` as alive, or after :data:`WAIT_S`; at once on a Ray
    whose client cannot ask (Ray's own wait then applies)."""
    try:
        from ray._raylet import GcsClient, NodeID
        from ray.core.generated.gcs_pb2 import GcsNodeInfo

        client, wanted = GcsClient(address=gcs_address), NodeID.from_hex(node_id)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if wanted in client.get_all_node_info(timeout=5, state_filter=GcsNodeInfo.GcsNodeState.ALIVE):
                return
            time.sleep(POLL_S)
    except Exception as exc:  # noqa: BLE001 - another Ray, or the GCS not answering: Ray's get_node decides
        log.debug("%s", unavailable("ray._raylet.GcsClient.get_all_node_info", exc))
