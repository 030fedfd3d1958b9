"""The Ray session's helpers that need no cluster: imports made ahead while ``ray.init`` waits."""

from __future__ import annotations

import importlib.util
import sys
import threading

import pytest

from search.engine.session import RUN_IMPORTS, imports_ahead


@pytest.fixture
def modules(tmp_path, monkeypatch):
    (tmp_path / "ahead_slow.py").write_text(
        "import threading, time\ntime.sleep(0.3)\nIMPORTED_ON = threading.current_thread().name\n")
    (tmp_path / "ahead_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("ahead_slow", "ahead_broken"):
        sys.modules.pop(name, None)


def test_the_modules_are_imported_on_another_thread_while_the_body_runs_and_awaited_at_the_end(modules):
    with imports_ahead(["ahead_slow"]):
        body_thread = threading.current_thread().name
        during = getattr(sys.modules.get("ahead_slow"), "IMPORTED_ON", None)
    assert during is None  # the body did not wait for the 0.3 s import
    assert sys.modules["ahead_slow"].IMPORTED_ON == "imports-ahead" != body_thread


def test_a_module_that_fails_is_left_for_the_driver_own_import_to_raise(modules):
    with imports_ahead(["ahead_broken", "ahead_slow"]):
        pass
    assert "ahead_broken" not in sys.modules and "ahead_slow" in sys.modules  # the next one was still imported
    with pytest.raises(RuntimeError, match="broken on purpose"):
        importlib.import_module("ahead_broken")


def test_nothing_to_import_starts_no_thread():
    before = threading.active_count()
    with imports_ahead(()):
        assert threading.active_count() == before


@pytest.mark.parametrize("name", RUN_IMPORTS)
def test_every_module_a_run_imports_ahead_exists(name):
    # A misspelt name would be skipped in silence, and the run would just start slower.
    assert importlib.util.find_spec(name) is not None
