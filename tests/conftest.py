"""Suite-wide rules: a test that starts Ray says so with the ``ray`` marker.

The fast loop is ``pytest -m "not ray and not slow and not gpu"``; it only stays fast if every test
that reaches the shared Ray cluster carries ``ray``. A test that uses the ``ray_cluster`` fixture,
directly or through another fixture, without the marker fails before any fixture is set up (so no
cluster is started for it). Tests that start Ray another way (``python -m search run`` in a
subprocess, ``ray start``) cannot be detected here; mark them by hand.

The suite runs in one process, one shared cluster. ``-n 2`` (pytest-xdist, in the test extra) ran it
in 17m53s instead of about 24 minutes, but each worker then starts its own cluster, and
``test_a_ddp_rank_that_fails_while_the_other_waits_replaces_the_pool_and_the_trial_resumes`` hung
once (25 minutes, no trial process left) with two clusters on the machine; the cause is not known
(``ray_cluster`` notes one way two clusters interfere), so it is not the default. Grouping the cluster's tests onto one worker
(``--dist loadgroup``) does nothing with pytest 9.2 and xdist 3.8: xdist sets ``item._nodeid``, and
pytest 9.2's ``nodeid`` reads ``_id``.
"""

from __future__ import annotations

import pytest

RAY_FIXTURE = "ray_cluster"


def _unmarked_ray_user(item: pytest.Item) -> bool:
    return RAY_FIXTURE in getattr(item, "fixturenames", ()) and item.get_closest_marker("ray") is None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _unmarked_ray_user(item):
        pytest.fail(f"{item.nodeid} uses the {RAY_FIXTURE!r} fixture (it starts Ray) but is not marked "
                    "@pytest.mark.ray: add the marker (or a module-level pytestmark) so that "
                    '`pytest -m "not ray"` leaves it out.', pytrace=False)

