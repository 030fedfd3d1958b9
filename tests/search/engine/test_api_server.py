"""An embedded Ray without the dashboard starts no API server where it would run usage stats alone
(``search.internals.api_server``), decided without a cluster."""

from __future__ import annotations

import inspect

import pytest
from ray._private.node import Node

from search.internals import api_server
from search.internals.api_server import api_server_left_out, usage_stats_only_server


@pytest.fixture
def usage_stats_unset(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/config.json of this machine's user


def test_this_rays_server_without_the_dashboard_runs_only_usage_stats(usage_stats_unset):
    from ray._private import services

    source = inspect.getsource(services.start_api_server)
    assert "--modules-to-load=UsageStatsHead" in source  # the premise, read from the installed Ray
    assert usage_stats_only_server() is True


@pytest.mark.parametrize("how", ["env", "config"])
def test_usage_stats_the_user_enabled_keep_the_server(usage_stats_unset, monkeypatch, tmp_path, how):
    if how == "env":
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    else:  # what `ray enable-usage-stats` writes
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "config.json").write_text('{"usage_stats": true}')
    assert usage_stats_only_server() is False


def test_usage_stats_turned_off_or_misspelt(usage_stats_unset, monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    assert usage_stats_only_server() is True  # nothing left for the server to do
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "yes")  # Ray's own ValueError is Ray's to raise at ray.init
    assert usage_stats_only_server() is False


def test_a_ray_whose_server_loads_more_without_the_dashboard_keeps_it(usage_stats_unset, monkeypatch):
    later = 'command.append("--modules-to-load=UsageStatsHead,JobHead,StateHead")\n'
    monkeypatch.setattr(api_server.inspect, "getsource", lambda _: later)
    assert usage_stats_only_server() is False
    monkeypatch.setattr(api_server.inspect, "getsource", lambda _: 'x = "--modules-to-load=UsageStatsHead"\n'
                                                                   'y = "--modules-to-load=StateHead"\n')
    assert usage_stats_only_server() is False

    def unreadable(_):
        raise OSError("no source")

    monkeypatch.setattr(api_server.inspect, "getsource", unreadable)  # a Ray installed without its .py files
    assert usage_stats_only_server() is False


def test_the_server_is_left_out_only_while_inside_and_only_without_the_dashboard(usage_stats_unset):
    original = Node.start_api_server
    with api_server_left_out(False):
        assert Node.start_api_server is not original
        assert Node.start_api_server(object(), include_dashboard=False, raise_on_failure=False) is None
    assert Node.start_api_server is original
    for asked in (True, None):  # the dashboard asked for, or Ray's default (which starts it where it can)
        with api_server_left_out(asked):
            assert Node.start_api_server is original
    with pytest.raises(RuntimeError), api_server_left_out(False):
        raise RuntimeError("ray.init failed")
    assert Node.start_api_server is original


def test_with_usage_stats_enabled_the_server_starts(usage_stats_unset, monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    original = Node.start_api_server
    with api_server_left_out(False):
        assert Node.start_api_server is original
