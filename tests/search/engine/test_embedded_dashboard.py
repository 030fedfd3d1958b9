"""Whether an embedded Ray starts its dashboard (``search.engine.session.embedded_dashboard``), without a cluster."""

from __future__ import annotations

import pytest
import yaml

from search.engine.session import embedded_dashboard
from search.spec.load import load_spec
from tests.search.helpers import TINY_SPEC


@pytest.mark.parametrize(("resources", "asked", "started"), [
    ({}, None, False),  # executor auto, one worker: trials train in their own processes
    ({"executor": "direct"}, None, False),
    ({"executor": "torch_trainer"}, None, True),  # Train V2's cleaner asks the dashboard
    ({"num_workers": 2}, None, True),  # auto with two workers: Ray Train
    ({}, True, True),  # --dashboard
    ({"executor": "torch_trainer"}, False, False),  # asked off (RunOptions)
])
def test_the_dashboard_starts_when_asked_or_when_trials_run_on_ray_train(tmp_path, resources, asked, started):
    spec = yaml.safe_load(TINY_SPEC)
    spec["resources"] = {**spec["resources"], **resources}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert embedded_dashboard(load_spec(path), asked) is started


def test_run_and_resume_take_dashboard_from_the_command_line():
    from search.cli.main import _parser

    parser = _parser()
    assert parser.parse_args(["run", "space.yaml"]).dashboard is None
    assert parser.parse_args(["run", "space.yaml", "--dashboard"]).dashboard is True
    assert parser.parse_args(["resume", "results/x", "--dashboard"]).dashboard is True


def test_dashboard_with_a_cluster_address_says_it_is_moot(capsys, monkeypatch):
    from search.cli.experiment import _dashboard_asked
    from search.cli.main import _parser

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert _dashboard_asked(_parser().parse_args(["run", "space.yaml", "--dashboard"])) is True
    assert capsys.readouterr().err == ""
    assert _dashboard_asked(_parser().parse_args(["run", "space.yaml", "--dashboard", "--address", "h:6379"])) is True
    assert "this run joins a cluster, whose dashboard is its own" in capsys.readouterr().err
