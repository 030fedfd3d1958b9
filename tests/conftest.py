"""Suite-wide rules: a test that starts Ray says so with the ``ray`` marker.

The fast loop is ``pytest -m "not ray and not slow and not gpu"``; it only stays fast if every test
that reaches the shared Ray cluster carries ``ray``. A test that uses the ``ray_cluster`` fixture,
directly or through another fixture, without the marker fails before any fixture is set up (so no
cluster is started for it). Tests that start Ray another way (``python -m search run`` in a
subprocess, ``ray start``) cannot be detected here; mark them by hand.

The suite runs on two pytest-xdist workers (``-n 2 --dist loadgroup`` in ``pyproject.toml``), with
one shared cluster: every test that uses ``ray_cluster`` (directly or through another fixture) is put
in one xdist group, so one worker runs all of them against one cluster, one at a time, as a serial
run would, while the other worker takes everything else (the subprocess runs with their embedded
Ray, the two-node clusters, the tests without Ray). A serial run already has those embedded
clusters up beside the shared one; what is new is only that they now run at the same time. Two
shared clusters (plain ``-n 2``) are what once hung the DDP pool-replacement test, so they are never
started. xdist 3.8's own grouping does nothing on pytest 9.2 (it sets ``item._nodeid``; pytest 9.2's
``nodeid`` reads ``_id``), so :func:`pytest_collection_modifyitems` below sets the group itself.
``-n 0`` runs the suite in one process (``-p no:xdist`` fails: ``addopts`` passes ``-n``).
"""

from __future__ import annotations

import pytest

RAY_FIXTURE = "ray_cluster"
#: The xdist group of every test on the shared cluster (see the module's docstring).
CLUSTER_GROUP = "shared_cluster"


def _unmarked_ray_user(item: pytest.Item) -> bool:
    return RAY_FIXTURE in getattr(item, "fixturenames", ()) and item.get_closest_marker("ray") is None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _unmarked_ray_user(item):
        pytest.fail(f"{item.nodeid} uses the {RAY_FIXTURE!r} fixture (it starts Ray) but is not marked "
                    "@pytest.mark.ray: add the marker (or a module-level pytestmark) so that "
                    '`pytest -m "not ray"` leaves it out.', pytrace=False)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker under ``--dist loadgroup``: the shared cluster's tests in one group, one worker."""
    if not (hasattr(config.option, "loadgroup") and config.getvalue("loadgroup")):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        if RAY_FIXTURE in getattr(item, "fixturenames", ()) and "@" not in item.nodeid:
            # What xdist's own hook does on an older pytest (``nodeid@group``: loadgroup's scope).
            item._id = coerce_node_id(f"{item.nodeid}@{CLUSTER_GROUP}")
