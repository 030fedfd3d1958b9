"""search.internals: it imports no Ray Tune, makes its Tune-derived classes once, verifies its private names, and
counts the GPUs as Ray would."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from ray._private.node import Node

REPO = Path(__file__).resolve().parents[2]


def test_importing_internals_imports_no_ray_tune():
    code = "import sys, search.internals\nprint('ray.tune' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_classes_made_from_tunes_are_made_once_and_unpickle_by_their_module_name():
    import search.internals as internals
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers.async_hyperband import _Bracket

    first, second = internals.result_loggers(), internals.result_loggers()
    assert [type(c) for c in first] == [type(c) for c in second]
    json_logger, csv_logger = first
    assert isinstance(json_logger, JsonLoggerCallback) and isinstance(csv_logger, CSVLoggerCallback)
    assert type(json_logger) is internals.KeepLocalJsonLoggerCallback  # what a saved tuner.pkl names
    assert type(json_logger).__module__ == "search.internals"
    assert type(pickle.loads(pickle.dumps(json_logger))) is type(json_logger)
    assert internals.Bracket is _Bracket
    try:
        internals.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_verify_passes_on_this_ray_and_names_a_private_method_it_lacks(monkeypatch):
    from search.internals import InternalsError, verify

    verify()  # every private name in USES exists in the installed Ray and Optuna
    monkeypatch.delattr(Node, "start_monitor")
    names = r"ray\._private\.node\.Node\.kill_monitor/Node\.start_api_server/Node\.start_monitor/Node\.__init__"
    with pytest.raises(InternalsError, match=names + r" .*AttributeError.*start_monitor.*checked on Ray 2\.60"):
        verify()


class _Manager:  # Ray's GPU accelerator manager, as node_gpus reads it
    def __init__(self, count, visible):
        self.count, self.visible = count, visible

    def get_current_node_num_accelerators(self):
        return self.count

    def get_current_process_visible_accelerator_ids(self):
        return self.visible


@pytest.mark.parametrize(("count", "visible", "gpus"), [
    (4, None, 4),           # every device of the node
    (4, ["0", "2"], 2),     # CUDA_VISIBLE_DEVICES names two
    (1, ["0", "1"], 1),     # names more than there are
    (2, [], 0),             # CUDA_VISIBLE_DEVICES="" hides them all
])
def test_validate_counts_the_gpus_as_an_embedded_ray_would(monkeypatch, count, visible, gpus):
    import ray._private.accelerators as accelerators

    from search.trials.resources import local_resources

    monkeypatch.setattr(accelerators, "get_accelerator_manager_for_resource", lambda name: _Manager(count, visible))
    node, nodes = local_resources()
    assert node["GPU"] == gpus and nodes == [node]


def test_gpus_that_ray_cannot_count_are_none(monkeypatch):
    import ray._private.accelerators as accelerators

    from search.internals import node_gpus

    def broken(name):
        raise RuntimeError("NVML: driver/library version mismatch")

    monkeypatch.setattr(accelerators, "get_accelerator_manager_for_resource", broken)
    assert node_gpus() == 0
    monkeypatch.setattr(accelerators, "get_accelerator_manager_for_resource", lambda name: None)
    assert node_gpus() == 0


def test_the_autoscaler_monitor_is_left_out_only_while_inside_and_only_without_the_dashboard():
    from search.internals import monitor_left_out

    original = Node.start_monitor
    with monitor_left_out(False):
        assert Node.start_monitor is not original
        assert Node.start_monitor(object()) is None  # nothing started
        assert Node.start_monitor(object(), "an argument a later Ray adds", too=1) is None
    assert Node.start_monitor is original
    for asked in (True, None):  # the dashboard asked for, or Ray's default: its cluster view reads the monitor's
        with monitor_left_out(asked):
            assert Node.start_monitor is original
    with pytest.raises(RuntimeError), monitor_left_out(False):
        raise RuntimeError("ray.init failed")
    assert Node.start_monitor is original


def test_a_ray_without_the_names_starts_its_node_as_it_would(monkeypatch):
    from ray._private import services

    from search.internals import monitor_left_out, node_registration_polled

    monkeypatch.delattr(Node, "start_monitor")
    monkeypatch.delattr(services, "get_node")
    with monitor_left_out(False), node_registration_polled():  # nothing to swap: no error, nothing patched
        assert not hasattr(Node, "start_monitor") and not hasattr(services, "get_node")


def test_ray_looks_for_its_new_node_once_the_gcs_lists_it_and_only_while_inside(monkeypatch):
    from ray._private import services

    from search.internals import node_registration, node_registration_polled

    calls = []
    monkeypatch.setattr(services, "get_node", lambda *args, **kwargs: calls.append(("ray", args, kwargs)) or "info")
    monkeypatch.setattr(node_registration, "_wait_until_registered", lambda *args: calls.append(("poll", args, {})))
    original = services.get_node
    with node_registration_polled():
        assert services.get_node is not original
        assert services.get_node("10.0.0.1:6379", "ab" * 28, later=True) == "info"
    assert calls == [("poll", ("10.0.0.1:6379", "ab" * 28), {}), ("ray", ("10.0.0.1:6379", "ab" * 28), {"later": True})]
    assert services.get_node is original
    with pytest.raises(RuntimeError), node_registration_polled():
        raise RuntimeError("ray.init failed")
    assert services.get_node is original


@pytest.mark.ray
def test_the_gcs_is_asked_until_the_node_is_alive_and_no_longer_than_the_wait(ray_cluster, monkeypatch):
    import time

    import ray

    from search.internals import node_registration

    node = ray._private.worker._global_node
    monkeypatch.setattr(node_registration, "WAIT_S", 2.0)
    started = time.monotonic()
    node_registration._wait_until_registered(node.gcs_address, node.node_id)  # alive: at once
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    node_registration._wait_until_registered(node.gcs_address, "ab" * 28)  # a node that never registers
    assert 2.0 <= time.monotonic() - started < 5.0
