"""An embedded cluster without the dashboard also without Ray's API server, which then runs usage stats alone.

Ray 2.60's ``ray.init(include_dashboard=False)`` still starts ``dashboard/dashboard.py``, loading only its
``UsageStatsHead`` module (no state API, no job API: ``services.start_api_server``, "Modules like job or state APIs
should be loaded although dashboard is disabled"), and ``ray.init`` polls the GCS every 0.1 s until that process
has published its address: about 0.55 s of every embedded start here, and 0.6 CPU-s (``benchmarks/startup.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import Iterator

from search.internals.errors import unavailable
from search.internals.swap import swapped

__all__ = ["API_SERVER_USAGE_STATS_ONLY", "usage_stats_only_server", "api_server_left_out"]

log = logging.getLogger(__name__)

#: The modules Ray's API server loads without the dashboard, as its source names them: usage stats alone.
API_SERVER_USAGE_STATS_ONLY = ["UsageStatsHead"]


def usage_stats_only_server() -> bool:
    """Whether this Ray's API server, started without the dashboard, would run nothing but Ray's usage stats, which
    the user has not explicitly asked for (``RAY_USAGE_STATS_ENABLED=1``, ``ray enable-usage-stats``).

    Read from Ray's own source: a Ray that loads more there (its job or state API) keeps its server; so does one
    whose source or usage-stats settings cannot be read.
    """
    try:
        from ray._common.usage import usage_lib
        from ray._private import services

        asked = usage_lib._usage_stats_enabledness() is usage_lib.UsageStatsEnabledness.ENABLED_EXPLICITLY
        source = inspect.getsource(services.start_api_server)
    except Exception as exc:  # noqa: BLE001 - another Ray: its server starts, as Ray would have it
        log.debug("%s", unavailable("ray._private.services.start_api_server / usage_lib", exc))
        return False
    return not asked and re.findall(r"--modules-to-load=([^\"']*)", source) == API_SERVER_USAGE_STATS_ONLY


@contextlib.contextmanager
def api_server_left_out(include_dashboard: bool | None) -> Iterator[None]:
    """While an embedded ``ray.init`` runs: its node starts no API server, where the dashboard is not asked for and
    that server would run Ray's usage stats alone (:func:`usage_stats_only_server`). Ray's ``Node.start_api_server``
    is what it always was after."""
    if include_dashboard is not False or not usage_stats_only_server():
        yield
        return
    # No public switch in Ray 2.60.
    with swapped("ray._private.node", "Node.start_api_server", lambda original: lambda self, **_: None):
        yield
